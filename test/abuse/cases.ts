/**
 * Generated wire-abuse cases for a misbehaving successor, shared by the in-process run and the
 * end-to-end run (where a fixture process plays the script).
 *
 * A case is: the phase of the handoff where the successor starts misbehaving, a script of steps
 * (JSON, so that a spawned fixture can play it too), and what S must record (`reason_kind`), or
 * `committed` for scripts that stay within the protocol (a heartbeat in any phase is legal).
 *
 * The expected kind is computed here from the protocol's rules (ARCHITECTURE.md, "Frames",
 * "Payload rules", the transition table), not by asking S. For a payload that frames correctly the
 * codec's own verdict (malformed_message vs unknown_message) is taken from `decodeMessage`, whose
 * rules have their own tests in test/protocol/.
 */

import { encode as mpEncode } from '@msgpack/msgpack';
import { ERROR_KINDS, parseReason, type ErrorKind, ProtocolError } from '../../src/protocol/errors.js';
import { encodeFrame } from '../../src/protocol/frame.js';
import { MAX_FRAME, PROTO_MIN, type HandoffId, type Message, type MessageType } from '../../src/protocol/messages.js';
import { MESSAGE_TYPES, decodeMessage } from '../../src/protocol/schema.js';
import { ID as SAMPLE_ID, base } from '../protocol/samples.js';
import type { Rng } from './harness.js';

// --- messages as JSON (for argv) ---------------------------------------------------------------

/**
 * JSON with placeholders: "$id" is the handoff id (from HelloAck, or from S in-process), "$pid" the
 * peer's pid; {"$u64": "…"} a u64, {"$bin": "hex"} a bin.
 */
export type Json = string | number | boolean | null | Json[] | { [k: string]: Json };

export function toJson(v: unknown): Json {
  if (typeof v === 'bigint') return { $u64: v.toString() };
  if (v instanceof Uint8Array) return { $bin: Buffer.from(v).toString('hex') };
  if (Array.isArray(v)) return v.map(toJson);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, toJson(x)]));
  return v as Json;
}

export interface Ctx {
  id: HandoffId | undefined;
  pid: number;
  /** The id of the handoff before this one, when there was one. */
  prev?: HandoffId | undefined;
}

export function fromJson(j: Json, ctx: Ctx): unknown {
  if (j === '$id') return ctx.id ?? new Uint8Array(16);
  if (j === '$id~') return flipped(ctx.id ?? new Uint8Array(16));
  if (j === '$prev') return ctx.prev ?? flipped(ctx.id ?? new Uint8Array(16));
  if (j === '$pid') return ctx.pid;
  if (Array.isArray(j)) return j.map((x) => fromJson(x, ctx));
  if (j !== null && typeof j === 'object') {
    if (typeof j['$u64'] === 'string') return BigInt(j['$u64']);
    if (typeof j['$bin'] === 'string') return Uint8Array.from(Buffer.from(j['$bin'], 'hex'));
    return Object.fromEntries(Object.entries(j).map(([k, x]) => [k, fromJson(x, ctx)]));
  }
  return j;
}

// --- steps --------------------------------------------------------------------------------------

export type Step =
  /** A Hello from this pid, role Successor, with field overrides, under `version` (else its proto_min). */
  | { op: 'hello'; over?: Json; version?: number }
  /** Waits for a message from S. */
  | { op: 'wait'; type: 'HelloAck' | 'Begin' }
  /** In-process only: waits until the incumbent was asked to seal (the e2e fixture skips it). */
  | { op: 'gate'; name: 'sealing' }
  /** One message, `count` times (a flood), in one write or split into `chunks` writes. */
  | { op: 'msg'; msg: Json; version?: number; count?: number; chunks?: number }
  /** Raw bytes, in one write or split into `chunks` writes. */
  | { op: 'raw'; hex: string; chunks?: number }
  /** Raw bytes one at a time, `everyMs` apart. */
  | { op: 'dribble'; hex: string; everyMs: number }
  /** Half-close: no more bytes from the successor; it still reads. */
  | { op: 'end' }
  /** From here on behave: Hello if not said yet, Ready on Begin (or at once if Begin came). */
  | { op: 'good' };

