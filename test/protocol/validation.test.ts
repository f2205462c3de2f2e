/**
 * Validation, driven by SCHEMAS: every field of every variant is given wrong types, out-of-range
 * values and a missing key, in payloads built byte by byte (so that floats, negative integers, ext
 * and non-canonical formats can be written at all).
 */

import t from 'tap';
import {
  MESSAGE_TYPES,
  ProtocolError,
  SCHEMAS,
  decodeMessage,
  encodeMessage,
  type ErrorKind,
  type FieldKind,
  type Message,
  type MessageType,
} from '../../src/protocol/index.js';
import {
  arr,
  arrHeader,
  bin,
  bool,
  cat,
  ext,
  f32,
  f64,
  hex,
  int,
  intAs,
  map,
  map16,
  nil,
  str,
  str8,
  strBytes,
  uint,
  type Bytes,
  type Entry,
} from './raw.js';
import { ID, base } from './samples.js';

/** The canonical bytes of one valid field value, written with the test's own writer. */
function rawField(kind: FieldKind, v: unknown): Bytes {
  switch (kind) {
    case 'u16':
    case 'u32':
    case 'u64':
      return uint(v as number | bigint);
    case 'bool':
      return bool(v as boolean);
    case 'str':
    case 'side':
      return str(v as string);
    case 'id':
    case 'build_id':
    case 'fingerprint':
      return bin(v as Uint8Array);
    case 'capabilities':
      return map([['reserved', uint((v as { reserved: bigint }).reserved)]]);
    case 'str_list':
      return arr((v as string[]).map(str));
    case 'u64_list':
      return arr((v as bigint[]).map(uint));
  }
}

/** The entries of base(type)'s payload: type first, then each field. */
function entries(type: MessageType): Entry[] {
  const rec = base(type) as unknown as Record<string, unknown>;
  return [['type', str(type)], ...SCHEMAS[type].map((f): Entry => [f.name, rawField(f.kind, rec[f.name])])];
}

const replace = (es: Entry[], name: string, v: Bytes): Entry[] => es.map(([k, x]) => [k, k === name ? v : x]);
const drop = (es: Entry[], name: string): Entry[] => es.filter(([k]) => k !== name);

function errorOf(fn: () => unknown): ProtocolError | string {
  try {
    fn();
  } catch (err) {
    return err instanceof ProtocolError ? err : `not a ProtocolError: ${String(err)}`;
  }
  return 'no error';
}

const TYPES_WRONG: Record<string, Bytes> = {
  nil: nil(),
  bool: bool(true),
  str: str('1'),
  bin: bin(1),
  array: arr([uint(1)]),
  'empty map': map([]),
  'float64 1.0': f64(1),
  'float32 1.0': f32(1),
  'fixext 1': ext(1, Uint8Array.of(1)),
  'negative fixint': int(-1),
  'uint 0': uint(0),
};
const pick = (...names: string[]): Array<[string, Bytes]> => names.map((n) => [n, TYPES_WRONG[n]!]);
const NOT_INT = pick('nil', 'bool', 'str', 'bin', 'array', 'empty map', 'float64 1.0', 'float32 1.0', 'fixext 1');

