/**
 * Losing S: the heartbeat watchdog that notices a silent S, and the rules for what a process does
 * when the control channel is gone, by phase. Whoever holds the lock keeps serving; whoever does
 * not, never starts writing.
 */

import { ProtocolError, type Channel } from '../protocol/index.js';
import type { IncumbentFlow } from './incumbent.js';
import type { Runtime } from './runtime.js';

/** Sends our heartbeats, and fails the channel when S has been silent too long. */
export function startHeartbeats(rt: Runtime, channel: Channel): void {
  const { heartbeatMs, heartbeatTimeoutMs } = rt.contract;
  const hb = setInterval(() => {
    channel.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) });
  }, heartbeatMs);
  hb.unref();
  const every = Math.max(10, Math.min(heartbeatMs, Math.floor(heartbeatTimeoutMs / 4)));
  let lastCheck = performance.now();
  const wd = setInterval(() => {
    const now = performance.now();
    const late = now - lastCheck - every;
    lastCheck = now;
    // Our own loop stalled: let pending input be read before judging S.
    if (late > every) return;
    if (now - channel.lastReceived > heartbeatTimeoutMs) {
      channel.fail(new ProtocolError('heartbeat_timeout', `no frame from the supervisor for ${heartbeatTimeoutMs} ms`));
    }
  }, every);
  wd.unref();
  rt.timers.push(hb, wd);
}

export class SupervisorLoss {
  constructor(
    private readonly rt: Runtime,
    private readonly incumbent: IncumbentFlow,
  ) {}

  /** The control channel closed (EOF, error, protocol failure, or the watchdog). */
  onChannelClose(err: ProtocolError): void {
    if (this.rt.exiting || this.rt.phase === 'committing') return;
    this.lost(err.message);
  }

  private lost(reason: string): void {
    const rt = this.rt;
    if (rt.supervisorLost) return;
    rt.supervisorLost = true;
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
        // serving: keep serving; beginning/sealing: the running step checks the flag.
        return;
    }
  }
}
