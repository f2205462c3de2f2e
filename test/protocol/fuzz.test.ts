/**
 * Fuzzing the receive path: random, structure-aware and mutated frames go through FrameDecoder (in
 * random splits) and decodeMessage, and whole streams through a Channel. The only acceptable
 * failures are ProtocolErrors of the kinds each layer owns; the decoder's memory stays bounded; what
 * decodes re-encodes canonically to something that decodes the same.
 *
 * The seed is printed; rerun a failure with FUZZ_SEED=<seed>. FUZZ_FRAMES sets the frame count.
 */

import { once } from 'node:events';
import { Duplex } from 'node:stream';
import t from 'tap';
import {
  Channel,
  FrameDecoder,
  MAX_FRAME,
  MESSAGE_TYPES,
  ProtocolError,
  SCHEMAS,
  decodeMessage,
  encodeFrame,
  encodeMessage,
  type ErrorKind,
  type FieldKind,
  type Message,
  type MessageType,
} from '../../src/protocol/index.js';
import * as mp from './raw.js';

const SEED = process.env['FUZZ_SEED'] !== undefined ? Number(process.env['FUZZ_SEED']) >>> 0 : (Date.now() ^ (process.pid << 16)) >>> 0;
const TARGET_FRAMES = Number(process.env['FUZZ_FRAMES'] ?? 100_000);
/** Only a guard against a hang: the run is bounded by its frame count, which a slow machine also reaches. */
const TIME_LIMIT_MS = 240_000;
t.comment(`fuzz seed ${SEED} (rerun with FUZZ_SEED=${SEED})`);

// sfc32: small, fast, good enough, and seedable.
function sfc32(seed: number): () => number {
  let a = 0x9e3779b9;
  let b = 0x243f6a88;
  let c = 0xb7e15162;
  let d = seed >>> 0;
  const next = (): number => {
    a >>>= 0;
    b >>>= 0;
    c >>>= 0;
    d >>>= 0;
    let r = (a + b) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    d = (d + 1) | 0;
    r = (r + d) | 0;
    c = (c + r) | 0;
    return (r >>> 0) / 4294967296;
  };
  for (let i = 0; i < 15; i++) next();
  return next;
}

const rnd = sfc32(SEED);
const int = (n: number): number => Math.floor(rnd() * n); // 0..n-1
const chance = (p: number): boolean => rnd() < p;
const pickOf = <T>(xs: readonly T[]): T => xs[int(xs.length)] as T;
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => int(256));
const u64 = (): bigint => (BigInt(int(0x1_0000_0000)) << 32n) | BigInt(int(0x1_0000_0000));

const CHARS = ['a', 'Z', '0', ' ', '_', 'é', '€', '😀', '\u0000', '\uFEFF', '\u{10FFFF}', 'ß', '\n'];
function randStr(max = 40): string {
  if (chance(0.01)) return 'x'.repeat(4096);
  let s = '';
  const n = int(max);
  for (let i = 0; i < n; i++) s += pickOf(CHARS);
  return s;
}

// ---------------------------------------------------------------------------------------------
// Valid messages with random values

function validValue(kind: FieldKind): unknown {
  switch (kind) {
    case 'u16':
      return pickOf([0, 1, 127, 128, 255, 256, 0xffff, int(0x10000)]);
    case 'u32':
      return pickOf([0, 127, 128, 0xffff, 0x10000, 0xffff_ffff, int(0x1_0000_0000)]);
    case 'u64':
      return pickOf([0n, 127n, 128n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n, u64(), BigInt(int(1000))]);
    case 'bool':
      return chance(0.5);
    case 'str':
      return randStr();
    case 'id':
      return chance(0.2) ? new Uint8Array(16) : bytes(16);
    case 'build_id':
      return bytes(int(65));
    case 'fingerprint':
      return bytes(32);
    case 'side':
      return pickOf(['Incumbent', 'Successor']);
    case 'capabilities':
      return { reserved: pickOf([0n, u64()]) };
    case 'str_list':
      return Array.from({ length: chance(0.02) ? 64 : int(5) }, () => randStr(12));
    case 'u64_list':
      return Array.from({ length: chance(0.001) ? 65_536 : int(10) }, () => (chance(0.5) ? u64() : BigInt(int(300))));
  }
}

