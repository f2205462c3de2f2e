import t from 'tap';
import {
  FrameDecoder,
  MAX_FRAME,
  MESSAGE_TYPES,
  MIN_FRAME,
  ProtocolError,
  decodeFrames,
  decodeMessage,
  encodeFrame,
  type Message,
  type RawFrame,
} from '../../src/protocol/index.js';
import { bin, cat, frame, hex, map, str, uint } from './raw.js';
import { base } from './samples.js';

const messages: Message[] = MESSAGE_TYPES.map(base);
const frames = messages.map((m, i) => encodeFrame(m, 1 + (i % 3) * 0x101)); // header versions 1, 258, 515
const stream = Buffer.concat(frames);
const boundaries = new Set<number>();
{
  let o = 0;
  boundaries.add(0);
  for (const f of frames) boundaries.add((o += f.length));
}

type Got = { version: number; message: Message };
function drain(dec: FrameDecoder, chunk: Uint8Array, into: Got[]): void {
  for (const f of dec.push(chunk)) into.push({ version: f.version, message: decodeMessage(f.payload) });
}
const want: Got[] = messages.map((message, i) => ({ version: 1 + (i % 3) * 0x101, message }));

function caught(fn: () => void): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  return undefined;
}

function kindOf(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof ProtocolError) return err.kind;
    return `not a ProtocolError: ${String(err)}`;
  }
  return 'no error';
}

t.test('back-to-back frames in one chunk', (t) => {
  const got: Got[] = [];
  const dec = new FrameDecoder();
  drain(dec, stream, got);
  t.strictSame(got, want);
  t.equal(dec.buffered, 0);
  t.doesNotThrow(() => dec.end());
  t.end();
});

t.test('a multi-frame stream split at every byte offset decodes the same', (t) => {
  let bad = 0;
  for (let i = 0; i <= stream.length; i++) {
    const got: Got[] = [];
    const dec = new FrameDecoder();
    drain(dec, stream.subarray(0, i), got);
    drain(dec, stream.subarray(i), got);
    dec.end();
    if (JSON.stringify(got, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v)) !== JSON.stringify(want, (_k, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))) bad++;
  }
  t.equal(bad, 0, `all ${stream.length + 1} split points`);
  t.end();
});

t.test('the stream fed one byte at a time, and in every chunk size up to 64', (t) => {
  for (let size = 1; size <= 64; size++) {
    const got: Got[] = [];
    const dec = new FrameDecoder();
    for (let i = 0; i < stream.length; i += size) drain(dec, stream.subarray(i, i + size), got);
    dec.end();
    t.strictSame(got, want, `chunks of ${size}`);
  }
  t.end();
});

t.test('a stream cut at every byte offset: end() is silent at a boundary, frame_malformed inside a frame', (t) => {
  for (let k = 0; k <= stream.length; k++) {
    const got: Got[] = [];
    const dec = new FrameDecoder();
    drain(dec, stream.subarray(0, k), got);
    const complete = [...boundaries].filter((b) => b <= k).length - 1;
    if (got.length !== complete) t.fail(`cut at ${k}: ${got.length} frames, expected ${complete}`);
    const kind = kindOf(() => dec.end());
    if (kind !== (boundaries.has(k) ? 'no error' : 'frame_malformed')) t.fail(`cut at ${k}: end() gave ${kind}`);
  }
  t.pass(`${stream.length + 1} cut points checked`);
  t.end();
});

t.test('end() says how many bytes of the unfinished frame arrived', (t) => {
  const f = frames[0]!;
  for (const k of [1, 3, 4, 5, f.length - 1]) {
    const dec = new FrameDecoder();
    // A whole frame first (through the buffered path), so earlier state cannot leak into the count.
    for (const b of Buffer.concat([frames[1]!, f.subarray(0, k)])) Array.from(dec.push(Uint8Array.of(b)));
    t.match(caught(() => dec.end()), { kind: 'frame_malformed', detail: `stream ended inside a frame (${k} byte(s) of it received)` }, `cut after ${k}`);
    t.doesNotThrow(() => dec.end(), 'the decoder is reset after reporting it');
  }
  t.end();
});