/** Invalid values of each kind: wrong types, then out-of-range values. */
const WRONG: Record<FieldKind, Array<[string, Bytes]>> = {
  u16: [...NOT_INT, ['65536', uint(65_536)], ['-1', int(-1)], ['-1 as int64', intAs('i64', -1)], ['-128 as int8', intAs('i8', -128)], ['2^64-1', uint(2n ** 64n - 1n)], ['2^53+1 (a bigint)', uint(2n ** 53n + 1n)]],
  u32: [...NOT_INT, ['2^32', uint(2 ** 32)], ['-1', int(-1)], ['-2^31', int(-(2 ** 31))], ['-2^63', int(-(2n ** 63n))], ['2^64-1', uint(2n ** 64n - 1n)]],
  u64: [...NOT_INT, ['float64 2^53', f64(2 ** 53)], ['-1', int(-1)], ['-2^40 as int64', intAs('i64', -(2 ** 40))], ['-2^63', int(-(2n ** 63n))]],
  bool: pick('nil', 'uint 0', 'str', 'bin', 'array', 'empty map', 'float64 1.0', 'fixext 1').concat([['uint 1', uint(1)], ['str "true"', str('true')]]),
  str: [
    ...pick('nil', 'uint 0', 'bool', 'bin', 'empty map', 'float64 1.0', 'fixext 1'),
    ['array of str', arr([str('a')])],
    ['4097 ASCII bytes', str('x'.repeat(4097))],
    ['4098 bytes in 1366 chars', str('€'.repeat(1366))],
    ['4100 bytes in 1025 surrogate pairs', str('\u{1F600}'.repeat(1025))],
  ],
  side: [...pick('nil', 'uint 0', 'bool', 'array', 'float64 1.0'), ['"incumbent"', str('incumbent')], ['"Supervisor"', str('Supervisor')], ['""', str('')], ['"Incumbent "', str('Incumbent ')], ['bin "Incumbent"', bin(new TextEncoder().encode('Incumbent'))]],
  id: [...pick('nil', 'uint 0', 'bool', 'empty map', 'float64 1.0', 'fixext 1'), ['bin 0', bin(0)], ['bin 15', bin(15)], ['bin 17', bin(17)], ['bin 32', bin(32)], ['str of 16 chars', str('0123456789abcdef')], ['array of 16 ints', arr(Array.from({ length: 16 }, () => uint(1)))]],
  build_id: [...pick('nil', 'uint 0', 'bool', 'str', 'array', 'float64 1.0'), ['bin 65', bin(65)], ['bin 256', bin(256)]],
  fingerprint: [...pick('nil', 'uint 0', 'str', 'array', 'float64 1.0'), ['bin 0', bin(0)], ['bin 31', bin(31)], ['bin 33', bin(33)], ['bin 16', bin(16)]],
  capabilities: [
    ...pick('nil', 'uint 0', 'bool', 'str', 'bin', 'float64 1.0', 'fixext 1'),
    ['array', arr([uint(0)])],
    ['{} (reserved missing)', map([])],
    ['{Reserved: 0}', map([['Reserved', uint(0)]])],
    ['{1: 0}', map([[uint(1), uint(0)]])],
    ['{reserved: -1}', map([['reserved', int(-1)]])],
    ['{reserved: float64 0}', map([['reserved', f64(0)]])],
    ['{reserved: float32 0}', map([['reserved', f32(0)]])],
    ['{reserved: "0"}', map([['reserved', str('0')]])],
    ['{reserved: nil}', map([['reserved', nil()]])],
  ],
  str_list: [
    ...pick('nil', 'uint 0', 'str', 'bin', 'empty map', 'float64 1.0'),
    ['[1]', arr([uint(1)])],
    ['[nil]', arr([nil()])],
    ['[bin]', arr([bin(2)])],
    ['["a", ["b"]]', arr([str('a'), arr([str('b')])])],
    ['65 strings', arr(Array.from({ length: 65 }, () => str('a')))],
    ['a 4097-byte string', arr([str('a'), str('x'.repeat(4097))])],
  ],
  u64_list: [
    ...pick('nil', 'uint 0', 'str', 'bin', 'empty map', 'float64 1.0'),
    ['[float64 1.0]', arr([f64(1)])],
    ['[float32 1.0]', arr([f32(1)])],
    ['["1"]', arr([str('1')])],
    ['[nil]', arr([nil()])],
    ['[1, -1]', arr([uint(1), int(-1)])],
    ['[[1]]', arr([arr([uint(1)])])],
    ['65,537 items', arr(Array.from({ length: 65_537 }, () => uint(1)))],
  ],
};

t.test('the hand-written base payloads are valid and canonical (the control for everything below)', (t) => {
  for (const type of MESSAGE_TYPES) {
    const payload = map(entries(type));
    t.strictSame(decodeMessage(payload), base(type), `${type} decodes`);
    t.equal(hex(encodeMessage(base(type))), hex(payload), `${type}: our encoder writes the same bytes`);
  }
  t.end();
});