export type State = 'hello' | 'drain' | 'seal' | 'begin';

export interface AbuseCase {
  n: number;
  category: string;
  /** Where the successor starts to misbehave. */
  state: State;
  steps: Step[];
  /** reason_kind S must record, or `committed`. */
  expect: ErrorKind | 'committed';
  /** The offender can still read when S gives up: it must get Abort before end of stream. */
  abortRequired: boolean;
  /** The offender's process leaves when S says Abort (as the library does); else S must kill it. */
  exitOnAbort: boolean;
  /** The offender's process ignores SIGTERM (S must escalate). */
  ignoreTerm: boolean;
  /** What was generated, for the failure report. */
  note: string;
}

export interface GenOptions {
  /** The in-process rig can hand the offender the handoff id before it says Hello; a fixture cannot. */
  idBeforeHello: boolean;
  /** The in-process rig can park the handoff in `seal`; against a real kv that phase is a race. */
  sealGate: boolean;
  /** The player knows the id of the handoff before ("$prev"). */
  prevId: boolean;
  /**
   * Against a real incumbent: the offender cannot serve (no case may commit), and the handoff moves
   * on by itself after HelloAck (a Ready sent then may land in `begin`, where it is legal).
   */
  realIncumbent?: boolean;
}

const ID_TYPES: readonly MessageType[] = MESSAGE_TYPES.filter((t) => 'handoff_id' in base(t));
const DECODE_KINDS: ReadonlySet<string> = new Set(['malformed_message', 'unknown_message']);

export function prefix(state: State): Step[] {
  switch (state) {
    case 'hello':
      return [];
    case 'drain':
      return [{ op: 'hello' }, { op: 'wait', type: 'HelloAck' }];
    case 'seal':
      return [{ op: 'hello' }, { op: 'wait', type: 'HelloAck' }, { op: 'gate', name: 'sealing' }];
    case 'begin':
      return [{ op: 'hello' }, { op: 'wait', type: 'Begin' }];
  }
}

/** A valid message of `type` with the right id ("$id"), our pid where it names one, as JSON. */
export function sampleJson(type: MessageType, rng: Rng): Json {
  const m = base(type) as unknown as Record<string, unknown>;
  if ('handoff_id' in m) m['handoff_id'] = '$id';
  if (type === 'Hello') {
    m['pid'] = '$pid';
    m['role'] = 'Successor';
  }
  if (type === 'Heartbeat') m['ts_ms'] = BigInt(Date.now()) + BigInt(rng.int(-5000, 5000));
  return toJson(m);
}

/**
 * What S must conclude from `bytes` arriving first on a channel (then end of stream when `eof`):
 * the first fault by ARCHITECTURE.md's framing rules, 'valid' when the first frame is a valid
 * message (not abuse: the generator draws again), or 'incomplete' (S would wait).
 */
export function bytesVerdict(bytes: Uint8Array, negotiated: boolean, eof: boolean): ErrorKind | 'valid' | 'incomplete' | 'empty' {
  if (bytes.length === 0) return eof ? 'empty' : 'incomplete';
  if (bytes.length < 4) return eof ? 'frame_malformed' : 'incomplete';
  const len = (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16)) + bytes[3]! * 0x100_0000;
  if (len < 3) return 'frame_malformed';
  if (len > MAX_FRAME) return 'frame_too_large';
  if (bytes.length - 4 < len) return eof ? 'frame_malformed' : 'incomplete';
  const version = bytes[4]! | (bytes[5]! << 8);
  if (negotiated && version !== PROTO_MIN) return 'version_mismatch';
  const payload = bytes.subarray(6, 4 + len);
  let msg: Message;
  try {
    msg = decodeMessage(payload);
  } catch (err) {
    if (err instanceof ProtocolError && DECODE_KINDS.has(err.kind)) return err.kind;
    throw err;
  }
  if (msg.type === 'Hello' && version !== msg.proto_min) return 'version_mismatch';
  if (msg.type === 'HelloAck' && version !== msg.proto_version_chosen) return 'version_mismatch';
  return 'valid';
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

