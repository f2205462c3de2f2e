/**
 * Data-driven schemas: one table row per message lists its fields in wire order with their kind.
 * The same table drives encoding (canonical order), decoding and validation.
 */

import { ProtocolError } from './errors.js';
import type { Message, MessageType } from './messages.js';
import { decodeOne, MpExt, MpFloat, MsgpackError, type MpValue, U64_MAX, Writer } from './msgpack.js';

export const MAX_STR_BYTES = 4096;
export const MAX_BUILD_ID = 64;
export const MAX_LISTENING_ON = 64;
export const MAX_REVISIONS = 65_536;

export type FieldKind =
  | 'u16'
  | 'u32'
  | 'u64'
  | 'bool'
  | 'str'
  | 'id'
  | 'build_id'
  | 'fingerprint'
  | 'side'
  | 'capabilities'
  | 'str_list'
  | 'u64_list';

export interface FieldSpec {
  readonly name: string;
  readonly kind: FieldKind;
}

const f = (name: string, kind: FieldKind): FieldSpec => ({ name, kind });
const ID = f('handoff_id', 'id');

export const SCHEMAS: Readonly<Record<MessageType, readonly FieldSpec[]>> = {
  Hello: [f('role', 'side'), f('pid', 'u32'), f('build_id', 'build_id'), f('proto_min', 'u16'), f('proto_max', 'u16'), f('capabilities', 'capabilities')],
  HelloAck: [f('proto_version_chosen', 'u16'), ID],
  PrepareHandoff: [ID, f('successor_pid', 'u32'), f('deadline_ms', 'u64'), f('drain_grace_ms', 'u64')],
  Drained: [f('open_conns_remaining', 'u32'), f('accept_closed', 'bool')],
  SealRequest: [ID],
  SealProgress: [f('shards_sealed', 'u32'), f('shards_total', 'u32'), f('last_revision', 'u64')],
  SealComplete: [ID, f('last_revision_per_shard', 'u64_list'), f('data_dir_fingerprint', 'fingerprint')],
  SealFailed: [ID, f('error', 'str'), f('partial_state', 'str')],
  Begin: [ID],
  Ready: [ID, f('listening_on', 'str_list'), f('healthz_ok', 'bool'), f('advertised_revision_per_shard', 'u64_list')],
  Commit: [ID],
  Abort: [ID, f('reason', 'str')],
  ResumeAfterAbort: [ID],
  Heartbeat: [f('ts_ms', 'u64')],
};

export const MESSAGE_TYPES = Object.keys(SCHEMAS) as MessageType[];

function typeName(v: unknown): string {
  if (v === null) return 'nil';
  if (v instanceof MpFloat) return 'float';
  if (v instanceof MpExt) return 'ext';
  if (v instanceof Uint8Array) return 'bin';
  if (v instanceof Map) return 'map';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number' || typeof v === 'bigint') return 'int';
  return typeof v;
}

