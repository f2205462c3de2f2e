/**
 * Channel over real Unix stream sockets (a listening socket in a temp dir and a client connected to
 * it). A "raw" end is a plain socket, so tests can write arbitrary bytes and read exactly what the
 * Channel sent. Synchronisation is on events only.
 */

import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import {
  Channel,
  FrameDecoder,
  MAX_FRAME,
  MESSAGE_TYPES,
  ProtocolError,
  decodeMessage,
  encodeFrame,
  parseReason,
  type ErrorKind,
  type Message,
} from '../../src/protocol/index.js';
import { frame, map, str, uint } from './raw.js';
import { ID, base } from './samples.js';

const dir = mkdtempSync(join(tmpdir(), 'handoff-channel-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));
let seq = 0;

/** Two connected ends of a real Unix stream socket. */
async function socketPair(t: Test): Promise<[net.Socket, net.Socket]> {
  const path = join(dir, `s${seq++}`);
  const server = net.createServer();
  server.listen(path);
  await once(server, 'listening');
  const accepted = once(server, 'connection') as Promise<[net.Socket]>;
  const client = net.connect(path);
  await once(client, 'connect');
  const [serverSide] = await accepted;
  server.close();
  t.teardown(() => {
    client.destroy();
    serverSide.destroy();
  });
  return [client, serverSide];
}

/** Everything a raw socket receives until the other side ends. */
function readAll(sock: net.Socket): Promise<Buffer> {
  const chunks: Buffer[] = [];
  sock.on('data', (c: Buffer) => chunks.push(c));
  return new Promise((resolve) => sock.once('end', () => resolve(Buffer.concat(chunks))));
}

function framesOf(bytes: Buffer): Array<{ version: number; message: Message }> {
  const dec = new FrameDecoder();
  const out: Array<{ version: number; message: Message }> = [];
  for (const f of dec.push(bytes)) out.push({ version: f.version, message: decodeMessage(f.payload) });
  dec.end();
  return out;
}

/** Asserts that `p` rejects with a ProtocolError of `kind`. */
async function rejectsWith(t: Test, p: Promise<unknown>, kind: ErrorKind, msg = `rejects with ${kind}`): Promise<void> {
  const got = await p.then(
    (v) => `resolved with ${JSON.stringify(v, (_k, x: unknown) => (typeof x === 'bigint' ? String(x) : x))}`,
    (e: unknown) => (e instanceof ProtocolError ? e.kind : `rejected with ${String(e)}`),
  );
  t.equal(got, kind, msg);
}

/** A channel on one end and a raw socket on the other. */
async function channelAndRaw(t: Test): Promise<{ ch: Channel; raw: net.Socket; closed: Promise<ProtocolError> }> {
  const [raw, other] = await socketPair(t);
  const ch = new Channel(other);
  const closed = once(ch, 'close').then(([e]) => e as ProtocolError);
  return { ch, raw, closed };
}

t.test('messages flow both ways, in order, with the negotiated header', async (t) => {
  const [x, y] = await socketPair(t);
  const s = new Channel(x);
  const o = new Channel(y);
  o.send(base('Hello'));
  t.strictSame(await s.receive(), base('Hello'));
  s.send(base('HelloAck'));
  t.strictSame(await o.receive(), base('HelloAck'));
  s.version = 1;
  o.version = 1;
  for (const type of MESSAGE_TYPES) s.send(base(type));
  for (const type of MESSAGE_TYPES) o.send(base(type));
  for (const type of MESSAGE_TYPES) t.strictSame(await o.receive(), base(type), `S→incumbent ${type}`);
  for (const type of MESSAGE_TYPES) t.strictSame(await s.receive(), base(type), `incumbent→S ${type}`);
  t.notOk(s.closed || o.closed);
  s.close();
  t.equal(((await once(o, 'close')) as [ProtocolError])[0].kind, 'peer_closed');
});

t.test('a message near the frame limit crosses the socket in many chunks', async (t) => {
  const [x, y] = await socketPair(t);
  const a = new Channel(x);
  const b = new Channel(y);
  const big: Message = {
    type: 'Ready',
    handoff_id: ID,
    listening_on: Array.from({ length: 64 }, (_, i) => String(i % 10).repeat(4096)),
    healthz_ok: true,
    advertised_revision_per_shard: Array.from({ length: 65_536 }, (_, i) => 2n ** 64n - 1n - BigInt(i)),
  };
  const chunks: number[] = [];
  y.on('data', (c: Buffer) => chunks.push(c.length));
  a.send(big);
  a.send(base('Heartbeat'));
  t.strictSame(await b.receive(), big);
  t.strictSame(await b.receive(), base('Heartbeat'));
  t.ok(chunks.length > 1, `arrived in ${chunks.length} reads`);
});

t.test('the header version the channel writes', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  const got = readAll(raw);
  ch.send({ ...base('Hello'), proto_min: 2, proto_max: 7 } as Message); // Hello: its proto_min
  ch.send({ type: 'HelloAck', proto_version_chosen: 5, handoff_id: ID }); // HelloAck: the chosen one
  ch.send(base('Heartbeat')); // before negotiation: PROTO_MIN
  ch.version = 3;
  ch.send(base('Heartbeat')); // after: the negotiated version
  ch.close();
  t.strictSame(framesOf(await got).map((f) => f.version), [2, 5, 1, 3]);
});

t.test('after negotiation a frame with another header version is version_mismatch, before its payload is decoded', async (t) => {
  const { ch, raw, closed } = await channelAndRaw(t);
  ch.version = 1;
  ch.handoffId = ID;
  const got = readAll(raw);
  raw.write(encodeFrame(base('Heartbeat'), 1));
  t.strictSame(await ch.receive(), base('Heartbeat'), 'the negotiated version passes');
  raw.write(frame(Uint8Array.of(0xc1), 2)); // a payload that would be malformed_message if decoded
  const err = await closed;
  t.equal(err.kind, 'version_mismatch');
  t.equal(err.detail, 'frame header says version 2, negotiated 1');
  const frames = framesOf(await got);
  t.equal(frames.length, 1, 'the peer receives one frame: an Abort');
  const abort = frames[0]?.message;
  t.ok(abort?.type === 'Abort' && abort.reason.startsWith('version_mismatch: ') && abort.handoff_id.every((b, i) => b === ID[i]), 'Abort with the kind and the handoff id');
  t.equal(frames[0]?.version, 1, 'sent with the negotiated header');
});

t.test('before negotiation any header version is accepted', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  raw.write(encodeFrame(base('Heartbeat'), 7));
  t.strictSame(await ch.receive(), base('Heartbeat'));
  t.equal(ch.version, undefined);
});

