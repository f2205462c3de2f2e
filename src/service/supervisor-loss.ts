/**
 * Losing S, and S falling silent. A closed channel (EOF, error) is proof S is gone: the S-loss
 * rules apply, by phase. Silence on a channel still open is not (S may be paused: SIGSTOP, a
 * stalled VM, swapping): nothing is closed for it, and what is done depends on the phase. Whoever
 * holds the lock keeps serving; whoever does not, never starts writing.
 */

import { ProtocolError, type Channel } from '../protocol/index.js';
import type { IncumbentFlow } from './incumbent.js';
import type { Runtime } from './runtime.js';
import type { SuccessorFlow } from './successor.js';

export class SupervisorLoss {
  constructor(
    private readonly rt: Runtime,
    private readonly incumbent: IncumbentFlow,
    private readonly successor: SuccessorFlow,
  ) {}

  /** Sends our heartbeats, and watches S's: silence goes to onSilence, and frames after it end it. */
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
        this.onSilence(channel);
      }
    }, every);
    wd.unref();
    rt.timers.push(hb, wd);
  }

  /** S has said nothing for the heartbeat timeout, on a channel that is still open. */
  private onSilence(channel: Channel): void {
    const rt = this.rt;
    const phase = rt.phase;
    const reason = rt.silenceReason();
    rt.logger.warn({ phase, reason }, 'the supervisor is silent');
    switch (phase) {
      case 'starting':
      case 'awaiting-begin':
        // A successor before Begin holds nothing: it may as well leave (the S-loss rules follow).
        if (rt.contract.role === 'successor') channel.fail(new ProtocolError('heartbeat_timeout', `no frame from the supervisor for ${rt.contract.heartbeatTimeoutMs} ms`));
        return;
      case 'draining':
      case 'drained':
      case 'seal-failed':
        // Holding the lock, not serving: serve again, and tell S why (it reads it when it runs again).
        channel.send({ type: 'Abort', handoff_id: rt.currentId!, reason });
        rt.events.emit('aborted', { reason, phase });
        rt.task(this.incumbent.undoHeld());
        return;
      case 'sealed':
        // The lock is let go: retake it (Abort to S then) or, when the successor has it, leave.
        rt.events.emit('aborted', { reason, phase });
        rt.task(this.incumbent.resumeReleased(2 * rt.contract.heartbeatTimeoutMs, 250, reason));
        return;
      default:
        // serving (at rest, or a successor after Ready), beginning, unhealthy: carry on, keep the
        // channel. sealing: the seal's end looks at rt.supervisor. The rest are on their way.
        return;
    }
  }

  /**
   * The control channel closed (EOF, error, a protocol failure, an awaiting successor's silence).
   * `afterAbort`: the last message S sent was an Abort that was acted on; S closing then is how it
   * ends its part (it does so after telling an offender), not a loss.
   */
  onChannelClose(err: ProtocolError, afterAbort: boolean): void {
    const rt = this.rt;
    const phase = rt.phase;
    if (rt.exiting || phase === 'committing' || phase === 'stopping' || phase === 'exiting') return;
    if (afterAbort && (phase === 'serving' || phase === 'resuming' || phase === 'sealing')) {
      rt.supervisor = 'lost';
      rt.stopTimers();
      rt.logger.info({ phase }, 'the supervisor closed the channel after its Abort');
      return;
    }
    this.lost(err.message);
  }

  private lost(reason: string): void {
    const rt = this.rt;
    if (rt.supervisor === 'lost') return;
    rt.supervisor = 'lost';
    rt.stopTimers();
    const phase = rt.phase;
    rt.logger.warn({ reason, phase }, 'supervisor lost');
    rt.events.emit('supervisor-lost', { reason, phase });
    switch (phase) {
      case 'starting':
        if (rt.contract.role === 'successor') rt.task(rt.exit(1));
        // A cold start goes on: it holds the lock (or will) and serves.
        return;
      case 'awaiting-begin':
        rt.logger.warn('no Begin yet: exiting');
        rt.task(rt.exit(1));
        return;
      case 'unhealthy':
        // Nobody will call this handoff off: let the lock go, so the incumbent can retake it.
        rt.events.emit('aborted', { reason: 'supervisor lost', phase });
        rt.task(this.successor.rollback());
        return;
      case 'draining':
      case 'drained':
      case 'seal-failed':
        rt.events.emit('aborted', { reason: 'supervisor lost', phase });
        rt.task(this.incumbent.undoHeld());
        return;
      case 'sealed':
        rt.events.emit('aborted', { reason: 'supervisor lost', phase });
        rt.task(this.incumbent.resumeReleased(2 * rt.contract.heartbeatTimeoutMs, 250));
        return;
      default:
        // serving: keep serving; beginning/sealing: the running step looks at rt.supervisor.
        return;
    }
  }
}
