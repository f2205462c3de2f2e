export * from './errors.js';
export * from './messages.js';
export { SCHEMAS, MESSAGE_TYPES, encodeMessage, decodeMessage, MAX_STR_BYTES, MAX_BUILD_ID, MAX_LISTENING_ON, MAX_REVISIONS } from './schema.js';
export type { FieldKind, FieldSpec } from './schema.js';
export { encodeFrame, FrameDecoder, decodeFrames, MIN_FRAME } from './frame.js';
export type { RawFrame } from './frame.js';
export { negotiateVersion } from './version.js';
export { Channel } from './channel.js';
export type { ChannelOptions } from './channel.js';