function frameOf(msg: Message, version = PROTO_MIN): Buffer {
  return encodeFrame(msg, version);
}

function header(len: number, version = PROTO_MIN): Buffer {
  const b = Buffer.alloc(6);
  b.writeUInt32LE(len >>> 0, 0);
  b.writeUInt16LE(version, 4);
  return b;
}

/** A concrete message from the sample of `type` (for byte-level cases that need no placeholders). */
function concrete(type: MessageType, pid: number): Message {
  const m = base(type) as unknown as Record<string, unknown>;
  if (type === 'Hello') {
    m['pid'] = pid;
    m['role'] = 'Successor';
  }
  return m as unknown as Message;
}

/** The kind S records for a successor's own Abort with `reason`. */
export function abortKind(reason: string): ErrorKind {
  return parseReason(reason).kind ?? 'successor_failed';
}

function randomIdHex(rng: Rng): string {
  return rng.bytes(16).toString('hex');
}

function chunksFor(rng: Rng): number | undefined {
  return rng.chance(0.3) ? rng.int(2, 8) : undefined;
}

type Draft = Omit<AbuseCase, 'n' | 'exitOnAbort' | 'ignoreTerm'>;

// --- the generators -----------------------------------------------------------------------------

function randomBytesCase(rng: Rng, state: State): Draft | undefined {
  const negotiated = state !== 'hello';
  let bytes: Buffer;
  const shape = rng.int(0, 3);
  if (shape === 0) {
    bytes = rng.bytes(rng.int(1, rng.chance(0.1) ? 2048 : 64));
  } else {
    // A plausible header with a random body: the faults are in the payload (or the version).
    const len = rng.int(3, 200);
    const version = negotiated && rng.chance(0.8) ? PROTO_MIN : rng.int(0, 3);
    const body = rng.bytes(len - 2);
    // Some bodies start like a map, to reach the field checks.
    if (shape === 2) body[0] = 0x80 | rng.int(0, 15);
    if (shape === 3 && body.length > 6) {
      const mp = Buffer.from(mpEncode({ type: rng.pick([...MESSAGE_TYPES, 'Bogus', '', 'hello']) }));
      mp[0] = 0x80 | rng.int(1, 6);
      mp.copy(body, 0, 0, Math.min(mp.length, body.length));
    }
    bytes = Buffer.concat([header(len, version), body]);
    if (rng.chance(0.2)) bytes = bytes.subarray(0, rng.int(1, bytes.length - 1));
  }
  const v = bytesVerdict(bytes, negotiated, true);
  if (v === 'valid' || v === 'incomplete' || v === 'empty') return undefined;
  return { category: 'random bytes', state, steps: [...prefix(state), { op: 'raw', hex: hex(bytes), ...opt('chunks', chunksFor(rng)) }, { op: 'end' }], expect: v, abortRequired: true, note: `${bytes.length} random bytes` };
}

function truncatedCase(rng: Rng, state: State, pid: number): Draft {
  const type = state === 'hello' ? 'Hello' : rng.pick(MESSAGE_TYPES);
  const f = frameOf(concrete(type, pid));
  const cut = rng.int(1, f.length - 1);
  return { category: 'truncated frame', state, steps: [...prefix(state), { op: 'raw', hex: hex(f.subarray(0, cut)), ...opt('chunks', chunksFor(rng)) }, { op: 'end' }], expect: 'frame_malformed', abortRequired: true, note: `${type} frame cut at ${cut}/${f.length} bytes, then end of stream` };
}

