/**
 * Handoffs placed on the load's clock: which requests overlapped a handoff, and where a moment
 * (a failure) falls. Shared by the demo's report and the benches.
 */

import type { HandoffPhase, HandoffRecord } from '../supervisor/types.js';
import type { Sample } from './generator.js';
import { summarize, type Summary } from './stats.js';

export interface HandoffRun {
  /** 1-based. */
  n: number;
  /** The successor's `--build-id`. */
  build: string;
  record: HandoffRecord | null;
  /** Why there is no record (the upgrade call failed). */
  error?: string;
  /** The window of the upgrade call, in ms of the load clock. */
  start: number;
  end: number;
  /** Phases entered, with their start in ms of the load clock (from the handoff's progress events). */
  marks: Array<{ phase: HandoffPhase; at: number }>;
  /** The build id `GET /info` answered right after the handoff. */
  servingAfter: string;
}

export interface LatencySplit {
  all: Summary;
  during: Summary;
  outside: Summary;
}

/** Splits request latency into requests that overlapped a handoff window and the rest. */
export function splitLatency(samples: readonly Sample[], windows: ReadonlyArray<{ start: number; end: number }>): LatencySplit {
  const all: number[] = [];
  const during: number[] = [];
  const outside: number[] = [];
  for (const s of samples) {
    const ms = s.end - s.start;
    all.push(ms);
    if (windows.some((w) => s.start <= w.end && s.end >= w.start)) during.push(ms);
    else outside.push(ms);
  }
  return { all: summarize(all), during: summarize(during), outside: summarize(outside) };
}

/** Where a moment of the load clock falls: in which handoff and phase, or outside them. */
export function placeInTime(at: number, runs: readonly HandoffRun[]): string {
  for (const r of runs) {
    if (at < r.start || at > r.end) continue;
    let phase: string = 'spawn';
    for (const m of r.marks) if (m.at <= at) phase = m.phase;
    return `handoff ${r.n} (${phase})`;
  }
  const before = runs.filter((r) => r.end < at).length;
  return before === 0 ? 'before the first handoff' : `after handoff ${before}`;
}
