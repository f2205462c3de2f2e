/** The MessagePack layer on its own: canonical writer formats at every boundary, and the reader. */

import { encode as mpEncode } from '@msgpack/msgpack';
import t from 'tap';
import { MpExt, MpFloat, MsgpackError, Writer, decodeOne } from '../../src/protocol/msgpack.js';
import { cat, ext, f32, f64, hex, intAs, str } from './raw.js';

function written(fn: (w: Writer) => void, initial = 1): string {
  const w = new Writer(initial); // tiny on purpose: every write has to grow the buffer
  fn(w);
  return hex(w.take());
}

t.test('unsigned integers take the smallest unsigned format at every boundary', (t) => {
  const cases: Array<[number | bigint, string]> = [
    [0, '00'],
    [127, '7f'],
    [128, 'cc80'],
    [255, 'ccff'],
    [256, 'cd0100'],
    [65_535, 'cdffff'],
    [65_536, 'ce00010000'],
    [2 ** 32 - 1, 'ceffffffff'],
    [2 ** 32, 'cf0000000100000000'],
    [Number.MAX_SAFE_INTEGER, 'cf001fffffffffffff'],
    [0n, '00'],
    [128n, 'cc80'],
    [2n ** 32n - 1n, 'ceffffffff'],
    [2n ** 32n, 'cf0000000100000000'],
    [2n ** 64n - 1n, 'cfffffffffffffffff'],
  ];
  for (const [v, want] of cases) {
    t.equal(written((w) => w.uint(v)), want, `${typeof v} ${v}`);
    t.equal(BigInt(decodeOne(Buffer.from(want, 'hex')) as number | bigint), BigInt(v), `${v} reads back`);
    if (typeof v === 'number') t.equal(written((w) => w.uint(v)), hex(mpEncode(v)), `${v}: same bytes as @msgpack/msgpack`);
  }
  t.end();
});

t.test('the writer refuses what is not a u64', (t) => {
  for (const v of [-1, 1.5, Number.NaN, Infinity, 2 ** 53, -1n, 2n ** 64n]) {
    t.throws(() => written((w) => w.uint(v)), MsgpackError, String(v));
  }
  t.end();
});

t.test('str, bin, array and map headers at every boundary', (t) => {
  for (const n of [0, 31, 32, 255, 256, 65_535, 65_536]) {
    const s = 'x'.repeat(n);
    t.equal(written((w) => w.str(s)), hex(mpEncode(s)), `str of ${n}`);
    const b = new Uint8Array(n).fill(1);
    t.equal(written((w) => w.bin(b)), hex(mpEncode(b)), `bin of ${n}`);
    t.strictSame(decodeOne(Buffer.from(written((w) => w.bin(b)), 'hex')), b);
    t.equal(decodeOne(Buffer.from(written((w) => w.str(s)), 'hex')), s);
  }
  t.equal(written((w) => w.str('é€😀')), hex(str('é€😀')), 'multi-byte str counts bytes, not chars');
  for (const n of [0, 15, 16, 65_535, 65_536]) {
    const a = new Array<null>(n).fill(null);
    t.equal(written((w) => { w.arrayHeader(n); for (let i = 0; i < n; i++) w.nil(); }), hex(mpEncode(a)), `array of ${n}`);
    const m = Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, true]));
    t.equal(written((w) => { w.mapHeader(n); for (let i = 0; i < n; i++) { w.str(`k${i}`); w.bool(true); } }), hex(mpEncode(m)), `map of ${n}`);
  }
  t.equal(written((w) => { w.nil(); w.bool(false); w.bool(true); }), 'c0c2c3');
  t.end();
});

t.test('Writer reset, take(from) and the LE header helpers', (t) => {
  const w = new Writer(2);
  w.reset(6);
  w.u8(0xaa);
  w.raw(Uint8Array.of(1, 2, 3));
  w.writeUInt32LEAt(0x01020304, 0);
  w.writeUInt16LEAt(0x0506, 4);
  t.equal(hex(w.take()), '04030201' + '0605' + 'aa010203');
  t.equal(hex(w.take(6)), 'aa010203');
  w.reset();
  t.equal(w.pos, 0);
  t.equal(hex(w.take()), '');
  t.end();
});