t.test('every field of every variant: wrong types, out-of-range values, missing key', (t) => {
  let cases = 0;
  for (const type of MESSAGE_TYPES) {
    for (const f of SCHEMAS[type]) {
      const where = `${type}.${f.name}`;
      for (const [label, bytes] of WRONG[f.kind]) {
        const err = errorOf(() => decodeMessage(map(replace(entries(type), f.name, bytes))));
        cases++;
        if (!(err instanceof ProtocolError) || err.kind !== 'malformed_message' || !err.detail.startsWith(where)) {
          t.fail(`${where} = ${label}`, { got: String(err) });
        }
      }
      const err = errorOf(() => decodeMessage(map(drop(entries(type), f.name))));
      cases++;
      t.ok(err instanceof ProtocolError && err.kind === 'malformed_message' && err.detail === `${where}: missing`, `${where} missing`);
      // The same field under a near-miss name is an unknown key: the real one is still missing.
      const renamed = entries(type).map(([k, v]): Entry => [k === f.name ? f.name.toUpperCase() : k, v]);
      t.equal(errorOf(() => decodeMessage(map(renamed))) instanceof ProtocolError, true, `${where} renamed is missing too`);
    }
  }
  t.ok(cases > 400, `${cases} invalid payloads, each malformed_message about the right field`);
  t.end();
});

t.test('a bad list element is named with its index', (t) => {
  const e1 = errorOf(() => decodeMessage(map(replace(entries('SealComplete'), 'last_revision_per_shard', arr([uint(1), int(-1)])))));
  t.equal(e1 instanceof ProtocolError && e1.detail, 'SealComplete.last_revision_per_shard[1]: -1 out of u64 range');
  const e2 = errorOf(() => decodeMessage(map(replace(entries('Ready'), 'listening_on', arr([str('a'), str('b'), nil()])))));
  t.equal(e2 instanceof ProtocolError && e2.detail, 'Ready.listening_on[2]: expected str, got nil');
  const e3 = errorOf(() => encodeMessage({ ...base('Ready'), advertised_revision_per_shard: [1n, 2n, 2n ** 64n] } as Message));
  t.equal(e3 instanceof ProtocolError && e3.detail, 'Ready.advertised_revision_per_shard[2]: out of u64 range');
  t.end();
});

t.test('a float is refused for every integer field even when integral (float64 0xcb, float32 0xca)', (t) => {
  for (const type of MESSAGE_TYPES) {
    for (const f of SCHEMAS[type]) {
      if (f.kind !== 'u16' && f.kind !== 'u32' && f.kind !== 'u64') continue;
      const rec = base(type) as unknown as Record<string, unknown>;
      const n = Number(rec[f.name]);
      for (const [fmt, bytes] of [['float64', f64(n)], ['float32', f32(1)], ['float64 0', f64(0)]] as const) {
        t.equal(bytes[0], fmt === 'float32' ? 0xca : 0xcb);
        const err = errorOf(() => decodeMessage(map(replace(entries(type), f.name, bytes))));
        t.ok(err instanceof ProtocolError && err.kind === 'malformed_message' && /float/.test(err.detail), `${type}.${f.name} as ${fmt}`, { got: String(err) });
      }
    }
  }
  t.end();
});

t.test('a 17-byte (and a 15-byte) handoff id is refused in every variant that has one', (t) => {
  let n = 0;
  for (const type of MESSAGE_TYPES) {
    if (!SCHEMAS[type].some((f) => f.kind === 'id')) continue;
    n++;
    for (const len of [15, 17]) {
      const err = errorOf(() => decodeMessage(map(replace(entries(type), 'handoff_id', bin(len)))));
      t.ok(err instanceof ProtocolError && err.kind === 'malformed_message' && err.detail === `${type}.handoff_id: must be 16 bytes, got ${len}`, `${type} with ${len} bytes`);
    }
  }
  t.equal(n, 10, 'ten variants carry a handoff id');
  t.end();
});

t.test('type: unknown names are unknown_message; a missing or non-str type is malformed_message', (t) => {
  const hb = (tv: Bytes | undefined): Bytes => map([...(tv ? [['type', tv] as Entry] : []), ['ts_ms', uint(1)]]);
  const cases: Array<[string, Bytes, ErrorKind]> = [
    ['"Nope"', hb(str('Nope')), 'unknown_message'],
    ['"heartbeat" (case matters)', hb(str('heartbeat')), 'unknown_message'],
    ['""', hb(str('')), 'unknown_message'],
    ['"__proto__"', hb(str('__proto__')), 'unknown_message'],
    ['"toString"', hb(str('toString')), 'unknown_message'],
    ['"constructor"', hb(str('constructor')), 'unknown_message'],
    ['a 4096-byte name', hb(str('X'.repeat(4096))), 'unknown_message'],
    ['missing', hb(undefined), 'malformed_message'],
    ['nil', hb(nil()), 'malformed_message'],
    ['uint', hb(uint(13)), 'malformed_message'],
    ['bin "Heartbeat"', hb(bin(new TextEncoder().encode('Heartbeat'))), 'malformed_message'],
  ];
  for (const [label, payload, kind] of cases) {
    const err = errorOf(() => decodeMessage(payload));
    t.ok(err instanceof ProtocolError && err.kind === kind, `type ${label}: ${kind}`, { got: String(err) });
  }
  const long = errorOf(() => decodeMessage(hb(str('X'.repeat(4096)))));
  t.ok(long instanceof ProtocolError && long.detail.length < 100, 'an unknown name is cut in the error detail');
  t.end();
});

