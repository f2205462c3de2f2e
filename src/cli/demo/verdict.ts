/** Each scenario's expectation, and the one line that says whether the run met it. */

import { fmtMs } from '../../load/index.js';
import type { HandoffRun } from '../../load/index.js';
import type { CrashEffect, CrashRun } from './crash.js';
import { FIRST_BUILD, type ScenarioName } from './scenarios.js';

export interface VerdictInput {
  scenario: ScenarioName;
  handoffs: ReadonlyArray<Omit<HandoffRun, 'marks'>>;
  crashes: ReadonlyArray<CrashRun & CrashEffect>;
  failures: number;
  /** Failures no crash explains (all of them outside the crash scenario). */
  unexplained: number;
  refused: number;
  writesSurvived: boolean;
  error?: string;
}

export interface Verdict {
  /** Why the run is not what its scenario promises; empty when it is. */
  problems: string[];
  /** `PASS: …` or `FAIL: …`. */
  line: string;
}

const plural = (n: number, one: string, many = `${one}s`): string => `${n} ${n === 1 ? one : many}`;

const ROLLED_BACK = 'successor_unhealthy';

function expectations(v: VerdictInput): string[] {
  const p: string[] = [];
  if (v.error !== undefined) p.push(v.error);
  if (v.refused > 0) p.push(`${plural(v.refused, 'connection')} refused`);
  if (!v.writesSurvived) p.push('acknowledged writes did not all survive');
  if (v.unexplained > 0) p.push(v.scenario === 'crash' ? `${plural(v.unexplained, 'failed request')} not explained by the crash` : `${plural(v.unexplained, 'failed request')}`);
  switch (v.scenario) {
    case 'upgrade':
      if (v.handoffs.length === 0) p.push('no handoff ran');
      for (const h of v.handoffs) if (h.record?.outcome !== 'committed') p.push(`handoff ${h.n} did not commit`);
      break;
    case 'unhealthy':
      if (v.handoffs.length === 0) p.push('no handoff ran');
      for (const h of v.handoffs) {
        if (h.record?.reason_kind !== ROLLED_BACK) p.push(`handoff ${h.n} was not rolled back as unhealthy (${h.record ? (h.record.reason ?? h.record.outcome) : (h.error ?? 'no record')})`);
        if (h.servingAfter !== FIRST_BUILD) p.push(`after handoff ${h.n}, ${h.servingAfter} serves instead of ${FIRST_BUILD}`);
      }
      break;
    case 'crash':
      if (v.crashes.length === 0) p.push('no crash ran');
      for (const c of v.crashes) if (c.error !== undefined || c.newPid === null) p.push(`crash ${c.n}: no fresh incumbent served (${c.error ?? 'no incumbent'})`);
      break;
  }
  return p;
}

export function judge(v: VerdictInput): Verdict {
  const problems = expectations(v);
  if (problems.length > 0) return { problems, line: `FAIL: ${problems.join('; ')}.` };
  const clean = 'no failed request, no refused connection, every acknowledged write survived.';
  switch (v.scenario) {
    case 'upgrade':
      return { problems, line: `PASS: ${plural(v.handoffs.length, 'handoff')} committed under load; ${clean}` };
    case 'unhealthy':
      return { problems, line: `PASS: ${plural(v.handoffs.length, 'unhealthy build')} rolled back under load (${ROLLED_BACK}); build ${FIRST_BUILD} kept serving; ${clean}` };
    case 'crash': {
      const worst = (k: 'blackoutMs' | 'heldMaxMs'): string => fmtMs(v.crashes.reduce((m, c) => Math.max(m, Number.isNaN(c[k]) ? 0 : c[k]), 0));
      return {
        problems,
        line:
          `PASS: ${plural(v.crashes.length, 'crash', 'crashes')} of the incumbent under load, each followed by a fresh one; ` +
          `clients saw ${plural(v.failures, 'failed request')} (cut with the killed process's connections), no refused connection, ` +
          `no answer for up to ${worst('blackoutMs')} (requests held in the kernel's queue up to ${worst('heldMaxMs')}); every acknowledged write survived. ` +
          'A handoff avoids exactly those failures.',
      };
    }
  }
}