function validMessage(): Message {
  const type = pickOf(MESSAGE_TYPES);
  const out: Record<string, unknown> = { type };
  for (const f of SCHEMAS[type]) out[f.name] = validValue(f.kind);
  return out as unknown as Message;
}

// ---------------------------------------------------------------------------------------------
// Random MessagePack, including everything our encoder never writes

function randomValue(depth: number): Uint8Array {
  const r = int(depth > 3 ? 14 : 18);
  switch (r) {
    case 0:
      return mp.nil();
    case 1:
      return mp.bool(chance(0.5));
    case 2:
      return mp.uint(pickOf([0, 1, 127, 128, 255, 256, 65_535, 65_536, 2 ** 32 - 1, 2 ** 32]));
    case 3:
      return mp.uint(u64());
    case 4:
      return mp.int(-int(0x1_0000_0000) - 1);
    case 5:
      return mp.intAs(pickOf(['u8', 'u16', 'u32', 'u64', 'i8', 'i16', 'i32', 'i64'] as const), int(128));
    case 6:
      return chance(0.5) ? mp.f32(rnd() * 100) : mp.f64(pickOf([1, 0, -0, Number.NaN, Infinity, 2 ** 53, rnd()]));
    case 7:
      return mp.str(randStr());
    case 8:
      return mp.strBytes(bytes(int(8))); // often invalid UTF-8
    case 9:
      return mp.bin(bytes(pickOf([0, 1, 15, 16, 17, 31, 32, 33, 64, 65, int(300)])));
    case 10:
      return mp.ext(int(256) - 128, bytes(pickOf([1, 2, 4, 8, 16, 0, 3, 300])));
    case 11:
      return mp.str(pickOf([...MESSAGE_TYPES, 'Incumbent', 'Successor', 'type', 'reserved']));
    case 12:
      return Uint8Array.of(pickOf([0xc1, 0xc1, 0xdd, 0xdf, 0xdb, 0xc6, 0xcf, 0xd3])); // invalid or truncated
    case 13:
      return mp.arrHeader(int(5)); // a header whose items may be missing
    case 14:
    case 15:
      return mp.arr(Array.from({ length: int(5) }, () => randomValue(depth + 1)));
    default:
      return mp.map(Array.from({ length: int(5) }, (): mp.Entry => [chance(0.8) ? mp.str(randStr(6)) : randomValue(depth + 1), randomValue(depth + 1)]));
  }
}

/** A map that looks like a message: a real type, its field names, values valid or random. */
function structuredPayload(): Uint8Array {
  const type: MessageType = pickOf(MESSAGE_TYPES);
  const entries: mp.Entry[] = [];
  if (!chance(0.05)) entries.push(['type', chance(0.9) ? mp.str(type) : randomValue(1)]);
  for (const f of SCHEMAS[type]) {
    if (chance(0.05)) continue;
    entries.push([f.name, chance(0.85) ? fieldBytes(f.kind, validValue(f.kind)) : randomValue(1)]);
  }
  if (chance(0.2)) entries.push([mp.str(randStr(6)), randomValue(1)]);
  if (chance(0.3)) entries.sort(() => rnd() - 0.5);
  return mp.map(entries);
}

function fieldBytes(kind: FieldKind, v: unknown): Uint8Array {
  switch (kind) {
    case 'u16':
    case 'u32':
    case 'u64':
      return mp.uint(v as number | bigint);
    case 'bool':
      return mp.bool(v as boolean);
    case 'str':
    case 'side':
      return mp.str(v as string);
    case 'id':
    case 'build_id':
    case 'fingerprint':
      return mp.bin(v as Uint8Array);
    case 'capabilities':
      return mp.map([['reserved', mp.uint((v as { reserved: bigint }).reserved)]]);
    case 'str_list':
      return mp.arr((v as string[]).map(mp.str));
    case 'u64_list':
      return mp.arr((v as bigint[]).map(mp.uint));
  }
}

// ---------------------------------------------------------------------------------------------
// Frames and streams