t.test('frame_len 0, 1 and 2 are frame_malformed, whole or byte by byte', (t) => {
  for (const len of [0, 1, 2]) {
    const hdr = Buffer.alloc(4);
    hdr.writeUInt32LE(len);
    const whole = Buffer.concat([hdr, Buffer.from([1, 0, 0x80, 0x80])]);
    t.equal(kindOf(() => [...new FrameDecoder().push(whole)]), 'frame_malformed', `len ${len} in one chunk`);
    const dec = new FrameDecoder();
    for (let i = 0; i < 3; i++) Array.from(dec.push(hdr.subarray(i, i + 1)));
    t.equal(kindOf(() => [...dec.push(hdr.subarray(3))]), 'frame_malformed', `len ${len}: detected on the 4th length byte`);
  }
  t.end();
});

t.test('frame_len 3 (MIN_FRAME) is a frame; its 1-byte payload is then judged by the schema', (t) => {
  t.equal(MIN_FRAME, 3);
  const f = frame(Uint8Array.of(0x80));
  const raw: RawFrame[] = [];
  for (const x of new FrameDecoder().push(f)) raw.push({ version: x.version, payload: Uint8Array.from(x.payload) });
  t.strictSame(raw, [{ version: 1, payload: Uint8Array.of(0x80) }]);
  t.equal(kindOf(() => decodeMessage(raw[0]!.payload)), 'malformed_message', 'an empty map has no type');
  t.end();
});

/** A valid Heartbeat padded with an unknown bin key so that its frame_len is exactly `len`. */
function paddedHeartbeat(len: number): Buffer {
  const fixed = map([['type', str('Heartbeat')], ['ts_ms', uint(7)], ['pad', bin(0)]]).length; // bin8 header: 2 bytes
  const padLen = len - 2 - (fixed - 2) - 5; // bin32 header: 5 bytes
  const payload = map([['type', str('Heartbeat')], ['ts_ms', uint(7)], ['pad', bin(padLen)]]);
  const f = frame(payload);
  if (f.readUInt32LE(0) !== len) throw new Error(`padding arithmetic: ${f.readUInt32LE(0)} != ${len}`);
  return f;
}

t.test('frame_len = MAX_FRAME is accepted', (t) => {
  const f = paddedHeartbeat(MAX_FRAME);
  t.equal(f.length, MAX_FRAME + 4);
  t.strictSame(decodeFrames(f), [{ version: 1, message: { type: 'Heartbeat', ts_ms: 7n } }], 'in one chunk');
  const got: Got[] = [];
  const dec = new FrameDecoder();
  let maxBuffered = 0;
  for (let i = 0; i < f.length; i += 65_536) {
    drain(dec, f.subarray(i, i + 65_536), got);
    maxBuffered = Math.max(maxBuffered, dec.buffered);
  }
  t.strictSame(got, [{ version: 1, message: { type: 'Heartbeat', ts_ms: 7n } }], 'in 64 KiB chunks');
  t.equal(maxBuffered, MAX_FRAME, 'holds the one partial frame, nothing more');
  t.end();
});

