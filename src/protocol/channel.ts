/**
 * A Channel speaks the protocol over any Node duplex stream (a socketpair end, a Unix socket).
 * It frames and validates both ways, enforces the negotiated version from the frame header alone,
 * and ends on the first protocol error, sending `Abort` first when it knows the handoff id.
 */

import { EventEmitter } from 'node:events';
import type { Duplex } from 'node:stream';
import { ProtocolError, asProtocolError } from './errors.js';
import { FrameDecoder, encodeFrame } from './frame.js';
import { MAX_FRAME, PROTO_MIN, type HandoffId, type Message } from './messages.js';
import { decodeMessage } from './schema.js';

export interface ChannelOptions {
  maxFrame?: number;
}

interface ChannelEvents {
  message: [Message];
  /** Always emitted exactly once; a clean end of stream is `peer_closed`. */
  close: [ProtocolError];
}

export class Channel extends EventEmitter<ChannelEvents> {
  /** The negotiated version; until set, any header is accepted (Hello carries the sender's minimum). */
  version: number | undefined;
  /** The handoff this channel is part of, once known: a protocol error then sends `Abort` with it. */
  handoffId: HandoffId | undefined;
  /** performance.now() of the last frame received, for heartbeat checks. */
  lastReceived = performance.now();
  closeError: ProtocolError | undefined;

  private readonly decoder: FrameDecoder;
  private readonly maxFrame: number;
  private readonly queue: Message[] = [];
  private readonly waiters: Array<{ resolve: (m: Message) => void; reject: (e: ProtocolError) => void }> = [];

  constructor(
    readonly stream: Duplex,
    opts: ChannelOptions = {},
  ) {
    super();
    this.maxFrame = opts.maxFrame ?? MAX_FRAME;
    this.decoder = new FrameDecoder(this.maxFrame);
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.onEnd());
    stream.on('error', (err: NodeJS.ErrnoException) => this.finish(new ProtocolError('peer_closed', err.code ?? 'stream error')));
    stream.on('close', () => this.finish(new ProtocolError('peer_closed', 'stream closed')));
  }

  get closed(): boolean {
    return this.closeError !== undefined;
  }

  /** Sends one message; false when the channel is already closed. Encoding faults throw (caller bug). */
  send(msg: Message): boolean {
    if (this.closed || this.stream.destroyed) return false;
    let header: number;
    if (msg.type === 'Hello') header = msg.proto_min;
    else if (msg.type === 'HelloAck') header = msg.proto_version_chosen;
    else header = this.version ?? PROTO_MIN;
    this.stream.write(encodeFrame(msg, header, this.maxFrame));
    return true;
  }

  /** Ends the channel because of `err`: sends `Abort` when the handoff id is known, then closes. */
  fail(err: ProtocolError): void {
    if (this.closed) return;
    if (this.handoffId !== undefined && err.kind !== 'peer_closed') {
      try {
        this.send({ type: 'Abort', handoff_id: this.handoffId, reason: err.toReason() });
      } catch {
        // Nothing more can be done for a peer we cannot even write to.
      }
    }
    this.finish(err);
    this.stream.end();
    // Give the Abort a moment to flush, but never hold a misbehaving peer's stream open.
    setTimeout(() => this.stream.destroy(), 100).unref();
  }

  /** Closes without an error of ours (the peer sees end of stream). */
  close(): void {
    if (this.closed) return;
    this.finish(new ProtocolError('peer_closed', 'closed locally'));
    this.stream.end();
    setTimeout(() => this.stream.destroy(), 100).unref();
  }

  /** The next message, or the close error. */
  receive(): Promise<Message> {
    const m = this.queue.shift();
    if (m !== undefined) return Promise.resolve(m);
    if (this.closeError) return Promise.reject(this.closeError);
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Message> {
    for (;;) {
      try {
        yield await this.receive();
      } catch (err) {
        if (err instanceof ProtocolError && err.kind === 'peer_closed') return;
        throw err;
      }
    }
  }

  private onData(chunk: Buffer): void {
    if (this.closed) return;
    this.lastReceived = performance.now();
    try {
      for (const frame of this.decoder.push(chunk)) {
        if (this.version !== undefined && frame.version !== this.version) {
          throw new ProtocolError('version_mismatch', `frame header says version ${frame.version}, negotiated ${this.version}`);
        }
        const msg = decodeMessage(frame.payload);
        if (msg.type === 'Hello' && frame.version !== msg.proto_min) {
          throw new ProtocolError('version_mismatch', `Hello header version ${frame.version} is not its proto_min ${msg.proto_min}`);
        }
        if (msg.type === 'HelloAck' && frame.version !== msg.proto_version_chosen) {
          throw new ProtocolError('version_mismatch', `HelloAck header version ${frame.version} is not the chosen ${msg.proto_version_chosen}`);
        }
        this.deliver(msg);
        if (this.closed) return;
      }
    } catch (err) {
      this.fail(asProtocolError(err, 'malformed_message'));
    }
  }

  private deliver(msg: Message): void {
    const w = this.waiters.shift();
    if (w) w.resolve(msg);
    else if (this.listenerCount('message') === 0) this.queue.push(msg);
    try {
      this.emit('message', msg);
    } catch (err) {
      // A throwing listener is our own bug, not the peer's: never blame the peer for it (or send its
      // text on the wire); surface it where it belongs.
      process.nextTick(() => {
        throw err;
      });
    }
  }

  private onEnd(): void {
    try {
      this.decoder.end();
    } catch (err) {
      // The peer stopped writing inside a frame, but it may still read: tell it, as for any other
      // framing fault (fail() sends Abort when the handoff id is known, then ends our side).
      this.fail(asProtocolError(err, 'frame_malformed'));
      return;
    }
    this.finish(new ProtocolError('peer_closed', 'end of stream'));
    this.stream.end();
  }

  private finish(err: ProtocolError): void {
    if (this.closeError) return;
    this.closeError = err;
    for (const w of this.waiters.splice(0)) w.reject(err);
    this.emit('close', err);
  }
}
