/**
 * Losing S, and S falling silent. A closed channel (EOF, error) is proof S is gone: the S-loss
 * rules apply, by phase. Silence on a channel still open is not (S may be paused: SIGSTOP, a
 * stalled VM, swapping): nothing is closed for it, and what is done depends on the phase. Whoever
 * holds the lock keeps serving; whoever does not, never starts writing. What each phase does is
 * the table's `silence` and `closed` columns (machine.ts); this module watches and keeps
 * `rt.supervisor`.
 */

import { ProtocolError, type Channel } from '../protocol/index.js';
import type { Fire } from './machine.js';
import type { Runtime } from './runtime.js';

export class SupervisorLoss {
  constructor(
    private readonly rt: Runtime,
    private readonly fire: Fire,
  ) {}

  /** Sends our heartbeats, and watches S's: silence is an event, and frames after it end it. */
  watch(channel: Channel): void {
    const rt = this.rt;
    const { heartbeatMs, heartbeatTimeoutMs } = rt.contract;
    const hb = setInterval(() => {
      channel.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) });
    }, heartbeatMs);
    hb.unref();
    const every = Math.max(10, Math.min(heartbeatMs, Math.floor(heartbeatTimeoutMs / 4)));
    let lastCheck = performance.now();
    let silentAt = 0;
    const wd = setInterval(() => {
      const now = performance.now();
      const late = now - lastCheck - every;
      lastCheck = now;
      // Our own loop stalled: time we did not run is nobody's silence. Let pending input be read first.
      if (late > every) return;
      if (rt.supervisor === 'silent') {
        if (channel.lastReceived > silentAt) {
          rt.supervisor = 'heard';
          rt.logger.info({ phase: rt.phase }, 'the supervisor is back');
        }
        return;
      }
      if (rt.supervisor === 'heard' && now - channel.lastReceived > heartbeatTimeoutMs) {
        silentAt = now;
        rt.supervisor = 'silent';
        rt.logger.warn({ phase: rt.phase, reason: rt.silenceReason() }, 'the supervisor is silent');
        this.fire({ kind: 'silence' });
      }
    }, every);
    wd.unref();
    rt.timers.push(hb, wd);
  }

  /**
   * The control channel closed (EOF, error, a protocol failure, an awaiting successor's silence).
   * `afterAbort`: the last message S sent was an Abort that was acted on.
   */
  onChannelClose(err: ProtocolError, afterAbort: boolean): void {
    if (this.rt.supervisor === 'lost') return;
    this.fire({ kind: 'closed', reason: err.message, afterAbort });
  }

  /** S closed the channel after its Abort: how it ends its part (after telling an offender), not a loss. */
  endedAfterAbort(): void {
    const rt = this.rt;
    rt.supervisor = 'lost';
    rt.stopTimers();
    rt.logger.info({ phase: rt.phase }, 'the supervisor closed the channel after its Abort');
  }

  /** What every phase's S-loss rule starts with; the table's handler does the rest. */
  lost(reason: string): void {
    const rt = this.rt;
    rt.supervisor = 'lost';
    rt.stopTimers();
    const phase = rt.phase;
    rt.logger.warn({ reason, phase }, 'supervisor lost');
    rt.events.emit('supervisor-lost', { reason, phase });
  }

  /** A successor before Begin, and S silent: fail the channel (the S-loss rules follow). */
  leaveSilent(): void {
    this.rt.channel!.fail(new ProtocolError('heartbeat_timeout', `no frame from the supervisor for ${this.rt.contract.heartbeatTimeoutMs} ms`));
  }
}