t.test('payload-level faults are malformed_message', (t) => {
  const good = map(entries('Heartbeat'));
  const cases: Array<[string, Bytes]> = [
    ['a trailing byte after the map', cat(good, [0xc0])],
    ['a trailing map', cat(good, good)],
    ['an array payload', arr([str('type'), str('Heartbeat')])],
    ['a str payload', str('Heartbeat')],
    ['a uint payload', uint(1)],
    ['a nil payload', nil()],
    ['a float payload', f64(1)],
    ['an uint key', map([...entries('Heartbeat'), [uint(1), uint(1)]])],
    ['a nil key', map([...entries('Heartbeat'), [nil(), uint(1)]])],
    ['a bin key', map([...entries('Heartbeat'), [bin(new TextEncoder().encode('x')), uint(1)]])],
    ['an array key', map([...entries('Heartbeat'), [arr([]), uint(1)]])],
    ['a duplicate key', map([...entries('Heartbeat'), ['ts_ms', uint(2)]])],
    ['a duplicate type', map([['type', str('Heartbeat')], ...entries('Heartbeat')])],
    ['invalid UTF-8 in a field', map(replace(entries('Abort'), 'reason', strBytes(Uint8Array.of(0x61, 0xff))))],
    ['a truncated UTF-8 sequence', map(replace(entries('Abort'), 'reason', strBytes(Uint8Array.of(0xe2, 0x82))))],
    ['an overlong UTF-8 encoding', map(replace(entries('Abort'), 'reason', strBytes(Uint8Array.of(0xc0, 0xaf))))],
    ['a UTF-8-encoded surrogate', map(replace(entries('Abort'), 'reason', strBytes(Uint8Array.of(0xed, 0xa0, 0x80))))],
    ['invalid UTF-8 in an unknown key', map([...entries('Heartbeat'), [strBytes(Uint8Array.of(0xff)), uint(1)]])],
    ['invalid UTF-8 under an unknown key', map([...entries('Heartbeat'), ['x', strBytes(Uint8Array.of(0xff))]])],
    ['0xc1 under an unknown key', map([...entries('Heartbeat'), ['x', Uint8Array.of(0xc1)]])],
    ['0xc1 as the payload', Uint8Array.of(0xc1)],
    ['0xc1 as a key', cat([0x81, 0xc1, 0x01])],
    ['an empty payload', new Uint8Array(0)],
    ['a map header with no entries after it', Uint8Array.of(0x82)],
    ['array32 claiming 2^32-1 items', map([...entries('Heartbeat'), ['x', Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff)]])],
    ['array16 claiming more items than bytes', map([...entries('Heartbeat'), ['x', cat(arrHeader(1000), [1, 2, 3])]])],
    ['map32 claiming 2^32-1 entries', Uint8Array.of(0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 0x61, 0x01)],
    ['str32 claiming 4 GiB', map([...entries('Heartbeat'), ['x', Uint8Array.of(0xdb, 0xff, 0xff, 0xff, 0xff, 0x61)]])],
    ['bin32 claiming 4 GiB', map([...entries('Heartbeat'), ['x', Uint8Array.of(0xc6, 0xff, 0xff, 0xff, 0xff, 0x61)]])],
    ['ext32 claiming 4 GiB', map([...entries('Heartbeat'), ['x', Uint8Array.of(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x61)]])],
    ['nesting 65 deep under an unknown key', map([...entries('Heartbeat'), ['x', nested(65)]])],
    ['a truncated float64', map([...entries('Heartbeat'), ['x', f64(1).subarray(0, 5)]])],
  ];
  for (const [label, payload] of cases) {
    const err = errorOf(() => decodeMessage(payload));
    t.ok(err instanceof ProtocolError && err.kind === 'malformed_message', label, { got: String(err) });
  }
  t.end();
});

