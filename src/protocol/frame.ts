/**
 * Framing: `u32 frame_len (LE) | u16 proto_version (LE) | payload`, where frame_len = 2 + payload length.
 * The decoder checks frame_len as soon as its 4 bytes arrive, before buffering any payload, and holds
 * at most one partial frame: its memory is bounded by MAX_FRAME + 4 whatever the input.
 */

import { ProtocolError } from './errors.js';
import { MAX_FRAME, type Message } from './messages.js';
import { Writer } from './msgpack.js';
import { decodeMessage, writeMessage } from './schema.js';

/** Smallest valid frame_len: the version (2) plus a one-byte payload. */
export const MIN_FRAME = 3;

export interface RawFrame {
  version: number;
  /** A view; valid until the next call into the decoder. `decodeMessage` copies what it keeps. */
  payload: Uint8Array;
}

const scratch = new Writer(4096);

/** One whole frame for `msg`, with `version` in its header. */
export function encodeFrame(msg: Message, version: number, maxFrame = MAX_FRAME): Buffer {
  scratch.reset(6);
  writeMessage(scratch, msg);
  const frameLen = scratch.pos - 4;
  if (frameLen > maxFrame) throw new ProtocolError('frame_too_large', `${msg.type} frame of ${frameLen} bytes exceeds ${maxFrame}`);
  scratch.writeUInt32LEAt(frameLen, 0);
  scratch.writeUInt16LEAt(version, 4);
  return scratch.take();
}

function checkLen(len: number, maxFrame: number): void {
  if (len < MIN_FRAME) throw new ProtocolError('frame_malformed', `frame_len ${len} is below ${MIN_FRAME}`);
  if (len > maxFrame) throw new ProtocolError('frame_too_large', `frame_len ${len} exceeds ${maxFrame}`);
}

/** A streaming frame decoder: push bytes in any split, pull whole frames. */
export class FrameDecoder {
  private readonly hdr = Buffer.alloc(4);
  private hdrFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;
  private failed: ProtocolError | undefined;

  constructor(readonly maxFrame = MAX_FRAME) {}

  /** Bytes held for the frame in progress (header bytes plus the body buffer). */
  get buffered(): number {
    return this.hdrFill + (this.body?.length ?? 0);
  }

  /**
   * Consumes `chunk`, yielding each complete frame. Throws the first ProtocolError met; after that the
   * decoder stays failed (a stream cannot be resynchronised once a length is wrong).
   */
  *push(chunk: Uint8Array): Generator<RawFrame> {
    if (this.failed) throw this.failed;
    let pos = 0;
    const n = chunk.length;
    try {
      while (pos < n) {
        if (this.body === undefined) {
          // Fast path: a whole frame inside the chunk needs no copy.
          if (this.hdrFill === 0 && n - pos >= 4) {
            const len = (chunk[pos]! | (chunk[pos + 1]! << 8) | (chunk[pos + 2]! << 16)) + chunk[pos + 3]! * 0x100_0000;
            checkLen(len, this.maxFrame);
            if (n - pos - 4 >= len) {
              const version = chunk[pos + 4]! | (chunk[pos + 5]! << 8);
              yield { version, payload: chunk.subarray(pos + 6, pos + 4 + len) };
              pos += 4 + len;
              continue;
            }
            this.body = Buffer.allocUnsafe(len);
            this.bodyFill = 0;
            pos += 4;
            continue;
          }
          const take = Math.min(4 - this.hdrFill, n - pos);
          this.hdr.set(chunk.subarray(pos, pos + take), this.hdrFill);
          this.hdrFill += take;
          pos += take;
          if (this.hdrFill < 4) break;
          this.hdrFill = 0;
          const len = this.hdr.readUInt32LE(0);
          checkLen(len, this.maxFrame);
          this.body = Buffer.allocUnsafe(len);
          this.bodyFill = 0;
          continue;
        }
        const take = Math.min(this.body.length - this.bodyFill, n - pos);
        this.body.set(chunk.subarray(pos, pos + take), this.bodyFill);
        this.bodyFill += take;
        pos += take;
        if (this.bodyFill === this.body.length) {
          const body = this.body;
          this.body = undefined;
          yield { version: body.readUInt16LE(0), payload: body.subarray(2) };
        }
      }
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.failed = err;
        this.hdrFill = 0;
        this.body = undefined;
      }
      throw err;
    }
  }

  /** The stream ended: an unfinished frame is `frame_malformed`. */
  end(): void {
    if (this.failed) return;
    if (this.hdrFill > 0 || this.body !== undefined) {
      // The length field counts once the body is allocated (hdrFill is then 0); bodyFill is stale otherwise.
      const have = this.body !== undefined ? 4 + this.bodyFill : this.hdrFill;
      this.hdrFill = 0;
      this.body = undefined;
      throw new ProtocolError('frame_malformed', `stream ended inside a frame (${have} byte(s) of it received)`);
    }
  }
}

/** Decodes every frame of a complete byte string (for tests, vectors and tools). */
export function decodeFrames(bytes: Uint8Array, maxFrame = MAX_FRAME): Array<{ version: number; message: Message }> {
  const dec = new FrameDecoder(maxFrame);
  const out: Array<{ version: number; message: Message }> = [];
  for (const f of dec.push(bytes)) out.push({ version: f.version, message: decodeMessage(f.payload) });
  dec.end();
  return out;
}
