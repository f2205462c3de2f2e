/**
 * A strict MessagePack codec for the subset the wire protocol uses.
 *
 * Why not msgpackr: it decodes an integral float64 to the same JS number as an integer (so "a float is
 * rejected even if integral" cannot be enforced after decoding), and it writes bigints as int64 and
 * large numbers as float64, so canonical uint64 output would need to be patched around it. Owning the
 * codec makes the encoding canonical by construction and the decoder strict at the format level.
 *
 * Encoder: canonical (smallest formats, unsigned formats for non-negative integers).
 * Decoder: any valid MessagePack value; floats and extensions come back tagged so that the schema
 * layer can reject them where it expects something else and ignore them under unknown keys.
 */

/** A decoded float; kept distinct so that a schema can reject it where an integer is expected. */
export class MpFloat {
  constructor(readonly value: number) {}
}

/** A decoded extension value; never produced by our encoder. */
export class MpExt {
  constructor(
    readonly type: number,
    readonly data: Uint8Array,
  ) {}
}

/** A decoded map; keys of any type are possible on the wire, so they are kept as decoded. */
export type MpMap = Map<MpValue, MpValue>;
export type MpValue = null | boolean | number | bigint | string | Uint8Array | MpFloat | MpExt | MpValue[] | MpMap;

/** What went wrong at the format level; the schema layer turns it into `malformed_message`. */
export class MsgpackError extends Error {
  override name = 'MsgpackError';
}

/** Deepest nesting the decoder accepts. */
export const MAX_DEPTH = 64;
const U32 = 0x1_0000_0000;
/** The largest u64 (2^64-1): the wire's u64 range, used by the codec, the schemas and the library. */
export const U64_MAX = (1n << 64n) - 1n;

// ---------------------------------------------------------------------------------------------
// Encoder

export class Writer {
  private buf: Buffer;
  pos = 0;

  constructor(initial = 512) {
    this.buf = Buffer.allocUnsafe(initial);
  }