t.test('every strict prefix of every valid payload is malformed_message', (t) => {
  let n = 0;
  for (const type of MESSAGE_TYPES) {
    const p = encodeMessage(base(type));
    for (let i = 0; i < p.length; i++) {
      n++;
      const err = errorOf(() => decodeMessage(p.subarray(0, i)));
      if (!(err instanceof ProtocolError && err.kind === 'malformed_message')) t.fail(`${type} cut at ${i}: ${String(err)}`);
    }
  }
  t.pass(`${n} prefixes`);
  t.end();
});

/** An array nested `depth` levels deep, innermost empty. */
function nested(depth: number): Bytes {
  let v = arr([]);
  for (let i = 1; i < depth; i++) v = arr([v]);
  return v;
}

t.test('unknown keys are ignored whatever their value, wherever they are', (t) => {
  const values: Array<[string, Bytes]> = [
    ['nil', nil()],
    ['float32', f32(1.5)],
    ['float64 NaN', f64(Number.NaN)],
    ['float64 integral', f64(7)],
    ['fixext 1', ext(-1, Uint8Array.of(1))],
    ['fixext 2/4/8/16', arr([ext(2, new Uint8Array(2)), ext(3, new Uint8Array(4)), ext(4, new Uint8Array(8)), ext(5, new Uint8Array(16))])],
    ['ext8', ext(6, new Uint8Array(3))],
    ['ext16', ext(7, new Uint8Array(300))],
    ['ext32', ext(8, new Uint8Array(70_000))],
    ['nested map with non-string keys', map([[uint(1), map([[nil(), arr([f32(1)])]])], [bin(2), bool(false)]])],
    ['a map under a map key', map([[map([['k', uint(1)]]), uint(2)]])],
    ['negative ints in every format', arr([int(-1), int(-100), int(-1000), int(-100_000), int(-(2n ** 40n)), int(-(2n ** 63n))])],
    ['uint64 max', uint(2n ** 64n - 1n)],
    ['bin16/bin32', arr([bin(300), bin(70_000)])],
    ['str8/16/32', arr([str('x'.repeat(40)), str('x'.repeat(300)), str('x'.repeat(70_000))])],
    ['array16/array32', arr([arr(Array.from({ length: 20 }, () => nil())), cat([0xdd, 0, 0, 0, 1], nil())])],
    ['map16/map32', arr([map16([['a', nil()]]), cat([0xdf, 0, 0, 0, 1], str('a'), nil())])],
    ['nesting 64 deep (the limit)', nested(64)],
    ['true', bool(true)],
  ];
  for (const type of ['Heartbeat', 'Hello', 'Ready'] as const) {
    const es = entries(type);
    for (const [label, v] of values) {
      for (const at of [0, 1, es.length]) {
        const withUnknown = [...es.slice(0, at), ['x_unknown', v] as Entry, ...es.slice(at)];
        t.strictSame(decodeMessage(map(withUnknown)), base(type), `${type} with ${label} at position ${at}`);
      }
    }
  }
  const hello = replace(entries('Hello'), 'capabilities', map([['future', f64(1)], ['reserved', uint(5)], [uint(9), nil()]]));
  t.strictSame(decodeMessage(map(hello)), { ...base('Hello'), capabilities: { reserved: 5n } }, 'unknown keys inside Capabilities too');
  t.end();
});

