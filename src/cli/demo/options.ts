/** `handoff demo`'s flags, checked: a bad value is one line and exit 2 (a usage error). */

import { DurationError, parseDuration } from '../duration.js';
import { usageError } from '../errors.js';
import { SCENARIOS, isScenario } from './scenarios.js';
import type { DemoOptions } from './index.js';

export interface DemoFlags {
  port?: string;
  handoffs?: string;
  clients?: string;
  duration?: string;
  scenario?: string;
  keep?: boolean;
  json?: boolean;
}

/** Bounds that keep a demo a demo: it holds every sample in memory. */
export const DEMO_LIMITS = { handoffs: 100, clients: 200, minDurationMs: 1_000, maxDurationMs: 600_000 } as const;

function int(v: string | undefined, flag: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (!/^\d{1,6}$/.test(v) || Number(v) < min || Number(v) > max) throw usageError(`${flag}: expected a whole number from ${min} to ${max}, got '${v}'`);
  return Number(v);
}

function duration(v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  let ms: number;
  try {
    ms = parseDuration(v);
  } catch (err) {
    if (err instanceof DurationError) throw usageError(`--duration: ${err.message}`);
    throw err;
  }
  if (ms < DEMO_LIMITS.minDurationMs || ms > DEMO_LIMITS.maxDurationMs) throw usageError(`--duration: expected from 1s to 10m, got '${v}'`);
  return ms;
}

export function parseDemoFlags(f: DemoFlags): DemoOptions {
  if (f.scenario !== undefined && !isScenario(f.scenario)) throw usageError(`--scenario: expected one of ${SCENARIOS.join(', ')}, got '${f.scenario}'`);
  const port = int(f.port, '--port', 0, 65535);
  const handoffs = int(f.handoffs, '--handoffs', 1, DEMO_LIMITS.handoffs);
  const clients = int(f.clients, '--clients', 1, DEMO_LIMITS.clients);
  const durationMs = duration(f.duration);
  return {
    ...(f.scenario !== undefined && isScenario(f.scenario) ? { scenario: f.scenario } : {}),
    ...(port !== undefined ? { port } : {}),
    ...(handoffs !== undefined ? { handoffs } : {}),
    ...(clients !== undefined ? { clients } : {}),
    ...(durationMs !== undefined ? { durationMs } : {}),
    ...(f.keep === true ? { keep: true } : {}),
    ...(f.json === true ? { json: true } : {}),
  };
}