/** `index` names a list element; the strings are built only on the error path. */
function bad(where: string, why: string, index?: number): ProtocolError {
  return new ProtocolError('malformed_message', `${where}${index === undefined ? '' : `[${index}]`}: ${why}`);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

function uint(where: string, v: unknown, max: number): number {
  // The decoder gives a bigint only for values beyond 2^53 - 1: an integer, just out of range.
  if (typeof v === 'bigint') throw bad(where, `${v} out of range 0..${max}`);
  if (typeof v !== 'number' || !Number.isInteger(v)) throw bad(where, `expected an integer, got ${typeName(v)}`);
  if (v < 0 || v > max) throw bad(where, `${v} out of range 0..${max}`);
  return v;
}

function u64(where: string, v: unknown, index?: number): bigint {
  if (typeof v === 'bigint') {
    if (v < 0n || v > U64_MAX) throw bad(where, 'out of u64 range', index);
    return v;
  }
  if (typeof v === 'number' && Number.isInteger(v)) {
    if (v < 0) throw bad(where, `${v} out of u64 range`, index);
    // Only the encoder can meet an unsafe number (the decoder returns bigints above 2^53 - 1): its
    // exact value is already lost, and beyond 2^64 it would not even fit.
    if (!Number.isSafeInteger(v)) throw bad(where, `${v} is not a safe integer: use a bigint`, index);
    return BigInt(v);
  }
  throw bad(where, `expected an integer, got ${typeName(v)}`, index);
}

function str(where: string, v: unknown, index?: number): string {
  if (typeof v !== 'string') throw bad(where, `expected str, got ${typeName(v)}`, index);
  if (v.length > MAX_STR_BYTES / 3 && Buffer.byteLength(v) > MAX_STR_BYTES) throw bad(where, `longer than ${MAX_STR_BYTES} bytes`, index);
  return v;
}

function bin(where: string, v: unknown, min: number, max: number): Uint8Array {
  if (!(v instanceof Uint8Array)) throw bad(where, `expected bin, got ${typeName(v)}`);
  if (v.length < min || v.length > max) throw bad(where, min === max ? `must be ${min} bytes, got ${v.length}` : `longer than ${max} bytes`);
  return v;
}

function list(where: string, v: unknown, max: number): unknown[] {
  if (!Array.isArray(v)) throw bad(where, `expected array, got ${typeName(v)}`);
  if (v.length > max) throw bad(where, `more than ${max} items`);
  return v;
}

/** Checks one field value (decoded or about to be encoded) and returns it in its TypeScript form. */
function check(where: string, kind: FieldKind, v: unknown): unknown {
  switch (kind) {
    case 'u16':
      return uint(where, v, 0xffff);
    case 'u32':
      return uint(where, v, 0xffff_ffff);
    case 'u64':
      return u64(where, v);
    case 'bool':
      if (typeof v !== 'boolean') throw bad(where, `expected bool, got ${typeName(v)}`);
      return v;
    case 'str':
      return str(where, v);
    case 'id':
      return bin(where, v, 16, 16);
    case 'build_id':
      return bin(where, v, 0, MAX_BUILD_ID);
    case 'fingerprint':
      return bin(where, v, 32, 32);
    case 'side':
      if (v !== 'Incumbent' && v !== 'Successor') throw bad(where, 'expected "Incumbent" or "Successor"');
      return v;
    case 'capabilities': {
      // Decoded as a Map; handed to the encoder as a plain object.
      let reserved: unknown;
      if (v instanceof Map) reserved = v.get('reserved');
      else if (isPlainObject(v)) reserved = v['reserved'];
      else throw bad(where, `expected map, got ${typeName(v)}`);
      if (reserved === undefined) throw bad(`${where}.reserved`, 'missing');
      return { reserved: u64(`${where}.reserved`, reserved) };
    }
    case 'str_list': {
      const a = list(where, v, MAX_LISTENING_ON);
      const out = new Array<string>(a.length);
      for (let i = 0; i < a.length; i++) out[i] = str(where, a[i], i);
      return out;
    }
    case 'u64_list': {
      const a = list(where, v, MAX_REVISIONS);
      const out = new Array<bigint>(a.length);
      for (let i = 0; i < a.length; i++) out[i] = u64(where, a[i], i);
      return out;
    }
  }
}

function write(w: Writer, kind: FieldKind, v: unknown): void {
  switch (kind) {
    case 'u16':
    case 'u32':
    case 'u64':
      w.uint(v as number | bigint);
      return;
    case 'bool':
      w.bool(v as boolean);
      return;
    case 'str':
    case 'side':
      w.str(v as string);
      return;
    case 'id':
    case 'build_id':
    case 'fingerprint':
      w.bin(v as Uint8Array);
      return;
    case 'capabilities':
      w.mapHeader(1);
      w.str('reserved');
      w.uint((v as { reserved: bigint }).reserved);
      return;
    case 'str_list': {
      const a = v as string[];
      w.arrayHeader(a.length);
      for (const s of a) w.str(s);
      return;
    }
    case 'u64_list': {
      const a = v as bigint[];
      w.arrayHeader(a.length);
      for (const n of a) w.uint(n);
      return;
    }
  }
}

interface PlannedField extends FieldSpec {
  /** `<Type>.<field>`, for error details. */
  readonly where: string;
  /** The field name as an encoded str. */
  readonly key: Buffer;
}

/** Per type, what never changes: the map header, `type` and its value, encoded; the fields' keys. */
const PLANS = {} as Record<MessageType, { readonly head: Buffer; readonly fields: readonly PlannedField[] }>;
{
  const w = new Writer(64);
  const encoded = (fn: () => void): Buffer => {
    w.reset();
    fn();
    return w.take();
  };
  for (const type of MESSAGE_TYPES) {
    const fields = SCHEMAS[type];
    const head = encoded(() => {
      w.mapHeader(fields.length + 1);
      w.str('type');
      w.str(type);
    });
    PLANS[type] = { head, fields: fields.map((f) => ({ ...f, where: `${type}.${f.name}`, key: encoded(() => w.str(f.name)) })) };
  }
}

/** Validates `msg` against its schema and appends its canonical payload to `w`. */
export function writeMessage(w: Writer, msg: Message): void {
  // An own-property check: 'toString' or '__proto__' must not find Object.prototype's members.
  if (!Object.prototype.hasOwnProperty.call(SCHEMAS, msg.type)) throw new ProtocolError('unknown_message', `unknown type ${JSON.stringify(String(msg.type))}`);
  const plan = PLANS[msg.type];
  const rec = msg as unknown as Record<string, unknown>;
  w.raw(plan.head);
  for (const fs of plan.fields) {
    const v = rec[fs.name];
    if (v === undefined) throw bad(fs.where, 'missing');
    const checked = check(fs.where, fs.kind, v);
    w.raw(fs.key);
    write(w, fs.kind, checked);
  }
}

const scratch = new Writer(4096);

/** The canonical MessagePack payload of one message (a fresh Buffer). */
export function encodeMessage(msg: Message): Buffer {
  scratch.reset();
  writeMessage(scratch, msg);
  return scratch.take();
}

/** Decodes and validates one payload: `malformed_message` or `unknown_message` on any fault. */
export function decodeMessage(payload: Uint8Array): Message {
  let root: MpValue;
  try {
    root = decodeOne(payload);
  } catch (err) {
    // The decoder's own faults, and RangeError from hostile sizes, all mean the same to a peer.
    const why = err instanceof MsgpackError ? err.message : 'undecodable payload';
    throw new ProtocolError('malformed_message', why);
  }
  if (!(root instanceof Map)) throw bad('payload', `expected map, got ${typeName(root)}`);
  for (const k of root.keys()) if (typeof k !== 'string') throw bad('payload', `map key is ${typeName(k)}, not str`);
  const t = root.get('type');
  if (typeof t !== 'string') throw bad('type', t === undefined ? 'missing' : `expected str, got ${typeName(t)}`);
  if (!Object.prototype.hasOwnProperty.call(SCHEMAS, t)) throw new ProtocolError('unknown_message', `unknown type ${JSON.stringify(t.slice(0, 64))}`);
  const type = t as MessageType;
  const out: Record<string, unknown> = { type };
  for (const fs of PLANS[type].fields) {
    const v = root.get(fs.name);
    if (v === undefined) throw bad(fs.where, 'missing');
    out[fs.name] = check(fs.where, fs.kind, v);
  }
  return out as unknown as Message;
}
