/**
 * Keeping an incumbent serving between handoffs: the cold start (with its Hello timeout), why an
 * incumbent is gone, the restart with backoff, and the start limit (every cold start failed before
 * anything served: a setup mistake, reported rather than retried forever).
 */

import type { Logger } from 'pino';
import { ProtocolError, type ErrorKind } from '../protocol/errors.js';
import { isLockHeld, lockOwner } from '../shared/lock.js';
import { DRAIN_SLACK_MS } from '../shared/constants.js';
import type { ServiceChild } from './child.js';
import type { Clock } from './clock.js';
import type { StateDir } from './state-dir.js';
import type { FailureInfo, SupervisorEvents, SupervisorOptions, SupervisorState } from './types.js';

/** An incumbent must stay up this long before its restart backoff resets. */
export const STABLE_MS = 30_000;

/** The first cold starts failed `startLimit` times in a row: S gives up instead of looping. */
export class StartLimitError extends Error {
  override name = 'StartLimitError';
  constructor(
    message: string,
    readonly last: FailureInfo,
  ) {
    super(message);
  }
}

/** What restarts need from the supervisor. */
export interface RestartHost {
  readonly log: Logger;
  readonly clock: Clock;
  readonly stateDir: StateDir;
  options(): SupervisorOptions;
  state(): SupervisorState;
  setState(state: SupervisorState): void;
  /** Whether an incumbent ever served: until one did, failures count against the start limit. */
  everServed(): boolean;
  /** Spawns a cold start of what should serve, as the incumbent. */
  spawnIncumbent(): ServiceChild;
  /** The command the next cold start runs. */
  target(): string[];
  clearLock(pid: number): void;
  restarting(info: SupervisorEvents['restart'][0]): void;
  gaveUp(err: StartLimitError): void;
}

export interface RestartOptions {
  /** Why the previous incumbent is gone. */
  reason: ProtocolError;
  /** Its failure as noted, when there was one to note. */
  failed: FailureInfo | null;
  /** The process that failed, when there was one. */
  child: ServiceChild | null;
  /** Start at once instead of after the backoff (the incumbent died in a handoff). */
  immediate?: boolean;
}

export class Restarts {
  private timer: NodeJS.Timeout | undefined;
  private attempt = 0;
  /** Cold starts after a failure, since S started. */
  private restarts = 0;
  /** Incumbent failures in a row with nothing serving in between, and the last one. */
  private consecutiveFailures = 0;
  private last: FailureInfo | null = null;
  private readonly failureCounts: Partial<Record<ErrorKind, number>> = {};
  /** Why S itself took an incumbent down (hung, unreachable, no Hello), for its failure record. */
  private readonly takedowns = new WeakMap<ServiceChild, ProtocolError>();

  constructor(private readonly host: RestartHost) {}

  /** Cold starts after a failure, since S started. */
  get count(): number {
    return this.restarts;
  }

  /** The last incumbent failure, kept after a successful restart. */
  get lastFailure(): FailureInfo | null {
    return this.last;
  }

  /** Incumbent failures by reason kind, for /metrics. */
  failuresByKind(): Partial<Record<ErrorKind, number>> {
    return { ...this.failureCounts };
  }

  private stopping(): boolean {
    const s = this.host.state();
    return s === 'stopping' || s === 'stopped';
  }

  /** Starts an incumbent, killed if it says no Hello in time. */
  coldStart(): void {
    if (this.stopping()) return;
    const { host } = this;
    host.setState(host.everServed() ? 'restarting' : 'starting');
    const child = host.spawnIncumbent();
    const helloTimeoutMs = host.options().helloTimeoutMs;
    const timer = host.clock.timer(helloTimeoutMs, () => {
      if (child.acked || !child.alive) return;
      host.log.error({ child_pid: child.pid }, `no Hello within ${helloTimeoutMs} ms: killing the cold start`);
      this.takedowns.set(child, new ProtocolError('deadline_exceeded', `the cold start said no Hello within ${helloTimeoutMs} ms`));
      child.kill('SIGKILL');
    });
    void child.exited.then(() => timer.cancel());
  }

  /** An incumbent said Hello: the failures in a row end. */
  served(): void {
    this.consecutiveFailures = 0;
  }

  /** A handoff committed: the new incumbent starts with a fresh backoff. */
  resetBackoff(): void {
    this.attempt = 0;
  }

  cancel(): void {
    clearTimeout(this.timer);
  }

  /** Whether S already took `child` down (its exit will be reported with S's reason). */
  takenDown(child: ServiceChild): boolean {
    return this.takedowns.has(child);
  }

  /** The incumbent at rest is silent past the timeout: a hung process serves nobody. */
  killHung(child: ServiceChild, silentMs: number): void {
    this.takedowns.set(child, new ProtocolError('incumbent_hung', `no heartbeat from the incumbent for ${Math.round(silentMs)} ms`));
    child.kill('SIGKILL');
  }