t.test('a Hello must carry its proto_min in the header, a HelloAck the chosen version', async (t) => {
  for (const [msg, header, detail] of [
    [{ ...base('Hello'), proto_min: 1, proto_max: 2 } as Message, 2, 'Hello header version 2 is not its proto_min 1'],
    [base('HelloAck'), 3, 'HelloAck header version 3 is not the chosen 1'],
  ] as const) {
    const { ch, raw, closed } = await channelAndRaw(t);
    raw.write(encodeFrame(msg, header));
    const err = await closed;
    t.equal(err.kind, 'version_mismatch', msg.type);
    t.equal(err.detail, detail);
    t.equal(ch.closeError, err);
  }
});

const FAULTS: Array<[string, () => Buffer, ErrorKind]> = [
  ['frame_len 2', () => Buffer.from([2, 0, 0, 0, 1, 0]), 'frame_malformed'],
  ['frame_len MAX_FRAME + 1', () => { const b = Buffer.alloc(4); b.writeUInt32LE(MAX_FRAME + 1); return b; }, 'frame_too_large'],
  ['a float for a u64', () => frame(map([['type', str('Heartbeat')], ['ts_ms', Uint8Array.of(0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0)]])), 'malformed_message'],
  ['a payload that is not a map', () => frame(Uint8Array.of(0x90)), 'malformed_message'],
  ['an unknown type', () => frame(map([['type', str('Frobnicate')], ['ts_ms', uint(1)]])), 'unknown_message'],
];

t.test('a fault from the peer closes the channel with its kind; with a handoff id the peer gets an Abort first', async (t) => {
  for (const [label, bytes, kind] of FAULTS) {
    const { ch, raw, closed } = await channelAndRaw(t);
    ch.handoffId = ID;
    const got = readAll(raw);
    raw.write(encodeFrame(base('Heartbeat'), 1));
    raw.write(bytes());
    const err = await closed;
    t.equal(err.kind, kind, `${label}: closes with ${kind}`);
    const frames = framesOf(await got);
    const abort = frames[0]?.message;
    t.ok(frames.length === 1 && abort?.type === 'Abort', `${label}: the peer receives an Abort, then the end of the stream`);
    if (abort?.type === 'Abort') {
      t.ok(abort.reason.startsWith(`${kind}: `), `${label}: reason "${abort.reason}"`);
      t.equal(parseReason(abort.reason).kind, kind);
      t.strictSame(abort.handoff_id, ID);
    }
    t.strictSame(await ch.receive(), base('Heartbeat'), 'what arrived before the fault is still delivered');
    await t.rejects(ch.receive(), err, 'then the close error');
  }
});

