/**
 * The fake supervisor's end of one service's control channel: it records every frame both ways,
 * heartbeats once HelloAck is sent (as S does), and hands each message the service sends to the
 * step that waits for it, bounded in time.
 */

import type net from 'node:net';
import { Channel, PROTO_MAX, parseReason, type HandoffId, type Message, type MessageOf, type MessageType, type Side } from '../protocol/index.js';
import { HandoffStepError, type HandoffStep } from './errors.js';
import type { Recorder } from './service-under-test.js';

export class ControlLink {
  private readonly channel: Channel;
  private readonly inbox: Message[] = [];
  private waiter: (() => void) | undefined;
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(
    socket: net.Socket,
    readonly rec: Recorder,
    private readonly heartbeatMs: number,
    private readonly timeoutMs: number,
  ) {
    this.side = rec.role === 'successor' ? 'successor' : 'incumbent';
    this.channel = new Channel(socket);
    this.channel.on('message', (m) => {
      if (m.type === 'Heartbeat') return;
      rec.frames.push({ from: 'service', message: m });
      this.inbox.push(m);
      this.wake();
    });
    this.channel.on('close', () => {
      this.stopHeartbeats();
      this.wake();
    });
  }

  /** Who this service is in the handoff at hand. */
  side: 'incumbent' | 'successor';

  get closed(): boolean {
    return this.channel.closed;
  }

  send(m: Message): boolean {
    if (m.type !== 'Heartbeat') this.rec.frames.push({ from: 'supervisor', message: m });
    return this.channel.send(m);
  }

  /** The next message from the service (heartbeats and, unless asked for, SealProgress skipped): one of `types`. */
  async expect<T extends MessageType>(step: HandoffStep, types: readonly T[], ms = this.timeoutMs): Promise<MessageOf<T>> {
    const until = Date.now() + ms;
    for (;;) {
      const m = this.inbox.shift();
      if (m !== undefined) {
        if (m.type === 'SealProgress' && !types.includes('SealProgress' as T)) continue;
        if (types.includes(m.type as T)) return m as MessageOf<T>;
        const kind = m.type === 'Abort' ? (parseReason(m.reason).kind ?? 'unexpected_message') : m.type === 'SealFailed' ? 'seal_failed' : 'unexpected_message';
        throw new HandoffStepError(step, kind, `expected ${types.join(' or ')} from the ${this.side}, got ${m.type}${m.type === 'Abort' ? ` (${m.reason})` : ''}`, m);
      }
      if (this.channel.closed) {
        const code = this.rec.exitCode === undefined ? '' : ` (exit code ${this.rec.exitCode})`;
        const kind = this.rec.role === 'successor' ? 'successor_failed' : 'incumbent_failed';
        throw new HandoffStepError(step, kind, `the ${this.side} closed its control channel while the supervisor waited for ${types.join(' or ')}${code}`);
      }
      const left = until - Date.now();
      if (left <= 0) throw new HandoffStepError(step, 'deadline_exceeded', `no ${types.join(' or ')} from the ${this.side} within ${ms} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        timer.unref();
        this.waiter = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }

  /** Hello from the service, checked as S checks it, answered with HelloAck; heartbeats start. */
  async hello(role: Side, id: HandoffId): Promise<MessageOf<'Hello'>> {
    const h = await this.expect('hello', ['Hello']);
    if (h.role !== role) throw new HandoffStepError('hello', 'unexpected_message', `Hello says role ${h.role}, expected ${role}`, h);
    if (h.pid !== process.pid) throw new HandoffStepError('hello', 'pid_mismatch', `Hello says pid ${h.pid}, this process is ${process.pid}`, h);
    if (h.proto_min > PROTO_MAX) throw new HandoffStepError('hello', 'version_mismatch', `Hello asks for protocol ${h.proto_min}..${h.proto_max}, the supervisor speaks up to ${PROTO_MAX}`, h);
    const v = Math.min(PROTO_MAX, h.proto_max);
    this.send({ type: 'HelloAck', proto_version_chosen: v, handoff_id: id });
    this.channel.version = v;
    this.heartbeat = setInterval(() => this.channel.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) }), this.heartbeatMs);
    this.heartbeat.unref();
    return h;
  }

  /** End of stream, as when S dies (or is done with this service). */
  close(): void {
    this.stopHeartbeats();
    this.channel.close();
  }

  private stopHeartbeats(): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
}