function mutate(f: Uint8Array): Uint8Array {
  let b: Uint8Array = Uint8Array.from(f);
  const n = 1 + int(3);
  for (let i = 0; i < n; i++) {
    const at = int(b.length + 1);
    switch (int(8)) {
      case 0: // flip a bit
        if (b.length) b[at % b.length]! ^= 1 << int(8);
        break;
      case 1: // set a byte
        if (b.length) b[at % b.length] = pickOf([0, 0xff, 0x7f, 0x80, 0xc1, 0xcb, 0xca, 0xdf, 0xdd, int(256)]);
        break;
      case 2: // insert bytes
        b = mp.cat(b.subarray(0, at), bytes(1 + int(4)), b.subarray(at));
        break;
      case 3: // delete bytes
        b = mp.cat(b.subarray(0, at), b.subarray(at + 1 + int(4)));
        break;
      case 4: // truncate
        b = b.subarray(0, at);
        break;
      case 5: // duplicate a range
        b = mp.cat(b.subarray(0, at), b.subarray(int(b.length + 1), at), b.subarray(at));
        break;
      case 6: // rewrite frame_len (keeps the payload)
        if (b.length >= 4) new DataView(b.buffer, b.byteOffset).setUint32(0, pickOf([0, 1, 2, 3, b.length - 4, b.length - 5, b.length - 3, MAX_FRAME, MAX_FRAME + 1, 0xffff_ffff, int(1 << 20)]), true);
        break;
      default: // rewrite the header version
        if (b.length >= 6) new DataView(b.buffer, b.byteOffset).setUint16(4, int(0x10000), true);
    }
  }
  return b;
}

function oneFrame(): Uint8Array {
  const r = int(100);
  if (r < 30) return encodeFrame(validMessage(), 1);
  if (r < 60) return mutate(encodeFrame(validMessage(), 1));
  if (r < 80) return mp.frame(structuredPayload());
  if (r < 92) return mp.frame(randomValue(0));
  if (r < 97) return bytes(int(40)); // noise
  // A length near the limit with only some of the body: exercises the buffered bound.
  const claimed = pickOf([MAX_FRAME, MAX_FRAME - 1, 1 << 19, MAX_FRAME + 1]);
  const head = new Uint8Array(6);
  new DataView(head.buffer).setUint32(0, claimed, true);
  head[4] = 1;
  return mp.cat(head, bytes(int(2000)));
}

/** A byte stream of 1 to 4 frames and how many frames it is meant to hold. */
function oneStream(): { data: Uint8Array; frames: number } {
  const frames = 1 + int(4);
  return { data: mp.cat(...Array.from({ length: frames }, oneFrame)), frames };
}

function splits(n: number): number[] {
  if (n === 0 || chance(0.4)) return [n];
  const cuts = new Set<number>([n]);
  const k = chance(0.1) ? n : 1 + int(4); // sometimes byte by byte
  for (let i = 0; i < k; i++) cuts.add(k === n ? i + 1 : 1 + int(n));
  return [...cuts].sort((a, b) => a - b);
}

const FRAME_KINDS: ReadonlySet<ErrorKind> = new Set(['frame_malformed', 'frame_too_large']);
const MESSAGE_KINDS: ReadonlySet<ErrorKind> = new Set(['malformed_message', 'unknown_message']);
const canon = (m: Message): string => encodeMessage(m).toString('hex');

interface Stats {
  streams: number;
  /** Frames generated and fed in. */
  frames: number;
  /** Frames the FrameDecoder delivered (a stream stops at its first framing fault). */
  delivered: number;
  decoded: number;
  rejected: Map<string, number>;
  maxBuffered: number;
  problems: string[];
}

function problem(s: Stats, what: string, data: Uint8Array): void {
  if (s.problems.length < 5) s.problems.push(`${what}; stream ${mp.hex(data).slice(0, 400)}`);
}

function note(s: Stats, kind: string): void {
  s.rejected.set(kind, (s.rejected.get(kind) ?? 0) + 1);
}