  reset(at = 0): void {
    this.pos = at;
  }

  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** A fresh copy of bytes [from, pos). */
  take(from = 0): Buffer {
    const out = Buffer.allocUnsafe(this.pos - from);
    this.buf.copy(out, 0, from, this.pos);
    return out;
  }

  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }

  raw(bytes: Uint8Array): void {
    this.ensure(bytes.length);
    this.buf.set(bytes, this.pos);
    this.pos += bytes.length;
  }

  writeUInt32LEAt(v: number, at: number): void {
    this.buf.writeUInt32LE(v, at);
  }

  writeUInt16LEAt(v: number, at: number): void {
    this.buf.writeUInt16LE(v, at);
  }

  nil(): void {
    this.u8(0xc0);
  }

  bool(v: boolean): void {
    this.u8(v ? 0xc3 : 0xc2);
  }

  /** A non-negative integer in the smallest unsigned format. */
  uint(v: number | bigint): void {
    if (typeof v === 'bigint') {
      if (v < 0n || v > U64_MAX) throw new MsgpackError('integer out of u64 range');
      if (v < BigInt(U32)) {
        this.uint(Number(v));
        return;
      }
      this.ensure(9);
      this.buf[this.pos] = 0xcf;
      this.buf.writeBigUInt64BE(v, this.pos + 1);
      this.pos += 9;
      return;
    }
    if (!Number.isInteger(v) || v < 0) throw new MsgpackError('not a non-negative integer');
    this.ensure(9);
    const b = this.buf;
    const p = this.pos;
    if (v < 0x80) {
      b[p] = v;
      this.pos = p + 1;
    } else if (v < 0x100) {
      b[p] = 0xcc;
      b[p + 1] = v;
      this.pos = p + 2;
    } else if (v < 0x10000) {
      b[p] = 0xcd;
      b.writeUInt16BE(v, p + 1);
      this.pos = p + 3;
    } else if (v < U32) {
      b[p] = 0xce;
      b.writeUInt32BE(v, p + 1);
      this.pos = p + 5;
    } else {
      if (!Number.isSafeInteger(v)) throw new MsgpackError('unsafe integer: use a bigint');
      b[p] = 0xcf;
      b.writeBigUInt64BE(BigInt(v), p + 1);
      this.pos = p + 9;
    }
  }

  str(s: string): void {
    const len = Buffer.byteLength(s, 'utf8');
    this.ensure(len + 5);
    const b = this.buf;
    if (len < 32) b[this.pos++] = 0xa0 | len;
    else if (len < 0x100) {
      b[this.pos++] = 0xd9;
      b[this.pos++] = len;
    } else if (len < 0x10000) {
      b[this.pos] = 0xda;
      b.writeUInt16BE(len, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = 0xdb;
      b.writeUInt32BE(len, this.pos + 1);
      this.pos += 5;
    }
    this.pos += b.write(s, this.pos, len, 'utf8');
  }

  bin(v: Uint8Array): void {
    const len = v.length;
    this.ensure(len + 5);
    const b = this.buf;
    if (len < 0x100) {
      b[this.pos++] = 0xc4;
      b[this.pos++] = len;
    } else if (len < 0x10000) {
      b[this.pos] = 0xc5;
      b.writeUInt16BE(len, this.pos + 1);
      this.pos += 3;
    } else {
      b[this.pos] = 0xc6;
      b.writeUInt32BE(len, this.pos + 1);
      this.pos += 5;
    }
    b.set(v, this.pos);
    this.pos += len;
  }

  arrayHeader(n: number): void {
    if (n < 16) this.u8(0x90 | n);
    else if (n < 0x10000) {
      this.ensure(3);
      this.buf[this.pos] = 0xdc;
      this.buf.writeUInt16BE(n, this.pos + 1);
      this.pos += 3;
    } else {
      this.ensure(5);
      this.buf[this.pos] = 0xdd;
      this.buf.writeUInt32BE(n, this.pos + 1);
      this.pos += 5;
    }
  }

  mapHeader(n: number): void {
    if (n < 16) this.u8(0x80 | n);
    else if (n < 0x10000) {
      this.ensure(3);
      this.buf[this.pos] = 0xde;
      this.buf.writeUInt16BE(n, this.pos + 1);
      this.pos += 3;
    } else {
      this.ensure(5);
      this.buf[this.pos] = 0xdf;
      this.buf.writeUInt32BE(n, this.pos + 1);
      this.pos += 5;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Decoder

// ignoreBOM: true keeps a leading U+FEFF in the string; the default would silently drop it.
const utf8Fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes exactly one value that must span the whole input; copies every bin out of the input. */
export function decodeOne(input: Uint8Array): MpValue {
  const r = new Reader(input);
  const v = r.value(0);
  if (r.pos !== input.length) throw new MsgpackError(`${input.length - r.pos} trailing byte(s) after the value`);
  return v;
}

class Reader {
  pos = 0;
  private readonly view: DataView;

  constructor(private readonly b: Uint8Array) {
    this.view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  }

  private need(n: number): void {
    if (this.pos + n > this.b.length) throw new MsgpackError('value truncated');
  }

  private byte(): number {
    this.need(1);
    return this.b[this.pos++] as number;
  }

  private u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  private u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  private bytes(n: number): Uint8Array {
    this.need(n);
    // A real copy: on a Buffer input, slice() would return a view that aliases (and pins) the input.
    const out = new Uint8Array(n);
    out.set(this.b.subarray(this.pos, this.pos + n));
    this.pos += n;
    return out;
  }

  private str(n: number): string {
    this.need(n);
    const start = this.pos;
    const end = start + n;
    this.pos = end;
    if (n <= 32) {
      // Short ASCII strings (keys, type names, sides) are most of a payload: build them directly.
      let s = '';
      for (let i = start; i < end; i++) {
        const c = this.b[i] as number;
        if (c >= 0x80) return this.utf8(start, end);
        s += String.fromCharCode(c);
      }
      return s;
    }
    let ascii = true;
    for (let i = start; i < end; i++) {
      if ((this.b[i] as number) >= 0x80) {
        ascii = false;
        break;
      }
    }
    if (ascii) return Buffer.from(this.b.buffer, this.b.byteOffset + start, n).toString('latin1');
    return this.utf8(start, end);
  }

  private utf8(start: number, end: number): string {
    try {
      return utf8Fatal.decode(this.b.subarray(start, end));
    } catch {
      throw new MsgpackError('string is not valid UTF-8');
    }
  }

  private array(n: number, depth: number): MpValue[] {
    // Each element takes at least one byte: refuse counts the input cannot hold before allocating.
    if (n > this.b.length - this.pos) throw new MsgpackError('array length exceeds input');
    const out: MpValue[] = new Array<MpValue>(n);
    for (let i = 0; i < n; i++) out[i] = this.value(depth + 1);
    return out;
  }

  private map(n: number, depth: number): MpMap {
    if (n * 2 > this.b.length - this.pos) throw new MsgpackError('map length exceeds input');
    const out: MpMap = new Map();
    for (let i = 0; i < n; i++) {
      const k = this.value(depth + 1);
      const v = this.value(depth + 1);
      if (out.has(k)) throw new MsgpackError('duplicate map key');
      out.set(k, v);
    }
    return out;
  }

  value(depth: number): MpValue {
    if (depth > MAX_DEPTH) throw new MsgpackError('nesting too deep');
    const t = this.byte();
    if (t < 0x80) return t;
    if (t >= 0xe0) return t - 0x100;
    if (t <= 0x8f) return this.map(t & 0x0f, depth);
    if (t <= 0x9f) return this.array(t & 0x0f, depth);
    if (t <= 0xbf) return this.str(t & 0x1f);
    switch (t) {
      case 0xc0:
        return null;
      case 0xc2:
        return false;
      case 0xc3:
        return true;
      case 0xc4:
        return this.bytes(this.byte());
      case 0xc5:
        return this.bytes(this.u16());
      case 0xc6:
        return this.bytes(this.u32());
      case 0xc7:
      case 0xc8:
      case 0xc9: {
        const n = t === 0xc7 ? this.byte() : t === 0xc8 ? this.u16() : this.u32();
        const type = this.byte();
        return new MpExt(type, this.bytes(n));
      }
      case 0xca: {
        this.need(4);
        const v = this.view.getFloat32(this.pos);
        this.pos += 4;
        return new MpFloat(v);
      }
      case 0xcb: {
        this.need(8);
        const v = this.view.getFloat64(this.pos);
        this.pos += 8;
        return new MpFloat(v);
      }
      case 0xcc:
        return this.byte();
      case 0xcd:
        return this.u16();
      case 0xce:
        return this.u32();
      case 0xcf: {
        this.need(8);
        const v = this.view.getBigUint64(this.pos);
        this.pos += 8;
        return v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case 0xd0: {
        this.need(1);
        return this.view.getInt8(this.pos++);
      }
      case 0xd1: {
        this.need(2);
        const v = this.view.getInt16(this.pos);
        this.pos += 2;
        return v;
      }
      case 0xd2: {
        this.need(4);
        const v = this.view.getInt32(this.pos);
        this.pos += 4;
        return v;
      }
      case 0xd3: {
        this.need(8);
        const v = this.view.getBigInt64(this.pos);
        this.pos += 8;
        return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v;
      }
      case 0xd4:
      case 0xd5:
      case 0xd6:
      case 0xd7:
      case 0xd8: {
        const type = this.byte();
        return new MpExt(type, this.bytes(1 << (t - 0xd4)));
      }
      case 0xd9:
        return this.str(this.byte());
      case 0xda:
        return this.str(this.u16());
      case 0xdb:
        return this.str(this.u32());
      case 0xdc:
        return this.array(this.u16(), depth);
      case 0xdd:
        return this.array(this.u32(), depth);
      case 0xde:
        return this.map(this.u16(), depth);
      case 0xdf:
        return this.map(this.u32(), depth);
      default:
        // 0xc1 is "never used" in the MessagePack spec.
        throw new MsgpackError(`invalid type byte 0x${t.toString(16)}`);
    }
  }
}