function frameLenCase(rng: Rng, state: State): Draft {
  const lens = [0, 1, 2, MAX_FRAME + 1, 0xffff_ffff, rng.int(MAX_FRAME + 2, 0xffff_fffe), rng.int(MAX_FRAME + 1, MAX_FRAME + 100)];
  const len = rng.pick(lens);
  const b = Buffer.alloc(4);
  b.writeUInt32LE(len, 0);
  const tail = rng.chance(0.5) ? rng.bytes(rng.int(0, 16)) : Buffer.alloc(0);
  const steps: Step[] = [...prefix(state), { op: 'raw', hex: hex(Buffer.concat([b, tail])), ...opt('chunks', chunksFor(rng)) }];
  if (rng.chance(0.3)) steps.push({ op: 'end' });
  return { category: 'frame_len', state, steps, expect: len < 3 ? 'frame_malformed' : 'frame_too_large', abortRequired: true, note: `frame_len ${len}` };
}

function versionCase(rng: Rng, state: State, pid: number): Draft {
  if (state === 'hello') {
    const v = rng.pick([0, 2, 3, 255, 0xffff]);
    const shape = rng.int(0, 2);
    if (shape === 0) return { category: 'version', state, steps: [{ op: 'hello', version: v }], expect: 'version_mismatch', abortRequired: true, note: `Hello with header version ${v}, proto_min 1` };
    if (shape === 1) return { category: 'version', state, steps: [{ op: 'hello', over: { proto_min: v, proto_max: v < PROTO_MIN ? v : rng.int(v, 0xffff) } }], expect: 'version_mismatch', abortRequired: true, note: `Hello offering ${v}.. only` };
    return { category: 'version', state, steps: [{ op: 'hello', over: { proto_min: 1, proto_max: 0 } }], expect: 'version_mismatch', abortRequired: true, note: 'Hello with an inverted range 1..0' };
  }
  const type = rng.pick(MESSAGE_TYPES);
  let v = rng.pick([0, 2, 3, 255, 256, 0xfffe, 0xffff, rng.int(2, 0xffff)]);
  if (v === PROTO_MIN) v = 0;
  // Written raw: the header lies, the payload is a valid message (the header is checked first).
  const f = frameOf(concrete(type, pid));
  f.writeUInt16LE(v, 4);
  return { category: 'version after handshake', state, steps: [...prefix(state), { op: 'raw', hex: hex(f), ...opt('chunks', chunksFor(rng)) }], expect: 'version_mismatch', abortRequired: true, note: `${type} under header version ${v}` };
}

const KIND_REASONS = (rng: Rng): string[] => [`${rng.pick(ERROR_KINDS)}: from the successor`, 'no kind here', '', 'successor_failed: cannot open', `${rng.pick(ERROR_KINDS)}:`, 'frame_too_large:x'];

function wrongStateCase(rng: Rng, state: State, gen: GenOptions): Draft | undefined {
  const type = rng.pick(MESSAGE_TYPES);
  if (type === 'Hello' && state === 'hello') return undefined;
  if (type === 'Ready' && state === 'begin') return undefined;
  const hasId = ID_TYPES.includes(type);
  // Before its Hello a fixture cannot know the id; in-process the rig tells it (an id-guessing peer).
  if (hasId && state === 'hello' && !gen.idBeforeHello) return undefined;
  const msg = sampleJson(type, rng) as Record<string, Json>;
  let expect: ErrorKind | 'committed';
  const steps: Step[] = [...prefix(state)];
  if (type === 'Heartbeat') {
    // Legal anywhere: the successor then behaves, and the handoff must commit.
    steps.push({ op: 'msg', msg, count: rng.int(1, 5) }, { op: 'good' });
    return { category: 'heartbeat in any phase', state, steps, expect: 'committed', abortRequired: false, note: `Heartbeat in ${state}, then a good successor` };
  }
  if (type === 'Abort') {
    const reason = rng.pick(KIND_REASONS(rng));
    msg['reason'] = reason;
    expect = abortKind(reason);
  } else expect = 'unexpected_message';
  steps.push({ op: 'msg', msg, ...opt('chunks', chunksFor(rng)) });
  return { category: type === 'Abort' ? 'successor Abort' : `${type} from the successor`, state, steps, expect, abortRequired: true, note: `${type} in ${state}${type === 'Abort' ? ` reason ${JSON.stringify(msg['reason'])}` : ''}` };
}

