/** Renders the supervisor's counters in the Prometheus text exposition format (version 0.0.4). */

import { HANDOFF_PHASES, type HandoffOutcome, type HandoffPhase, type PhaseHistogram, type SupervisorMetrics, type SupervisorStatus } from './types.js';

export const METRICS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Histogram bucket bounds for phase durations, in seconds. */
export const PHASE_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120] as const;

/** Phase duration histograms kept as running bucket counts: constant memory, counts never go down. */
export class PhaseHistograms {
  private readonly byPhase: Partial<Record<HandoffPhase, PhaseHistogram>> = {};

  observe(phase: HandoffPhase, ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) return;
    const h = (this.byPhase[phase] ??= { buckets: PHASE_BUCKETS_S.map(() => 0), count: 0, sumMs: 0 });
    PHASE_BUCKETS_S.forEach((le, i) => {
      if (ms / 1000 <= le) h.buckets[i] = (h.buckets[i] ?? 0) + 1;
    });
    h.count++;
    h.sumMs += ms;
  }

  snapshot(): Partial<Record<HandoffPhase, PhaseHistogram>> {
    return structuredClone(this.byPhase);
  }
}

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
  for (const phase of TIMED_PHASES) {
    const h = m.phaseHistograms[phase] ?? { buckets: PHASE_BUCKETS_S.map(() => 0), count: 0, sumMs: 0 };
    PHASE_BUCKETS_S.forEach((le, i) => out.push(`handoff_phase_duration_seconds_bucket{phase="${phase}",le="${num(le)}"} ${h.buckets[i] ?? 0}`));
    out.push(`handoff_phase_duration_seconds_bucket{phase="${phase}",le="+Inf"} ${h.count}`);
    out.push(`handoff_phase_duration_seconds_sum{phase="${phase}"} ${num(Math.round(h.sumMs) / 1000)}`);
    out.push(`handoff_phase_duration_seconds_count{phase="${phase}"} ${h.count}`);
  }

  family('handoff_incumbent_restarts_total', 'counter', 'Cold starts after the incumbent died between handoffs.');
  out.push(`handoff_incumbent_restarts_total ${num(m.incumbentRestarts)}`);

  family('handoff_incumbent_failures_total', 'counter', 'Incumbents that could not start, died or hung, by reason kind.');
  for (const [kind, n] of Object.entries(m.incumbentFailures ?? {})) out.push(`handoff_incumbent_failures_total{reason_kind="${kind}"} ${num(n ?? 0)}`);

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
