/**
 * S's own stalls. Time S itself did not run (SIGSTOP, a stalled VM, swapping) is nobody's silence
 * and uses up no peer's deadline. A small tick notices when S's event loop did not run for a while
 * and records the stall; S's timers use `Clock.timer`, which
 *   - counts only time S ran: a timer that comes due across a stall is re-armed for what is left;
 *   - decides after I/O: its callback runs one loop turn later (setImmediate), after the poll phase
 *     has read whatever frames the peers sent while S was stopped.
 * Silence is judged the same way (`silentFor`): time since a peer's last frame, less S's stalls.
 */

import { TIMER_MAX_MS } from '../shared/constants.js';

/** How often the tick runs, and how late it must be to count as a stall. */
export const CLOCK_TICK_MS = 100;
export const STALL_THRESHOLD_MS = 250;
/** Stalls remembered for silence judgements: enough to cover any heartbeat timeout. */
const MAX_STALLS = 64;

export interface Timer {
  cancel(): void;
}

interface Stall {
  /** performance.now() when S ran again. */
  end: number;
  ms: number;
}

export class Clock {
  private last = performance.now();
  private stalledTotal = 0;
  private readonly stalls: Stall[] = [];
  private readonly tick: NodeJS.Timeout;

  constructor(private readonly onStall: (ms: number) => void = () => undefined) {
    this.tick = setInterval(() => this.observe(), CLOCK_TICK_MS);
    this.tick.unref();
  }

  close(): void {
    clearInterval(this.tick);
  }

  /** Notes a stall if the loop has not run for a while; any callback may call it first. */
  observe(): void {
    const now = performance.now();
    const gap = now - this.last - CLOCK_TICK_MS;
    this.last = now;
    if (gap <= STALL_THRESHOLD_MS) return;
    this.stalledTotal += gap;
    this.stalls.push({ end: now, ms: gap });
    if (this.stalls.length > MAX_STALLS) this.stalls.shift();
    this.onStall(Math.round(gap));
  }

  /** Milliseconds S ran since `since` (a performance.now() value). */
  ranSince(since: number): number {
    this.observe();
    const now = performance.now();
    let stalled = 0;
    for (const s of this.stalls) {
      if (s.end <= since) continue;
      // A stall that began before `since` counts only from `since` on.
      stalled += Math.min(s.ms, s.end - since);
    }
    return Math.max(0, now - since - stalled);
  }

  /** How long a peer whose last frame arrived at `lastReceived` has been silent, in S's running time. */
  silentFor(lastReceived: number): number {
    return this.ranSince(lastReceived);
  }

  /** Calls `fn` once S has run `ms` milliseconds, after the I/O that was waiting at that moment. */
  timer(ms: number, fn: () => void): Timer {
    const start = performance.now();
    let handle: NodeJS.Timeout | NodeJS.Immediate | undefined;
    let cancelled = false;
    const arm = (wait: number): void => {
      handle = setTimeout(() => {
        // Let the poll phase read what arrived while S was stopped, then decide.
        handle = setImmediate(() => {
          if (cancelled) return;
          const left = ms - this.ranSince(start);
          if (left > 1) arm(left);
          else fn();
        });
      }, Math.max(1, Math.min(wait, TIMER_MAX_MS)));
    };
    arm(ms);
    return {
      cancel: () => {
        cancelled = true;
        clearTimeout(handle as NodeJS.Timeout);
        clearImmediate(handle as NodeJS.Immediate);
      },
    };
  }
}