t.test('the reader: every format, floats and ext tagged', (t) => {
  const cases: Array<[string, Uint8Array, unknown]> = [
    ['negative fixint', Uint8Array.of(0xff), -1],
    ['negative fixint -32', Uint8Array.of(0xe0), -32],
    ['int8', intAs('i8', -100), -100],
    ['int16', intAs('i16', -1000), -1000],
    ['int32', intAs('i32', -100_000), -100_000],
    ['int64 safe', intAs('i64', -(2 ** 40)), -(2 ** 40)],
    ['int64 below -(2^53-1)', intAs('i64', -(2n ** 63n)), -(2n ** 63n)],
    ['int64 positive above 2^53-1', intAs('i64', 2n ** 62n), 2n ** 62n],
    ['uint64 2^53-1 is a number', intAs('u64', Number.MAX_SAFE_INTEGER), Number.MAX_SAFE_INTEGER],
    ['uint64 2^53 is a bigint', intAs('u64', 2n ** 53n), 2n ** 53n],
    ['float32', f32(1.5), new MpFloat(1.5)],
    ['float64', f64(-0.25), new MpFloat(-0.25)],
    ['fixext 1', ext(5, Uint8Array.of(9)), new MpExt(5, Uint8Array.of(9))],
    ['fixext 16', ext(-2, new Uint8Array(16)), new MpExt(0xfe, new Uint8Array(16))],
    ['ext8', ext(1, new Uint8Array(3)), new MpExt(1, new Uint8Array(3))],
    ['ext16', ext(1, new Uint8Array(300)), new MpExt(1, new Uint8Array(300))],
    ['ext32', ext(1, new Uint8Array(70_000)), new MpExt(1, new Uint8Array(70_000))],
    ['bin16', cat([0xc5, 0, 2, 7, 8]), Uint8Array.of(7, 8)],
    ['bin32', cat([0xc6, 0, 0, 0, 1, 7]), Uint8Array.of(7)],
    ['str16', cat([0xda, 0, 1, 0x61]), 'a'],
    ['str32', cat([0xdb, 0, 0, 0, 1, 0x61]), 'a'],
    ['array16', cat([0xdc, 0, 1, 0xc0]), [null]],
    ['array32', cat([0xdd, 0, 0, 0, 1, 0xc0]), [null]],
    ['map16', cat([0xde, 0, 1, 0x01, 0x02]), new Map([[1, 2]])],
    ['map32', cat([0xdf, 0, 0, 0, 1, 0x01, 0x02]), new Map([[1, 2]])],
    ['nil, false, true', cat([0x93, 0xc0, 0xc2, 0xc3]), [null, false, true]],
    ['non-ASCII str', str('é€😀'), 'é€😀'],
  ];
  for (const [label, bytes, want] of cases) t.strictSame(decodeOne(bytes), want, label);
  t.end();
});

t.test('the reader refuses format-level faults with MsgpackError', (t) => {
  const cases: Array<[string, Uint8Array, RegExp]> = [
    ['0xc1', Uint8Array.of(0xc1), /invalid type byte 0xc1/],
    ['trailing bytes', Uint8Array.of(0xc0, 0xc0), /1 trailing byte/],
    ['truncated uint16', Uint8Array.of(0xcd, 0x01), /truncated/],
    ['truncated int8', Uint8Array.of(0xd0), /truncated/],
    ['truncated int16', Uint8Array.of(0xd1, 0), /truncated/],
    ['truncated int32', Uint8Array.of(0xd2, 0, 0), /truncated/],
    ['truncated int64', Uint8Array.of(0xd3, 0, 0), /truncated/],
    ['truncated uint64', Uint8Array.of(0xcf, 0, 0), /truncated/],
    ['truncated float32', Uint8Array.of(0xca, 0), /truncated/],
    ['truncated str', Uint8Array.of(0xa3, 0x61), /truncated/],
    ['empty input', new Uint8Array(0), /truncated/],
    ['array count beyond input', Uint8Array.of(0x9f, 0xc0), /array length exceeds input/],
    ['map count beyond input', Uint8Array.of(0x8f, 0xc0, 0xc0), /map length exceeds input/],
    ['duplicate key', Uint8Array.of(0x82, 0xa1, 0x61, 0x01, 0xa1, 0x61, 0x02), /duplicate map key/],
    ['invalid UTF-8', Uint8Array.of(0xa2, 0xc3, 0x28), /not valid UTF-8/],
    ['nesting 66 deep', new Uint8Array(66).fill(0x91), /nesting too deep/],
  ];
  for (const [label, bytes, re] of cases) t.throws(() => decodeOne(bytes), re, label);
  t.doesNotThrow(() => decodeOne(cat(new Uint8Array(64).fill(0x91), [0x90])), '65 levels of containers are within the limit');
  t.end();
});