  /**
   * An incumbent S can no longer talk to still serves: it is stopped gently (SIGTERM: the library
   * drains, closes and lets the lock go) rather than killed, and a cold start follows its exit.
   */
  retireUnreachable(child: ServiceChild, err: ProtocolError): void {
    if (this.takedowns.has(child)) return;
    this.takedowns.set(child, err);
    this.host.log.error({ child_pid: child.pid, reason: err.toReason() }, 'S cannot drive the incumbent any more: stopping it gracefully, then a cold start');
    child.kill('SIGTERM');
    const opts = this.host.options();
    void child.retire(opts.drainGraceMs + DRAIN_SLACK_MS, opts.killAfterMs);
  }

  /** The incumbent died between handoffs (S reaped it): its lock goes, then a cold start after the backoff, or S gives up. */
  incumbentDied(child: ServiceChild): void {
    const reason = this.failureOf(child);
    this.host.clearLock(child.pid);
    const failed = this.noteFailure(child, reason);
    if (!this.host.everServed() && this.consecutiveFailures >= this.host.options().startLimit) {
      this.giveUp(failed);
      return;
    }
    if (Date.now() - child.startedAt.getTime() >= STABLE_MS) this.attempt = 0;
    this.scheduleRestart({ reason, failed, child });
  }

  /**
   * The serving process died during a handoff (or right after Commit): a cold start at once, while
   * connections wait in the kernel's queue; no backoff for a first failure.
   */
  lostInHandoff(child: ServiceChild | null): void {
    const reason = child ? this.failureOf(child) : new ProtocolError('incumbent_failed', 'no incumbent after the handoff');
    if (child) this.host.clearLock(child.pid);
    const failed = child ? this.noteFailure(child, reason) : null;
    this.scheduleRestart({ reason, failed, child, immediate: true });
  }

  /** Why an incumbent (or a cold start) is gone, from what S did to it, the lock, and its exit. */
  private failureOf(child: ServiceChild): ProtocolError {
    const taken = this.takedowns.get(child);
    if (taken) return taken;
    const spawnError = child.exitInfo?.spawnError;
    if (spawnError) return new ProtocolError('incumbent_failed', `${child.command[0] ?? ''} could not start (${spawnError})`);
    const lockPath = this.host.options().lockPath;
    if (!child.acked && lockPath !== undefined && isLockHeld(lockPath)) {
      const owner = lockOwner(lockPath);
      if (owner?.pid !== child.pid) {
        const who = owner ? `pid ${owner.pid}` : 'a process that left no owner record';
        return new ProtocolError('lock_held', `the data-dir lock ${lockPath} is held by ${who}, not by a process of this supervisor`);
      }
    }
    return new ProtocolError('incumbent_failed', child.acked ? `incumbent ${child.describeExit()}` : `cold start ${child.describeExit()} before Hello`);
  }

  private noteFailure(child: ServiceChild, reason: ProtocolError): FailureInfo {
    this.consecutiveFailures++;
    this.failureCounts[reason.kind] = (this.failureCounts[reason.kind] ?? 0) + 1;
    const f: FailureInfo = {
      at: new Date().toISOString(),
      reason: reason.toReason(),
      reason_kind: reason.kind,
      pid: child.pid,
      exit: child.describeExit(),
      stderr_tail: child.stderrTail.get(),
      consecutive: this.consecutiveFailures,
    };
    this.last = f;
    this.host.log.error({ child_pid: f.pid, reason: f.reason, exit: f.exit, stderr_tail: f.stderr_tail, consecutive: f.consecutive }, 'incumbent failed');
    return f;
  }

  private scheduleRestart({ reason, failed, child, immediate = false }: RestartOptions): void {
    if (this.stopping()) return;
    const { host } = this;
    const opts = host.options();
    host.setState('restarting');
    this.attempt++;
    const delayMs = immediate ? 0 : Math.min(opts.restartInitialMs * 2 ** (this.attempt - 1), opts.restartMaxMs);
    this.restarts++;
    host.log.warn({ attempt: this.attempt, delay_ms: delayMs, reason: reason.toReason() }, 'incumbent down: restarting');
    host.stateDir.append({
      kind: 'restart',
      at: new Date().toISOString(),
      reason: reason.toReason(),
      reason_kind: reason.kind,
      pid: child?.pid ?? 0,
      exit: child?.describeExit() ?? 'none',
      command: child?.command ?? host.target(),
      stderr_tail: failed?.stderr_tail ?? [],
      attempt: this.attempt,
      delay_ms: delayMs,
    });
    host.restarting({ attempt: this.attempt, delayMs, reason: reason.toReason() });
    this.timer = setTimeout(() => this.coldStart(), delayMs);
  }

  /** Nothing ever served and every cold start failed: a setup mistake, reported rather than retried forever. */
  private giveUp(last: FailureInfo): void {
    const msg = `the service failed ${last.consecutive} times in a row before it ever served (--start-limit ${this.host.options().startLimit}); last: ${last.reason}`;
    this.host.log.fatal({ reason: last.reason, exit: last.exit, stderr_tail: last.stderr_tail }, msg);
    this.host.setState('stopped');
    this.host.gaveUp(new StartLimitError(msg, last));
  }
}
