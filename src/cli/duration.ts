/**
 * Durations on the command line, in the environment and in the config file: a number with a unit
 * (`250ms`, `5s`, `1.5s`, `2m`, `1h`). A bare number is refused (is `30` seconds or milliseconds?),
 * except `0`, which is the same in every unit. At most 2^31-1 ms (~24.8 days): Node's timers
 * silently turn anything larger into 1 ms.
 */

import { TIMER_MAX_MS } from '../shared/constants.js';

export const MAX_DURATION_MS = TIMER_MAX_MS;

const UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

export class DurationError extends Error {
  override name = 'DurationError';
}

/** Parses a duration to whole milliseconds; throws DurationError with a one-line message. */
export function parseDuration(input: string | number): number {
  const text = String(input).trim();
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?$/.exec(text);
  if (!m) throw new DurationError(`invalid duration '${String(input)}' (use a number with a unit: 250ms, 5s, 2m, 1h)`);
  if (m[2] === undefined && Number(m[1]) !== 0) throw new DurationError(`duration '${String(input)}' has no unit: write ${m[1]}ms or ${m[1]}s (units: ms, s, m, h)`);
  let ms = Number(m[1]) * (UNITS[m[2] ?? 'ms'] ?? 1);
  if (!Number.isFinite(ms)) throw new DurationError(`invalid duration '${String(input)}'`);
  ms = Math.round(ms);
  if (ms < 1) throw new DurationError(`duration '${String(input)}' must be at least 1ms`);
  if (ms > MAX_DURATION_MS) throw new DurationError(`duration '${String(input)}' is too long (at most ${MAX_DURATION_MS} ms, about 24 days)`);
  return ms;
}

/** Renders milliseconds the way an operator reads them: `850 ms`, `2.3 s`, `4m 05s`, `3h 12m`. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) return '?';
  if (ms < 1_000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1_000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const totalS = Math.floor(ms / 1_000);
  if (ms < 3_600_000) return `${Math.floor(totalS / 60)}m ${String(totalS % 60).padStart(2, '0')}s`;
  const totalM = Math.floor(totalS / 60);
  if (ms < 86_400_000) return `${Math.floor(totalM / 60)}h ${String(totalM % 60).padStart(2, '0')}m`;
  return `${Math.floor(totalM / 1440)}d ${String(Math.floor(totalM / 60) % 24).padStart(2, '0')}h`;
}

/** The default of an option as help shows it: `25s` rather than `25000`. */
export function durationLabel(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms >= 120_000) return `${ms / 60_000}m`;
  if (ms % 1_000 === 0) return `${ms / 1_000}s`;
  return `${ms}ms`;
}