t.test('without a handoff id a fault closes the stream and sends nothing', async (t) => {
  for (const [label, bytes, kind] of FAULTS) {
    const { ch, raw, closed } = await channelAndRaw(t);
    const got = readAll(raw);
    raw.write(bytes());
    t.equal((await closed).kind, kind, label);
    t.equal((await got).length, 0, `${label}: no bytes sent back`);
    t.equal(ch.handoffId, undefined);
  }
});

t.test('bytes after a fault are ignored, and close is emitted exactly once', async (t) => {
  const { ch, raw, closed } = await channelAndRaw(t);
  let closes = 0;
  let messages = 0;
  ch.on('close', () => closes++);
  ch.on('message', () => messages++);
  const got = readAll(raw);
  raw.write(Buffer.concat([frame(Uint8Array.of(0xc1)), encodeFrame(base('Heartbeat'), 1)]));
  t.equal((await closed).kind, 'malformed_message');
  raw.end(encodeFrame(base('Heartbeat'), 1));
  await got;
  await once(ch.stream, 'close');
  t.equal(closes, 1, 'one close event, although end and close of the stream followed');
  t.equal(messages, 0, 'nothing delivered after the fault, even from the same chunk');
});

t.test('a clean end of stream is peer_closed; ending inside a frame is frame_malformed', async (t) => {
  {
    const { ch, raw, closed } = await channelAndRaw(t);
    raw.end(encodeFrame(base('Heartbeat'), 1));
    const err = await closed;
    t.equal(err.kind, 'peer_closed', 'at a frame boundary');
    t.strictSame(await ch.receive(), base('Heartbeat'), 'the last message is still delivered');
    await rejectsWith(t, ch.receive(), 'peer_closed');
  }
  {
    const { raw, closed } = await channelAndRaw(t);
    const f = encodeFrame(base('Heartbeat'), 1);
    raw.end(f.subarray(0, f.length - 1));
    const err = await closed;
    t.equal(err.kind, 'frame_malformed', 'one byte short');
    t.match(err.detail, /stream ended inside a frame/);
  }
  {
    const { raw, closed } = await channelAndRaw(t);
    raw.end(Buffer.from([9, 0]));
    t.equal((await closed).kind, 'frame_malformed', 'inside the length field');
  }
});

t.test('the async iterator yields every message and ends at peer_closed', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  const sent = [base('Drained'), base('SealProgress'), base('SealComplete')];
  raw.end(Buffer.concat(sent.map((m) => encodeFrame(m, 1))));
  const got: Message[] = [];
  for await (const m of ch) got.push(m);
  t.strictSame(got, sent);
});

t.test('the async iterator throws any other close error after the messages before it', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  raw.end(Buffer.concat([encodeFrame(base('Commit'), 1), Buffer.from([1, 0, 0, 0])]));
  const got: Message[] = [];
  let thrown: unknown;
  try {
    for await (const m of ch) got.push(m);
  } catch (err) {
    thrown = err;
  }
  t.strictSame(got, [base('Commit')]);
  t.ok(thrown instanceof ProtocolError && thrown.kind === 'frame_malformed', String(thrown));
});

t.test('receive() waits for the next message; waiters are rejected on close', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  const first = ch.receive();
  const second = ch.receive();
  raw.write(encodeFrame(base('Begin'), 1));
  t.strictSame(await first, base('Begin'));
  raw.end();
  await rejectsWith(t, second, 'peer_closed');
});

t.test('with a message listener, messages are emitted (and not queued for receive)', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  const seen: Message[] = [];
  ch.on('message', (m) => seen.push(m));
  const before = ch.lastReceived;
  raw.write(encodeFrame(base('Begin'), 1));
  const [m] = (await once(ch, 'message')) as [Message];
  t.strictSame(m, base('Begin'));
  t.ok(ch.lastReceived >= before, 'lastReceived moves on each read');
  raw.end();
  await once(ch, 'close');
  await rejectsWith(t, ch.receive(), 'peer_closed', 'nothing was queued');
  t.strictSame(seen, [base('Begin')]);
});