function runDecoderStream(s: Stats, data: Uint8Array): void {
  const dec = new FrameDecoder();
  let from = 0;
  try {
    for (const to of splits(data.length)) {
      for (const f of dec.push(data.subarray(from, to))) {
        s.delivered++;
        if (dec.buffered > MAX_FRAME + 6) problem(s, `buffered ${dec.buffered}`, data);
        let msg: Message;
        try {
          msg = decodeMessage(f.payload);
        } catch (err) {
          if (!(err instanceof ProtocolError) || !MESSAGE_KINDS.has(err.kind)) problem(s, `decodeMessage threw ${String(err)}`, data);
          else note(s, err.kind);
          continue;
        }
        s.decoded++;
        const c = canon(msg);
        if (canon(decodeMessage(Buffer.from(c, 'hex'))) !== c) problem(s, `${msg.type} does not re-encode stably`, data);
      }
      s.maxBuffered = Math.max(s.maxBuffered, dec.buffered);
      if (dec.buffered > MAX_FRAME + 6) problem(s, `buffered ${dec.buffered}`, data);
      from = to;
    }
    dec.end();
  } catch (err) {
    if (!(err instanceof ProtocolError) || !FRAME_KINDS.has(err.kind)) problem(s, `FrameDecoder threw ${String(err)}`, data);
    else note(s, err.kind);
  }
}

t.test(`decoder fuzz: at least ${TARGET_FRAMES} frames, ProtocolError only, bounded memory`, (t) => {
  const s: Stats = { streams: 0, frames: 0, delivered: 0, decoded: 0, rejected: new Map(), maxBuffered: 0, problems: [] };
  const start = performance.now();
  while (s.frames < TARGET_FRAMES && performance.now() - start < TIME_LIMIT_MS && s.problems.length === 0) {
    const { data, frames } = oneStream();
    s.streams++;
    s.frames += frames;
    runDecoderStream(s, data);
  }
  const ms = Math.round(performance.now() - start);
  t.comment(`seed ${SEED}: ${s.frames} frames in ${s.streams} streams, ${ms} ms; ${s.delivered} delivered by the frame decoder, ${s.decoded} decoded; rejected ${JSON.stringify(Object.fromEntries(s.rejected))}; max buffered ${s.maxBuffered}`);
  t.strictSame(s.problems, [], `no unexpected behaviour (seed ${SEED})`);
  t.ok(s.frames >= TARGET_FRAMES, `${s.frames} frames within ${TIME_LIMIT_MS} ms`);
  t.ok(s.decoded > s.frames / 10, 'a good share of the frames decode (the generator is not all noise)');
  for (const k of [...FRAME_KINDS, ...MESSAGE_KINDS]) t.ok((s.rejected.get(k) ?? 0) > 0, `${k} was hit`);
  t.ok(s.maxBuffered > MAX_FRAME / 2, 'large partial frames were held');
  t.end();
});

/** An in-memory duplex: what is pushed is read by the channel; what the channel writes is dropped. */
function memoryStream(): Duplex {
  return new Duplex({
    read() {},
    write(_chunk, _enc, cb) {
      cb();
    },
  });
}

t.test('channel fuzz: each stream closes once, with a ProtocolError, after valid messages only', async (t) => {
  const STREAMS = 2000;
  const problems: string[] = [];
  const kinds = new Map<string, number>();
  for (let i = 0; i < STREAMS && problems.length === 0; i++) {
    const { data } = oneStream();
    const stream = memoryStream();
    const ch = new Channel(stream);
    if (chance(0.5)) ch.version = 1;
    if (chance(0.5)) ch.handoffId = bytes(16);
    let closes = 0;
    ch.on('close', () => closes++);
    ch.on('message', (m) => {
      try {
        encodeMessage(m);
      } catch (err) {
        problems.push(`delivered an invalid message: ${String(err)}`);
      }
    });
    const closed = once(ch, 'close');
    let from = 0;
    for (const to of splits(data.length)) {
      stream.push(data.subarray(from, to));
      from = to;
    }
    stream.push(null);
    const [err] = (await closed) as [unknown];
    if (!(err instanceof ProtocolError)) problems.push(`closed with ${String(err)}`);
    else kinds.set(err.kind, (kinds.get(err.kind) ?? 0) + 1);
    if (closes !== 1) problems.push(`${closes} close events`);
    stream.destroy();
  }
  t.comment(`channel close kinds: ${JSON.stringify(Object.fromEntries(kinds))}`);
  t.strictSame(problems, [], `seed ${SEED}`);
  t.ok((kinds.get('peer_closed') ?? 0) > 0 && (kinds.get('malformed_message') ?? 0) > 0 && (kinds.get('frame_malformed') ?? 0) > 0, 'clean ends and faults both occurred');
});