function wrongIdCase(rng: Rng, state: State, gen: GenOptions): Draft {
  const type = rng.pick(ID_TYPES);
  const msg = sampleJson(type, rng) as Record<string, Json>;
  const which = rng.int(0, gen.prevId ? 4 : 3);
  let id: Json;
  let note: string;
  if (which === 0) [id, note] = [{ $bin: randomIdHex(rng) }, 'a random id'];
  else if (which === 1) [id, note] = [{ $bin: '00'.repeat(16) }, 'the nil id'];
  else if (which === 2) [id, note] = [toJson(SAMPLE_ID), 'the sample id'];
  else if (which === 3) [id, note] = ['$id~', 'the right id with one bit flipped'];
  else [id, note] = ['$prev', 'the id of the handoff before'];
  msg['handoff_id'] = id;
  if (type === 'Abort') msg['reason'] = 'operator_abort: wrong id';
  return { category: 'wrong handoff id', state, steps: [...prefix(state), { op: 'msg', msg, ...opt('chunks', chunksFor(rng)) }], expect: 'handoff_id_mismatch', abortRequired: true, note: `${type} in ${state} naming ${note}` };
}

function helloCase(rng: Rng): Draft {
  const which = rng.int(0, 2);
  if (which === 0) {
    const pid = rng.pick([0, 1, 0xffff_ffff, rng.int(2, 99_999)]);
    return { category: 'bad Hello', state: 'hello', steps: [{ op: 'hello', over: { pid } }], expect: 'pid_mismatch', abortRequired: true, note: `Hello with pid ${pid}` };
  }
  if (which === 1) return { category: 'bad Hello', state: 'hello', steps: [{ op: 'hello', over: { role: 'Incumbent' } }], expect: 'unexpected_message', abortRequired: true, note: 'Hello with role Incumbent from a successor' };
  // Written raw: our encoder refuses to produce it. The decoder rejects it before looking at the pid.
  const payload = mpEncode({ type: 'Hello', role: 'Successor', pid: 0, build_id: new Uint8Array(65).fill(0xff), proto_min: 1, proto_max: 1, capabilities: { reserved: 0 } });
  const f = Buffer.concat([header(payload.length + 2), Buffer.from(payload)]);
  return { category: 'bad Hello', state: 'hello', steps: [{ op: 'raw', hex: hex(f) }], expect: 'malformed_message', abortRequired: true, note: 'Hello with a 65-byte build_id' };
}

function helloFloodCase(rng: Rng): Draft {
  const count = rng.chance(0.1) ? rng.int(500, 5000) : rng.int(2, 50);
  return { category: 'Hello flood', state: 'hello', steps: [{ op: 'msg', msg: sampleJson('Hello', rng), count, ...opt('chunks', chunksFor(rng)) }], expect: 'unexpected_message', abortRequired: true, note: `${count} Hellos` };
}

function readyCase(rng: Rng): Draft {
  const msg = sampleJson('Ready', rng) as Record<string, Json>;
  if (rng.chance(0.5)) {
    msg['healthz_ok'] = false;
    return { category: 'bad Ready', state: 'begin', steps: [...prefix('begin'), { op: 'msg', msg }], expect: 'successor_unhealthy', abortRequired: true, note: 'Ready with healthz_ok false' };
  }
  // Revisions no incumbent can have sealed (2^64 - 1), so that a real one never matches by chance.
  const top = 2n ** 64n - 1n;
  msg['advertised_revision_per_shard'] = toJson(rng.pick([[top], [1n, 2n, top], [0n, top, 0n, 0n], [top, top, top]]));
  return { category: 'bad Ready', state: 'begin', steps: [...prefix('begin'), { op: 'msg', msg }], expect: 'revision_mismatch', abortRequired: true, note: 'Ready advertising other revisions' };
}