t.test('frame_len = MAX_FRAME + 1 is frame_too_large from the 4 length bytes alone', (t) => {
  const hdr = Buffer.alloc(4);
  hdr.writeUInt32LE(MAX_FRAME + 1);
  const dec = new FrameDecoder();
  let err: unknown;
  try {
    Array.from(dec.push(hdr));
  } catch (e) {
    err = e;
  }
  t.ok(err instanceof ProtocolError && err.kind === 'frame_too_large', 'thrown before any payload byte arrives');
  t.equal(dec.buffered, 0, 'nothing was allocated for the body');
  t.equal(kindOf(() => [...dec.push(Buffer.from([1, 0]))]), 'frame_too_large', 'the decoder stays failed');
  t.doesNotThrow(() => dec.end(), 'end() after a failure adds nothing');

  const dec2 = new FrameDecoder();
  for (let i = 0; i < 3; i++) Array.from(dec2.push(hdr.subarray(i, i + 1)));
  t.equal(kindOf(() => [...dec2.push(hdr.subarray(3))]), 'frame_too_large', 'also when the length arrives byte by byte');

  const padded = paddedHeartbeat(MAX_FRAME);
  padded.writeUInt32LE(MAX_FRAME + 1);
  t.equal(kindOf(() => [...new FrameDecoder().push(padded)]), 'frame_too_large', 'also with the payload in the same chunk');
  t.equal(kindOf(() => [...new FrameDecoder().push(Buffer.from([0xff, 0xff, 0xff, 0xff]))]), 'frame_too_large', '2^32 - 1');
  t.end();
});

t.test('a smaller maxFrame applies to both directions', (t) => {
  const hb = encodeFrame(base('Heartbeat'), 1);
  const len = hb.readUInt32LE(0);
  t.strictSame(decodeFrames(hb, len).length, 1, 'a frame of exactly maxFrame passes');
  t.equal(kindOf(() => decodeFrames(hb, len - 1)), 'frame_too_large');
  t.equal(kindOf(() => encodeFrame(base('Heartbeat'), 1, len - 1)), 'frame_too_large', 'the encoder refuses to write it');
  t.equal(new FrameDecoder(100).maxFrame, 100);
  t.end();
});

t.test('the largest legal message fits in a frame and round-trips', (t) => {
  const big: Message = {
    type: 'Ready',
    handoff_id: new Uint8Array(16).fill(9),
    listening_on: Array.from({ length: 64 }, () => '€'.repeat(1365)),
    healthz_ok: false,
    advertised_revision_per_shard: Array.from({ length: 65_536 }, () => 2n ** 64n - 1n),
  };
  const f = encodeFrame(big, 1);
  t.ok(f.length - 4 <= MAX_FRAME, `frame_len ${f.length - 4}`);
  t.strictSame(decodeFrames(f)[0]?.message, big);
  t.end();
});

t.test('the header version is read little-endian on both decoder paths', (t) => {
  const f = frame(map([['type', str('Heartbeat')], ['ts_ms', uint(1)]]), 0x0201);
  t.equal(f.readUInt16LE(4), 0x0201);
  t.equal(decodeFrames(f)[0]?.version, 0x0201, 'whole frame in a chunk');
  const dec = new FrameDecoder();
  const got: Got[] = [];
  drain(dec, f.subarray(0, 5), got);
  drain(dec, f.subarray(5), got);
  t.equal(got[0]?.version, 0x0201, 'frame assembled from pieces');
  t.end();
});

t.test('buffered counts the header bytes, then the body being assembled', (t) => {
  const f = encodeFrame(base('Ready'), 1);
  const dec = new FrameDecoder();
  Array.from(dec.push(f.subarray(0, 2)));
  t.equal(dec.buffered, 2);
  Array.from(dec.push(f.subarray(2, 4)));
  t.equal(dec.buffered, f.length - 4, 'the body buffer, sized from frame_len');
  Array.from(dec.push(f.subarray(4, 10)));
  t.equal(dec.buffered, f.length - 4);
  t.equal([...dec.push(f.subarray(10))].length, 1);
  t.equal(dec.buffered, 0);
  t.end();
});

t.test('yielded payloads are the frame bytes; the buffered path hands over its buffer', (t) => {
  const a = encodeFrame(base('Commit'), 1);
  const b = encodeFrame(base('Begin'), 1);
  const dec = new FrameDecoder();
  const payloads: string[] = [];
  for (const f of dec.push(cat(a, b.subarray(0, 7)))) payloads.push(hex(f.payload));
  for (const f of dec.push(b.subarray(7))) payloads.push(hex(f.payload));
  t.strictSame(payloads, [hex(a.subarray(6)), hex(b.subarray(6))]);
  t.end();
});
