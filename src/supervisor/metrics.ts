/** Renders the supervisor's counters in the Prometheus text exposition format (version 0.0.4). */

import { HANDOFF_PHASES, type HandoffOutcome, type SupervisorMetrics, type SupervisorStatus } from './types.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Histogram bucket bounds for phase durations, in seconds. */
export const PHASE_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

const OUTCOMES: readonly HandoffOutcome[] = ['committed', 'aborted', 'interrupted'];
/** Phases that have a duration (`done` is a mark, not a phase one spends time in). */
const TIMED_PHASES = HANDOFF_PHASES.filter((p) => p !== 'done');

function num(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

export function renderMetrics(m: SupervisorMetrics, status?: Pick<SupervisorStatus, 'incumbent' | 'state'>): string {
  const out: string[] = [];
  const family = (name: string, type: 'counter' | 'gauge' | 'histogram', help: string): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
  };

  family('handoff_handoffs_total', 'counter', 'Handoffs that ended, by outcome.');
  for (const o of OUTCOMES) out.push(`handoff_handoffs_total{outcome="${o}"} ${num(m.handoffs[o] ?? 0)}`);

  family('handoff_phase_duration_seconds', 'histogram', 'Time spent in each phase of a handoff.');
  const byPhase = new Map<string, number[]>();
  for (const p of TIMED_PHASES) byPhase.set(p, []);
  for (const d of m.phaseDurations) {
    const list = byPhase.get(d.phase);
    if (list && Number.isFinite(d.ms) && d.ms >= 0) list.push(d.ms / 1000);
  }
  for (const [phase, values] of byPhase) {
    for (const le of PHASE_BUCKETS_S) {
      out.push(`handoff_phase_duration_seconds_bucket{phase="${phase}",le="${num(le)}"} ${values.filter((v) => v <= le).length}`);
    }
    out.push(`handoff_phase_duration_seconds_bucket{phase="${phase}",le="+Inf"} ${values.length}`);
    const sum = values.reduce((a, b) => a + b, 0);
    out.push(`handoff_phase_duration_seconds_sum{phase="${phase}"} ${num(Math.round(sum * 1000) / 1000)}`);
    out.push(`handoff_phase_duration_seconds_count{phase="${phase}"} ${values.length}`);
  }

  family('handoff_incumbent_restarts_total', 'counter', 'Cold starts after the incumbent died between handoffs.');
  out.push(`handoff_incumbent_restarts_total ${num(m.incumbentRestarts)}`);

  family('handoff_current_phase', 'gauge', 'The phase of the in-flight handoff: 1 for the current phase, 0 for the others.');
  for (const p of HANDOFF_PHASES) out.push(`handoff_current_phase{phase="${p}"} ${m.phase === p ? 1 : 0}`);

  family('handoff_in_progress', 'gauge', '1 while a handoff is in flight.');
  out.push(`handoff_in_progress ${m.phase === null ? 0 : 1}`);

  if (status) {
    family('handoff_incumbent_up', 'gauge', '1 while an incumbent serves.');
    out.push(`handoff_incumbent_up ${status.incumbent ? 1 : 0}`);
    if (status.incumbent) {
      family('handoff_incumbent_uptime_seconds', 'gauge', 'How long the serving incumbent has been up.');
      out.push(`handoff_incumbent_uptime_seconds ${num(Math.round(status.incumbent.uptime_ms) / 1000)}`);
    }
  }
  return `${out.join('\n')}\n`;
}
