/**
 * The crash scenario: the incumbent is killed (SIGKILL) under load and S cold-starts a fresh one.
 * A crash is not a handoff, and the demo says what clients saw without softening it: requests in
 * flight on the dead process's connections fail; new connections wait in the kernel's accept
 * queue (S holds the listener) until the fresh incumbent accepts them, so they are late, not
 * refused; and nothing answers for a while (the blackout).
 */

import type { Failure, LoadGenerator, LoadResult } from '../../load/index.js';
import type { SupervisorHost } from './host-client.js';
import { Interrupted, infoBuild, type Guard } from './setup.js';

export interface CrashRun {
  /** 1-based. */
  n: number;
  killedPid: number;
  killedBuild: string;
  /** Load clock (ms): the kill, and the fresh incumbent's first answer (a GET /info sent right after the kill). */
  at: number;
  answeredAt: number;
  /** S's cold start: its attempt, its backoff and S's reason. */
  attempt: number;
  delayMs: number;
  reason: string;
  newPid: number | null;
  servingAfter: string;
  error?: string;
}

/** The first answer may wait for the backoff and a cold start on a busy machine. */
const FIRST_ANSWER_TIMEOUT_MS = 30_000;

export async function runCrash(n: number, host: SupervisorHost, guard: Guard, load: LoadGenerator, port: number): Promise<CrashRun> {
  const run: CrashRun = { n, killedPid: 0, killedBuild: '?', at: load.now(), answeredAt: Number.NaN, attempt: 0, delayMs: 0, reason: '', newPid: null, servingAfter: '-' };
  try {
    const c = await guard.run(host.crash());
    // The kill happened in the host: its wall-clock moment, put on the load's clock.
    run.at = load.now() - (Date.now() - c.killedAtMs);
    Object.assign(run, { killedPid: c.pid, killedBuild: c.build_id, attempt: c.attempt, delayMs: c.delayMs, reason: c.reason });
    // Sent after S reaped the old process, so it can only be answered by the fresh one.
    run.servingAfter = await guard.run(infoBuild(port, FIRST_ANSWER_TIMEOUT_MS));
    run.answeredAt = load.now();
    run.newPid = (await guard.run(host.status())).incumbent?.pid ?? null;
  } catch (err) {
    if (err instanceof Interrupted) throw err;
    run.error = err instanceof Error ? err.message : String(err);
  }
  return run;
}

/** What clients saw around one crash. */
export interface CrashEffect {
  /** Failed requests that were in flight on a connection cut by the crash, or sent on it before the client knew. */
  failed: number;
  /** The longest time around the crash in which no client got a successful answer (NaN: no answer came back). */
  blackoutMs: number;
  /** The longest successful request that overlapped the outage: held in the kernel's queue, not failed. */
  heldMaxMs: number;
}

/** A connection cut under a request: what a killed server does to its clients. */
function connectionCut(f: Failure): boolean {
  return ['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'aborted'].includes(f.kind) || f.detail === 'socket hang up';
}

function explains(c: CrashRun, f: Failure): boolean {
  const end = Number.isNaN(c.answeredAt) ? Number.POSITIVE_INFINITY : c.answeredAt;
  return connectionCut(f) && f.at <= end && f.at + f.ms >= c.at;
}

/** The longest gap between successive successful answers (`okEnds`, ascending) that overlaps the crash's window. */
function blackout(c: CrashRun, okEnds: readonly number[], end: number): number {
  let worst = Number.NaN;
  let prev = 0;
  for (const t of okEnds) {
    if (prev > end) break;
    if (t >= c.at) worst = Math.max(Number.isNaN(worst) ? 0 : worst, t - prev);
    prev = t;
  }
  return worst;
}

export function crashEffects(runs: readonly CrashRun[], r: LoadResult): { effects: CrashEffect[]; unexplained: Failure[] } {
  const okEnds = r.samples
    .filter((s) => s.ok)
    .map((s) => s.end)
    .sort((a, b) => a - b);
  const effects = runs.map((c) => {
    const end = Number.isNaN(c.answeredAt) ? Number.POSITIVE_INFINITY : c.answeredAt;
    // Reduced rather than spread: a long run holds more samples than a call has room for arguments.
    const held = r.samples.reduce((m, s) => (s.ok && s.start <= end && s.end >= c.at ? Math.max(m, s.end - s.start) : m), Number.NEGATIVE_INFINITY);
    return {
      failed: r.failures.filter((f) => explains(c, f)).length,
      blackoutMs: blackout(c, okEnds, end),
      heldMaxMs: Number.isFinite(held) ? held : Number.NaN,
    };
  });
  return { effects, unexplained: r.failures.filter((f) => !runs.some((c) => explains(c, f))) };
}

/** Where a failure falls among the crashes: in flight at one, during one, or between them. */
export function placeAmongCrashes(f: Failure, runs: readonly CrashRun[]): string {
  for (const c of runs) {
    const end = Number.isNaN(c.answeredAt) ? Number.POSITIVE_INFINITY : c.answeredAt;
    if (f.at < c.at && f.at + f.ms >= c.at) return `in flight at crash ${c.n}`;
    if (f.at >= c.at && f.at <= end) return `sent during crash ${c.n}`;
  }
  const before = runs.filter((c) => c.at < f.at).length;
  return before === 0 ? 'before the first crash' : `after crash ${before}`;
}
