/**
 * Interop with an independent MessagePack implementation: it reads what we write, and we accept
 * what it writes (which is not always canonical: @msgpack/msgpack writes every bigint as uint64).
 * msgpackr was dropped as a dev dependency: its optional native part has no lockfile entries for
 * every platform on the registry this project installs from, which breaks `npm ci`.
 */

import { decode as mpDecode, encode as mpEncode } from '@msgpack/msgpack';
import t, { type Test } from 'tap';
import { SCHEMAS, decodeMessage, encodeMessage, type FieldKind, type Message } from '../../src/protocol/index.js';
import { hex } from './raw.js';
import { allSamples } from './samples.js';

/** A value as one of the libraries decoded it, compared to ours under the field's kind. */
function sameField(kind: FieldKind, theirs: unknown, ours: unknown): boolean {
  switch (kind) {
    case 'u64':
      return (typeof theirs === 'number' || typeof theirs === 'bigint') && BigInt(theirs) === ours;
    case 'u64_list':
      return Array.isArray(theirs) && theirs.length === (ours as bigint[]).length && theirs.every((x, i) => sameField('u64', x, (ours as bigint[])[i]));
    case 'capabilities':
      return typeof theirs === 'object' && theirs !== null && sameField('u64', (theirs as Record<string, unknown>)['reserved'], (ours as { reserved: bigint }).reserved);
    case 'id':
    case 'build_id':
    case 'fingerprint':
      return theirs instanceof Uint8Array && hex(theirs) === hex(ours as Uint8Array);
    case 'str_list':
      return Array.isArray(theirs) && JSON.stringify(theirs) === JSON.stringify(ours);
    default:
      return theirs === ours;
  }
}

function checkTheyRead(t: Test, lib: string, msg: Message, theirs: unknown, label: string): void {
  const obj = theirs as Record<string, unknown>;
  const rec = msg as unknown as Record<string, unknown>;
  const want = ['type', ...SCHEMAS[msg.type].map((f) => f.name)];
  const bad = SCHEMAS[msg.type].filter((f) => !sameField(f.kind, obj[f.name], rec[f.name])).map((f) => f.name);
  t.ok(obj['type'] === msg.type && JSON.stringify(Object.keys(obj)) === JSON.stringify(want) && bad.length === 0, `${lib} reads ${label}`, { bad });
}

/** The message as plain JS for the libraries to encode: bigints stay bigints, bins Uint8Arrays. */
function plain(msg: Message): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(msg)) out[k] = k === 'capabilities' ? { ...(v as object) } : v;
  return out;
}

// The 64 x 4096-byte and 65,536-item samples are covered by the round trip; here they would only
// slow the libraries down.
const samples = allSamples().filter(({ msg }) => encodeMessage(msg).length < 100_000);

t.test('@msgpack/msgpack decodes every payload we encode to the same fields', (t) => {
  for (const { label, msg } of samples) checkTheyRead(t, '@msgpack/msgpack', msg, mpDecode(encodeMessage(msg), { useBigInt64: true }), label);
  t.end();
});

t.test('we accept what @msgpack/msgpack encodes', (t) => {
  for (const { label, msg } of samples) {
    const bytes = mpEncode(plain(msg), { useBigInt64: true });
    t.strictSame(decodeMessage(bytes), msg, label);
  }
  t.end();
});

t.test('what the libraries write for a small message differs from ours only in format choices', (t) => {
  const msg: Message = { type: 'Heartbeat', ts_ms: 5n };
  t.equal(hex(encodeMessage(msg)), '82a474797065a9486561727462656174a574735f6d7305', 'ours: positive fixint');
  t.equal(hex(mpEncode(msg, { useBigInt64: true })), '82a474797065a9486561727462656174a574735f6d73cf0000000000000005', '@msgpack/msgpack: uint64');
  t.strictSame(decodeMessage(mpEncode(msg, { useBigInt64: true })), msg);
  t.end();
});