t.test('close() ends the stream: the peer sees peer_closed, later sends return false', async (t) => {
  const [x, y] = await socketPair(t);
  const a = new Channel(x);
  const b = new Channel(y);
  a.handoffId = ID;
  const bClosed = once(b, 'close');
  const bGot: Message[] = [];
  b.on('message', (m) => bGot.push(m));
  a.close();
  t.equal(a.closeError?.kind, 'peer_closed');
  t.equal(a.closeError?.detail, 'closed locally');
  t.equal(a.send(base('Heartbeat')), false);
  a.close(); // idempotent
  t.equal(((await bClosed)[0] as ProtocolError).kind, 'peer_closed');
  t.strictSame(bGot, [], 'a local close sends no Abort');
});

t.test('fail() sends an Abort with the reason when the handoff id is known, then ends', async (t) => {
  const [x, y] = await socketPair(t);
  const a = new Channel(x);
  const b = new Channel(y);
  a.version = 1;
  a.handoffId = ID;
  a.fail(new ProtocolError('operator_abort', 'requested\nat stack'));
  a.fail(new ProtocolError('lock_held', 'ignored: already closed'));
  t.equal(a.closeError?.kind, 'operator_abort');
  t.strictSame(await b.receive(), { type: 'Abort', handoff_id: ID, reason: 'operator_abort: requested' });
  await rejectsWith(t, b.receive(), 'peer_closed');
});

t.test('fail() with peer_closed sends no Abort', async (t) => {
  const { ch, raw } = await channelAndRaw(t);
  ch.handoffId = ID;
  const got = readAll(raw);
  ch.fail(new ProtocolError('peer_closed', 'gone'));
  t.equal((await got).length, 0);
});

t.test('a stream error closes with peer_closed naming the error code', async (t) => {
  const { ch, closed } = await channelAndRaw(t);
  ch.stream.destroy(Object.assign(new Error('reset by test'), { code: 'ECONNRESET' }));
  const err = await closed;
  t.equal(err.kind, 'peer_closed');
  t.equal(err.detail, 'ECONNRESET');
  t.equal(ch.send(base('Heartbeat')), false, 'send on a destroyed stream returns false');
});

t.test('a stream error without a code', async (t) => {
  const { ch, closed } = await channelAndRaw(t);
  ch.stream.destroy(new Error('no code'));
  t.equal((await closed).detail, 'stream error');
});

t.test('a stream destroyed without an error closes with peer_closed', async (t) => {
  const { ch, closed } = await channelAndRaw(t);
  ch.stream.destroy();
  const err = await closed;
  t.equal(err.kind, 'peer_closed');
  t.equal(err.detail, 'stream closed');
});

t.test('the channel honours a smaller maxFrame both ways', async (t) => {
  const [x, y] = await socketPair(t);
  const a = new Channel(x, { maxFrame: 64 });
  const b = new Channel(y, { maxFrame: 64 });
  t.throws(() => a.send(base('Ready')), /frame_too_large/, 'sending too big a frame is a caller error');
  const closed = once(b, 'close');
  x.write(encodeFrame(base('Ready'), 1));
  t.equal(((await closed)[0] as ProtocolError).kind, 'frame_too_large');
});

t.test('a channel that cannot even encode its Abort still closes with the original error', async (t) => {
  const [raw, other] = await socketPair(t);
  const ch = new Channel(other, { maxFrame: 40 }); // an Abort frame is longer than 40 bytes
  ch.handoffId = ID;
  const closed = once(ch, 'close');
  const got = readAll(raw);
  raw.write(Buffer.from([41, 0, 0, 0]));
  const [err] = (await closed) as [ProtocolError];
  t.equal(err.kind, 'frame_too_large');
  t.equal(err.detail, 'frame_len 41 exceeds 40');
  t.equal((await got).length, 0, 'nothing was sent');
});

t.test('closing from a message handler stops delivery of the rest of the chunk', async (t) => {
  const { ch, raw, closed } = await channelAndRaw(t);
  const seen: Message[] = [];
  ch.on('message', (m) => {
    seen.push(m);
    ch.close();
  });
  raw.write(Buffer.concat([encodeFrame(base('Begin'), 1), encodeFrame(base('Commit'), 1)]));
  t.equal((await closed).detail, 'closed locally');
  t.strictSame(seen, [base('Begin')]);
});
