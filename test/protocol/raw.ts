/**
 * A tiny hand-rolled MessagePack writer for tests: every format chosen explicitly, so tests can build
 * payloads our own encoder would never produce (floats, negative ints, non-canonical formats, ext,
 * invalid UTF-8, bad counts). Each function returns the bytes of one value.
 */

export type Bytes = Uint8Array;

export function cat(...parts: Array<Bytes | number[]>): Bytes {
  const arrs = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(arrs.reduce((n, a) => n + a.length, 0));
  let o = 0;
  for (const a of arrs) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

function be(n: number | bigint, width: 1 | 2 | 4 | 8): number[] {
  let v = BigInt.asUintN(width * 8, BigInt(n));
  const out: number[] = [];
  for (let i = 0; i < width; i++) {
    out.unshift(Number(v & 0xffn));
    v >>= 8n;
  }
  return out;
}

export const nil = (): Bytes => cat([0xc0]);
export const bool = (b: boolean): Bytes => cat([b ? 0xc3 : 0xc2]);

/** A non-negative integer in the smallest unsigned format (the canonical one). */
export function uint(n: number | bigint): Bytes {
  const v = BigInt(n);
  if (v < 0n) throw new RangeError('uint of a negative');
  if (v < 0x80n) return cat([Number(v)]);
  if (v < 0x100n) return cat([0xcc, Number(v)]);
  if (v < 0x10000n) return cat([0xcd], be(v, 2));
  if (v < 0x1_0000_0000n) return cat([0xce], be(v, 4));
  return cat([0xcf], be(v, 8));
}

/** An integer in an explicitly chosen format (signed or unsigned), whatever its value. */
export function intAs(fmt: 'fixint' | 'u8' | 'u16' | 'u32' | 'u64' | 'i8' | 'i16' | 'i32' | 'i64' | 'negfix', n: number | bigint): Bytes {
  switch (fmt) {
    case 'fixint':
      return cat([Number(n) & 0x7f]);
    case 'negfix':
      return cat([Number(BigInt.asUintN(8, BigInt(n)))]);
    case 'u8':
      return cat([0xcc], be(n, 1));
    case 'u16':
      return cat([0xcd], be(n, 2));
    case 'u32':
      return cat([0xce], be(n, 4));
    case 'u64':
      return cat([0xcf], be(n, 8));
    case 'i8':
      return cat([0xd0], be(n, 1));
    case 'i16':
      return cat([0xd1], be(n, 2));
    case 'i32':
      return cat([0xd2], be(n, 4));
    case 'i64':
      return cat([0xd3], be(n, 8));
  }
}

/** A negative integer in the smallest signed format. */
export function int(n: number | bigint): Bytes {
  const v = BigInt(n);
  if (v >= 0n) return uint(v);
  if (v >= -32n) return intAs('negfix', v);
  if (v >= -128n) return intAs('i8', v);
  if (v >= -32768n) return intAs('i16', v);
  if (v >= -2147483648n) return intAs('i32', v);
  return intAs('i64', v);
}

export function f32(x: number): Bytes {
  const b = new Uint8Array(5);
  b[0] = 0xca;
  new DataView(b.buffer).setFloat32(1, x);
  return b;
}

export function f64(x: number): Bytes {
  const b = new Uint8Array(9);
  b[0] = 0xcb;
  new DataView(b.buffer).setFloat64(1, x);
  return b;
}

function lenHeader(len: number, fix: number | undefined, fixMax: number, f8: number | undefined, f16: number, f32: number): number[] {
  if (fix !== undefined && len <= fixMax) return [fix | len];
  if (f8 !== undefined && len < 0x100) return [f8, len];
  if (len < 0x10000) return [f16, ...be(len, 2)];
  return [f32, ...be(len, 4)];
}

/** A str holding exactly these bytes (which need not be valid UTF-8). */
export function strBytes(bytes: Bytes): Bytes {
  return cat(lenHeader(bytes.length, 0xa0, 31, 0xd9, 0xda, 0xdb), bytes);
}

export const str = (s: string): Bytes => strBytes(new TextEncoder().encode(s));

/** A str in the str8 format even when short (valid, not canonical). */
export function str8(s: string): Bytes {
  const b = new TextEncoder().encode(s);
  return cat([0xd9, b.length], b);
}

export function bin(bytes: Bytes | number): Bytes {
  const b = typeof bytes === 'number' ? new Uint8Array(bytes).fill(0xab) : bytes;
  return cat(lenHeader(b.length, undefined, 0, 0xc4, 0xc5, 0xc6), b);
}

export function arr(items: Bytes[]): Bytes {
  return cat(lenHeader(items.length, 0x90, 15, undefined, 0xdc, 0xdd), ...items);
}

/** An array header claiming `n` items, with no items after it. */
export const arrHeader = (n: number): Bytes => cat(lenHeader(n, 0x90, 15, undefined, 0xdc, 0xdd));

export type Entry = readonly [Bytes | string, Bytes];

/** A map; string keys are written as str. */
export function map(entries: readonly Entry[]): Bytes {
  const parts: Bytes[] = [];
  for (const [k, v] of entries) parts.push(typeof k === 'string' ? str(k) : k, v);
  return cat(lenHeader(entries.length, 0x80, 15, undefined, 0xde, 0xdf), ...parts);
}

/** A map in the map16 format even when small. */
export function map16(entries: readonly Entry[]): Bytes {
  const parts: Bytes[] = [];
  for (const [k, v] of entries) parts.push(typeof k === 'string' ? str(k) : k, v);
  return cat([0xde, ...be(entries.length, 2)], ...parts);
}

export function ext(type: number, data: Bytes): Bytes {
  const t = type & 0xff;
  if (data.length === 1) return cat([0xd4, t], data);
  if (data.length === 2) return cat([0xd5, t], data);
  if (data.length === 4) return cat([0xd6, t], data);
  if (data.length === 8) return cat([0xd7, t], data);
  if (data.length === 16) return cat([0xd8, t], data);
  if (data.length < 0x100) return cat([0xc7, data.length, t], data);
  if (data.length < 0x10000) return cat([0xc8, ...be(data.length, 2), t], data);
  return cat([0xc9, ...be(data.length, 4), t], data);
}

/** One whole frame: u32 LE frame_len, u16 LE version, payload. */
export function frame(payload: Bytes, version = 1): Buffer {
  const b = Buffer.allocUnsafe(6 + payload.length);
  b.writeUInt32LE(payload.length + 2, 0);
  b.writeUInt16LE(version, 4);
  b.set(payload, 6);
  return b;
}

export const hex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
export const unhex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
