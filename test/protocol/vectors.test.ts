import { decode as mpDecode } from '@msgpack/msgpack';
import { readFileSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { MESSAGE_TYPES, SCHEMAS, decodeFrames, encodeFrame, encodeMessage } from '../../src/protocol/index.js';
import { fromJson, toJson } from '../vectors/json.js';
import { VECTOR_MESSAGES } from '../vectors/messages.js';
import { hex, unhex } from './raw.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'vectors');
const readHex = (type: string): Buffer => unhex(readFileSync(join(dir, `${type}.hex`), 'utf8'));
const readJson = (type: string): unknown => JSON.parse(readFileSync(join(dir, `${type}.json`), 'utf8')) as unknown;

t.test('there is exactly one .hex and one .json vector per variant', (t) => {
  const files = readdirSync(dir).filter((f) => f.endsWith('.hex') || f.endsWith('.json'));
  const want = MESSAGE_TYPES.flatMap((m) => [`${m}.hex`, `${m}.json`]).sort();
  t.strictSame(files.sort(), want);
  t.end();
});

for (const type of MESSAGE_TYPES) {
  t.test(`${type} vector`, (t) => {
    const text = readFileSync(join(dir, `${type}.hex`), 'utf8');
    t.match(text, /^[0-9a-f\s]+$/, 'lowercase hex and whitespace only');
    const bytes = readHex(type);
    const json = readJson(type);
    const msg = fromJson(json);

    t.equal(hex(encodeFrame(msg, 1)), hex(bytes), 'encoding the JSON gives exactly the hex');
    const frames = decodeFrames(bytes);
    t.equal(frames.length, 1, 'the hex is one whole frame');
    t.equal(frames[0]?.version, 1, 'header version 1');
    t.strictSame(frames[0] && toJson(frames[0].message), json, 'decoding the hex gives the JSON');

    // Frame layout, checked by hand rather than through our decoder.
    t.equal(bytes.readUInt32LE(0), bytes.length - 4, 'frame_len = bytes after the length field');
    t.equal(bytes.readUInt16LE(4), 1, 'u16 LE version 1');
    const payload = bytes.subarray(6);
    t.equal(hex(payload), hex(encodeMessage(msg)), 'the payload is the message encoding');

    // An independent decoder sees `type` first and the fields in schema order with the JSON's values.
    const other = mpDecode(payload, { useBigInt64: true }) as Record<string, unknown>;
    t.strictSame(Object.keys(other), ['type', ...SCHEMAS[type].map((f) => f.name)], 'type first, then the fields in wire order');
    t.strictSame(normalise(other), json, '@msgpack/msgpack reads the same values');
    t.end();
  });
}

t.test('the vectors hold what generate.ts would write today', (t) => {
  t.strictSame(
    VECTOR_MESSAGES.map((m) => m.type),
    MESSAGE_TYPES,
    'one message per variant, in table order',
  );
  for (const m of VECTOR_MESSAGES) t.strictSame(readJson(m.type), toJson(m), `${m.type}.json matches VECTOR_MESSAGES`);
  t.end();
});

t.test('the JSON form is parsed strictly (so a vector cannot silently mean something else)', (t) => {
  const good = { type: 'Heartbeat', ts_ms: '1' };
  t.strictSame(fromJson(good), { type: 'Heartbeat', ts_ms: 1n });
  t.throws(() => fromJson({ ...good, extra: 1 }), /unexpected keys extra/);
  t.throws(() => fromJson({ type: 'Heartbeat' }), /missing/);
  t.throws(() => fromJson({ type: 'Heartbeat', ts_ms: 1 }), /decimal string/);
  t.throws(() => fromJson({ type: 'Heartbeat', ts_ms: '01' }), /decimal string/);
  t.throws(() => fromJson({ type: 'Nope' }), /unknown/);
  t.throws(() => fromJson([]), /expected an object/);
  t.throws(() => fromJson({ type: 'Begin', handoff_id: 'AB' }), /lowercase hex/);
  t.throws(() => fromJson({ type: 'Drained', open_conns_remaining: 1.5, accept_closed: true }), /integer/);
  t.throws(() => fromJson({ type: 'Drained', open_conns_remaining: 1, accept_closed: 'yes' }), /boolean/);
  t.throws(() => fromJson({ type: 'Abort', handoff_id: '', reason: 1 }), /string/);
  t.throws(() => fromJson({ ...(readJson('Hello') as object), capabilities: { reserved: '1', more: '2' } }), /exactly/);
  t.throws(() => fromJson({ ...(readJson('Hello') as object), capabilities: null }), /object/);
  t.throws(() => fromJson({ ...(readJson('Ready') as object), listening_on: 'http' }), /array/);
  t.throws(() => fromJson({ ...(readJson('Ready') as object), advertised_revision_per_shard: '1' }), /array/);
  t.end();
});

/** @msgpack/msgpack's view of a payload, in the JSON form (bigint and small ints as the schema wants). */
function normalise(obj: Record<string, unknown>): unknown {
  const type = obj['type'] as keyof typeof SCHEMAS;
  const out: Record<string, unknown> = { type };
  for (const f of SCHEMAS[type]) {
    const v = obj[f.name];
    if (f.kind === 'u64') out[f.name] = String(v);
    else if (f.kind === 'u64_list') out[f.name] = (v as unknown[]).map(String);
    else if (f.kind === 'capabilities') out[f.name] = { reserved: String((v as Record<string, unknown>)['reserved']) };
    else if (v instanceof Uint8Array) out[f.name] = hex(v);
    else out[f.name] = v;
  }
  return out;
}