/** A valid frame whose payload is mutated until it no longer decodes. */
function mutatedCase(rng: Rng, state: State, pid: number): Draft | undefined {
  const negotiated = state !== 'hello';
  const type = state === 'hello' ? 'Hello' : rng.pick(MESSAGE_TYPES);
  let f = frameOf(concrete(type, pid));
  const how = rng.int(0, 3);
  let note: string;
  if (how === 0) {
    // A trailing byte after the map.
    f = Buffer.concat([f, Buffer.from([rng.int(0, 255)])]);
    f.writeUInt32LE(f.length - 4, 0);
    note = `${type} with a trailing byte`;
  } else if (how === 1) {
    const payload = mpEncode({ type: rng.pick(['Bogus', 'hello', 'HELLO', '', 'toString', '__proto__']), handoff_id: new Uint8Array(16) });
    f = Buffer.concat([header(payload.length + 2), Buffer.from(payload)]);
    note = 'an unknown type';
  } else {
    const flips = rng.int(1, 4);
    for (let i = 0; i < flips; i++) f[rng.int(6, f.length - 1)] = rng.int(0, 255);
    note = `${type} with ${flips} byte(s) changed`;
  }
  const v = bytesVerdict(f, negotiated, false);
  if (v === 'valid' || v === 'incomplete' || v === 'empty') return undefined;
  return { category: 'malformed payload', state, steps: [...prefix(state), { op: 'raw', hex: hex(f), ...opt('chunks', chunksFor(rng)) }], expect: v, abortRequired: true, note };
}

function cleanEofCase(state: State): Draft {
  return { category: 'end of stream between frames', state, steps: [...prefix(state), { op: 'end' }], expect: 'peer_closed', abortRequired: false, note: `half-close in ${state}` };
}

function opt<K extends string, V>(k: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [k]: v }) as { [P in K]?: V };
}

/** Draws one case. `pid` is the offender's pid when known (byte-level Hellos embed it). */
export function generate(rng: Rng, n: number, gen: GenOptions, pid = 0): AbuseCase {
  for (;;) {
    const states: State[] = gen.sealGate ? ['hello', 'drain', 'seal', 'begin'] : ['hello', 'drain', 'begin'];
    const state = rng.pick(states);
    const r = rng.next();
    let d: Draft | undefined;
    if (r < 0.14) d = randomBytesCase(rng, state);
    else if (r < 0.24) d = truncatedCase(rng, state, pid);
    else if (r < 0.33) d = frameLenCase(rng, state);
    else if (r < 0.42) d = versionCase(rng, state, pid);
    else if (r < 0.64) d = wrongStateCase(rng, state, gen);
    else if (r < 0.76) d = wrongIdCase(rng, state, gen);
    else if (r < 0.8) d = helloCase(rng);
    else if (r < 0.84) d = helloFloodCase(rng);
    else if (r < 0.87) d = readyCase(rng);
    else if (r < 0.998) d = mutatedCase(rng, state, pid);
    else d = cleanEofCase(state);
    if (!d) continue;
    if (gen.realIncumbent && (d.expect === 'committed' || (d.state === 'drain' && d.category === 'Ready from the successor'))) continue;
    // Byte-level Hellos embed the pid: the in-process rig knows it in advance; a fixture does not.
    // After Begin S gives an aborted successor the drain grace to leave (it may have accepted), so
    // there the offender leaves when told, as the library does; before Begin half of them stay to be killed.
    return { ...d, n, exitOnAbort: d.state === 'begin' || rng.chance(0.5), ignoreTerm: rng.chance(0.2) };
  }
}

/** Flips one bit of an id (a near miss). */
export function flipped(id: HandoffId): HandoffId {
  const out = Uint8Array.from(id);
  out[15] = (out[15]! ^ 1) & 0xff;
  return out;
}
