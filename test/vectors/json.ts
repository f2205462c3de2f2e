/**
 * The JSON form of a message used by the golden vectors (see README.md in this directory):
 * `type` plus every field; u64 as a decimal string, bin as lowercase hex, Capabilities as
 * {"reserved": "<decimal>"}, lists element-wise. Driven by SCHEMAS so it follows the wire table.
 */

import { SCHEMAS, type FieldKind, type Message, type MessageType } from '../../src/protocol/index.js';

export type JsonValue = string | number | boolean | JsonValue[] | { [k: string]: JsonValue };
export type JsonMessage = { type: string } & { [k: string]: JsonValue };

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

function fieldToJson(kind: FieldKind, v: unknown): JsonValue {
  switch (kind) {
    case 'u16':
    case 'u32':
    case 'bool':
    case 'str':
    case 'side':
      return v as JsonValue;
    case 'u64':
      return (v as bigint).toString();
    case 'id':
    case 'build_id':
    case 'fingerprint':
      return toHex(v as Uint8Array);
    case 'capabilities':
      return { reserved: (v as { reserved: bigint }).reserved.toString() };
    case 'str_list':
      return [...(v as string[])];
    case 'u64_list':
      return (v as bigint[]).map((x) => x.toString());
  }
}

export function toJson(msg: Message): JsonMessage {
  const rec = msg as unknown as Record<string, unknown>;
  const out: JsonMessage = { type: msg.type };
  for (const f of SCHEMAS[msg.type]) out[f.name] = fieldToJson(f.kind, rec[f.name]);
  return out;
}

function fail(where: string, why: string): never {
  throw new TypeError(`${where}: ${why}`);
}

function decimal(where: string, v: unknown): bigint {
  if (typeof v !== 'string' || !/^(0|[1-9][0-9]*)$/.test(v)) fail(where, 'expected a decimal string');
  return BigInt(v);
}

function hexBytes(where: string, v: unknown): Uint8Array {
  if (typeof v !== 'string' || !/^([0-9a-f]{2})*$/.test(v)) fail(where, 'expected lowercase hex');
  return Uint8Array.from(Buffer.from(v, 'hex'));
}

function fieldFromJson(where: string, kind: FieldKind, v: unknown): unknown {
  switch (kind) {
    case 'u16':
    case 'u32':
      if (typeof v !== 'number' || !Number.isInteger(v)) fail(where, 'expected an integer');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') fail(where, 'expected a boolean');
      return v;
    case 'str':
    case 'side':
      if (typeof v !== 'string') fail(where, 'expected a string');
      return v;
    case 'u64':
      return decimal(where, v);
    case 'id':
    case 'build_id':
    case 'fingerprint':
      return hexBytes(where, v);
    case 'capabilities': {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'expected an object');
      const keys = Object.keys(v);
      if (keys.length !== 1 || keys[0] !== 'reserved') fail(where, 'expected exactly {"reserved": ...}');
      return { reserved: decimal(`${where}.reserved`, (v as Record<string, unknown>)['reserved']) };
    }
    case 'str_list':
      if (!Array.isArray(v)) fail(where, 'expected an array');
      return v.map((x, i) => fieldFromJson(`${where}[${i}]`, 'str', x));
    case 'u64_list':
      if (!Array.isArray(v)) fail(where, 'expected an array');
      return v.map((x, i) => decimal(`${where}[${i}]`, x));
  }
}

/** Parses the JSON form strictly: exactly `type` plus the schema's fields, each in its JSON shape. */
export function fromJson(obj: unknown): Message {
  if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) fail('message', 'expected an object');
  const rec = obj as Record<string, unknown>;
  const type = rec['type'];
  if (typeof type !== 'string' || !Object.prototype.hasOwnProperty.call(SCHEMAS, type)) fail('type', `unknown ${String(type)}`);
  const fields = SCHEMAS[type as MessageType];
  const extra = Object.keys(rec).filter((k) => k !== 'type' && !fields.some((f) => f.name === k));
  if (extra.length > 0) fail(type, `unexpected keys ${extra.join(', ')}`);
  const out: Record<string, unknown> = { type };
  for (const f of fields) {
    if (!(f.name in rec)) fail(`${type}.${f.name}`, 'missing');
    out[f.name] = fieldFromJson(`${type}.${f.name}`, f.kind, rec[f.name]);
  }
  return out as unknown as Message;
}