t.test('valid but non-canonical encodings are accepted (integers in any format, any key order)', (t) => {
  const hb = (v: Bytes): Message => decodeMessage(map([['type', str('Heartbeat')], ['ts_ms', v]]));
  for (const [fmt, v] of [['u8', intAs('u8', 5)], ['u16', intAs('u16', 5)], ['u32', intAs('u32', 5)], ['u64', intAs('u64', 5)], ['i8', intAs('i8', 5)], ['i16', intAs('i16', 5)], ['i32', intAs('i32', 5)], ['i64', intAs('i64', 5)]] as const) {
    t.strictSame(hb(v), { type: 'Heartbeat', ts_ms: 5n }, `u64 5 as ${fmt}`);
  }
  t.strictSame(hb(intAs('i64', 2n ** 62n)), { type: 'Heartbeat', ts_ms: 2n ** 62n }, 'u64 2^62 as int64 (a bigint from the signed path)');
  const d = (v: Bytes): Message => decodeMessage(map(replace(entries('Drained'), 'open_conns_remaining', v)));
  t.strictSame(d(intAs('u64', 0xffff_ffff)), { ...base('Drained'), open_conns_remaining: 0xffff_ffff }, 'u32 max as uint64');
  t.strictSame(d(intAs('i16', 300)), { ...base('Drained'), open_conns_remaining: 300 }, 'u32 300 as int16');
  const reversed = [...entries('Ready')].reverse();
  t.strictSame(decodeMessage(map(reversed)), base('Ready'), 'fields in reverse order, type last');
  t.strictSame(decodeMessage(map16(entries('SealProgress'))), base('SealProgress'), 'map16 for a small map');
  t.strictSame(decodeMessage(map([['type', str8('Begin')], ['handoff_id', bin(ID)]])), base('Begin'), 'str8 for a short string');
  t.end();
});

t.test('the encoder validates too: it refuses what the decoder would refuse', (t) => {
  const enc = (type: MessageType, field: string, v: unknown): ProtocolError | string => errorOf(() => encodeMessage({ ...base(type), [field]: v }));
  const cases: Array<[MessageType, string, unknown]> = [
    ['Hello', 'proto_min', 65_536],
    ['Hello', 'proto_min', -1],
    ['Hello', 'proto_min', 1.5],
    ['Hello', 'proto_min', '1'],
    ['Hello', 'proto_min', 1n],
    ['Hello', 'pid', 2 ** 32],
    ['Hello', 'pid', Number.NaN],
    ['Hello', 'pid', 2n ** 40n],
    ['Hello', 'role', 'incumbent'],
    ['Hello', 'build_id', new Uint8Array(65)],
    ['Hello', 'build_id', 'abc'],
    ['Hello', 'capabilities', { reserved: -1n }],
    ['Hello', 'capabilities', {}],
    ['Hello', 'capabilities', null],
    ['Hello', 'capabilities', [0n]],
    ['Heartbeat', 'ts_ms', -1n],
    ['Heartbeat', 'ts_ms', 2n ** 64n],
    ['Heartbeat', 'ts_ms', 1.5],
    ['Heartbeat', 'ts_ms', -1],
    ['Heartbeat', 'ts_ms', '1'],
    ['Heartbeat', 'ts_ms', 2 ** 64],
    ['Heartbeat', 'ts_ms', 2 ** 53 + 2],
    ['Heartbeat', 'ts_ms', undefined],
    ['Abort', 'reason', 'x'.repeat(4097)],
    ['Abort', 'reason', 5],
    ['Abort', 'handoff_id', new Uint8Array(17)],
    ['Abort', 'handoff_id', Array.from({ length: 16 }, () => 0)],
    ['SealComplete', 'data_dir_fingerprint', new Uint8Array(31)],
    ['SealComplete', 'last_revision_per_shard', Array.from({ length: 65_537 }, () => 0n)],
    ['SealComplete', 'last_revision_per_shard', [1n, -1n]],
    ['Ready', 'listening_on', Array.from({ length: 65 }, () => 'a')],
    ['Ready', 'listening_on', ['a', 1]],
    ['Ready', 'listening_on', 'a'],
    ['Drained', 'accept_closed', 1],
  ];
  for (const [type, field, v] of cases) {
    const err = enc(type, field, v);
    const shown = typeof v === 'string' && v.length > 20 ? `${v.length}-char string` : typeof v === 'bigint' ? `${v}n` : Array.isArray(v) && v.length > 20 ? `${v.length}-item array` : String(v);
    t.ok(err instanceof ProtocolError && err.kind === 'malformed_message' && err.detail.startsWith(`${type}.${field}`), `encode ${type}.${field} = ${shown}`, { got: String(err) });
  }
  t.end();
});

t.test('encoding an unknown type is unknown_message, including names found on Object.prototype', (t) => {
  for (const type of ['Nope', 'toString', '__proto__', 'constructor', 'hasOwnProperty']) {
    const err = errorOf(() => encodeMessage({ type } as unknown as Message));
    t.ok(err instanceof ProtocolError && err.kind === 'unknown_message', type, { got: String(err) });
  }
  t.end();
});
