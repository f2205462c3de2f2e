/** The 14 messages of wire protocol v1, as a discriminated union on `type`. Field names are the wire's. */

import { randomUUID } from 'node:crypto';

/** 16 bytes: a UUID's bytes; all zeros is the nil id. */
export type HandoffId = Uint8Array;
export type Side = 'Incumbent' | 'Successor';
export interface Capabilities {
  reserved: bigint;
}

export interface Hello {
  type: 'Hello';
  role: Side;
  pid: number;
  build_id: Uint8Array;
  proto_min: number;
  proto_max: number;
  capabilities: Capabilities;
}
export interface HelloAck {
  type: 'HelloAck';
  proto_version_chosen: number;
  handoff_id: HandoffId;
}
export interface PrepareHandoff {
  type: 'PrepareHandoff';
  handoff_id: HandoffId;
  successor_pid: number;
  deadline_ms: bigint;
  drain_grace_ms: bigint;
}
export interface Drained {
  type: 'Drained';
  open_conns_remaining: number;
  accept_closed: boolean;
}
export interface SealRequest {
  type: 'SealRequest';
  handoff_id: HandoffId;
}
export interface SealProgress {
  type: 'SealProgress';
  shards_sealed: number;
  shards_total: number;
  last_revision: bigint;
}
export interface SealComplete {
  type: 'SealComplete';
  handoff_id: HandoffId;
  last_revision_per_shard: bigint[];
  data_dir_fingerprint: Uint8Array;
}
export interface SealFailed {
  type: 'SealFailed';
  handoff_id: HandoffId;
  error: string;
  partial_state: string;
}
export interface Begin {
  type: 'Begin';
  handoff_id: HandoffId;
}
export interface Ready {
  type: 'Ready';
  handoff_id: HandoffId;
  listening_on: string[];
  healthz_ok: boolean;
  advertised_revision_per_shard: bigint[];
}
export interface Commit {
  type: 'Commit';
  handoff_id: HandoffId;
}
export interface Abort {
  type: 'Abort';
  handoff_id: HandoffId;
  reason: string;
}
export interface ResumeAfterAbort {
  type: 'ResumeAfterAbort';
  handoff_id: HandoffId;
}
export interface Heartbeat {
  type: 'Heartbeat';
  ts_ms: bigint;
}

export type Message =
  | Hello
  | HelloAck
  | PrepareHandoff
  | Drained
  | SealRequest
  | SealProgress
  | SealComplete
  | SealFailed
  | Begin
  | Ready
  | Commit
  | Abort
  | ResumeAfterAbort
  | Heartbeat;

export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

export const PROTO_MIN = 1;
export const PROTO_MAX = 1;
/** Largest allowed `frame_len` (bytes after the length field). */
export const MAX_FRAME = 1_048_576;

export const NIL_ID: HandoffId = new Uint8Array(16);

export function newHandoffId(): HandoffId {
  return uuidToId(randomUUID());
}

export function uuidToId(uuid: string): HandoffId {
  const hex = uuid.replace(/-/g, '');
  if (!/^[0-9a-fA-F]{32}$/.test(hex)) throw new TypeError(`not a UUID: ${uuid}`);
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

/** The canonical 8-4-4-4-12 form, for logs and the admin API. */
export function idToString(id: HandoffId): string {
  const h = Buffer.from(id.buffer, id.byteOffset, id.byteLength).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function idEquals(a: HandoffId, b: HandoffId): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function isNilId(id: HandoffId): boolean {
  return id.every((b) => b === 0);
}

/** The handoff id a message carries, if its variant has one. */
export function messageHandoffId(msg: Message): HandoffId | undefined {
  return 'handoff_id' in msg ? msg.handoff_id : undefined;
}

const SHORT: Record<MessageType, string> = {
  Hello: 'hello',
  HelloAck: 'hello-ack',
  PrepareHandoff: 'prepare',
  Drained: 'drained',
  SealRequest: 'seal-req',
  SealProgress: 'seal-progress',
  SealComplete: 'sealed',
  SealFailed: 'seal-failed',
  Begin: 'begin',
  Ready: 'ready',
  Commit: 'commit',
  Abort: 'abort',
  ResumeAfterAbort: 'resume',
  Heartbeat: 'hb',
};

/** A short, log-friendly name for a message type. */
export function shortName(t: MessageType): string {
  return SHORT[t];
}

/** A one-line summary for logs: the short name plus small fields; never bulky payloads. */
export function describe(msg: Message): string {
  switch (msg.type) {
    case 'Hello':
      return `hello role=${msg.role} pid=${msg.pid} proto=${msg.proto_min}..${msg.proto_max}`;
    case 'HelloAck':
      return `hello-ack v${msg.proto_version_chosen} id=${idToString(msg.handoff_id)}`;
    case 'Abort':
      return `abort ${msg.reason}`;
    case 'Drained':
      return `drained remaining=${msg.open_conns_remaining}`;
    case 'SealProgress':
      return `seal-progress ${msg.shards_sealed}/${msg.shards_total}`;
    default:
      return SHORT[msg.type];
  }
}
