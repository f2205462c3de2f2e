/** The demo's results: what it measured, how it classifies them, and the table it prints. */

import type { HandoffPhase } from '../../supervisor/types.js';
import type { Failure, LoadResult, VerifyResult } from '../../load/generator.js';
import { fmtMs, type Summary } from '../../load/stats.js';
import { placeInTime, splitLatency, type HandoffRun, type LatencySplit } from '../../load/timeline.js';
import { crashEffects, placeAmongCrashes, type CrashEffect, type CrashRun } from './crash.js';
import { SCENARIO, type ScenarioName } from './scenarios.js';
import { judge } from './verdict.js';

export interface FailureNote extends Failure {
  /** `handoff 2 (drain)`, or `outside handoffs`. */
  when: string;
}

export interface DemoReport {
  ok: boolean;
  scenario: ScenarioName;
  port: number;
  tempDir: string;
  logFile: string;
  /** True when the temp dir was left in place (--keep, or something failed). */
  kept: boolean;
  /** True when Ctrl-C (or SIGTERM) ended the run early. */
  interrupted: boolean;
  load: {
    keepAliveClients: number;
    newConnectionClients: number;
    intervalMs: number;
    putRatio: number;
    elapsedMs: number;
    capped: boolean;
  };
  requests: number;
  puts: number;
  gets: number;
  acknowledged: number;
  checkedReads: number;
  failures: number;
  refused: number;
  resetOnReuse: number;
  keepAliveConnections: number;
  latency: LatencySplit;
  handoffs: Array<Omit<HandoffRun, 'marks'>>;
  committed: number;
  /** The crash scenario's events, with what clients saw around each. */
  crashes: Array<CrashRun & CrashEffect>;
  /** Why the run is not what its scenario promises (empty when ok), and the verdict line. */
  problems: string[];
  verdict: string;
  writes: { keys: number; survived: number; lost: number; readErrors: number; examples: VerifyResult['lost'] };
  writesSurvived: boolean;
  /** The first failures, each placed in time relative to the handoffs. */
  failureNotes: FailureNote[];
  /** Set when the demo could not run to the end. */
  error?: string;
}

export function buildReport(args: {
  /** Default `upgrade`. */
  scenario?: ScenarioName;
  port: number;
  tempDir: string;
  logFile: string;
  load: DemoReport['load'];
  result: LoadResult;
  runs: HandoffRun[];
  crashes?: CrashRun[];
  verify: VerifyResult | null;
  /** --keep: the temp dir stays even after a clean run. */
  keep?: boolean;
  interrupted?: boolean;
  error?: string;
}): DemoReport {
  const { result: r, runs, verify } = args;
  const scenario = args.scenario ?? 'upgrade';
  const interrupted = args.interrupted ?? false;
  const crashRuns = args.crashes ?? [];
  const committed = runs.filter((h) => h.record?.outcome === 'committed').length;
  const writesSurvived = verify !== null && verify.lost.length === 0 && verify.survived === verify.keys;
  const { effects, unexplained } = crashEffects(crashRuns, r);
  const crashes = crashRuns.map((c, i) => ({ ...c, ...(effects[i] ?? { failed: 0, blackoutMs: Number.NaN, heldMaxMs: Number.NaN }) }));
  const handoffs = runs.map(({ marks: _marks, ...rest }) => rest);
  // A crash's window runs from the kill to the fresh incumbent's first answer (to the end if none came).
  const windows = [...runs, ...crashRuns.map((c) => ({ start: c.at, end: Number.isNaN(c.answeredAt) ? r.elapsedMs : c.answeredAt }))];
  const failureNotes = r.failures.slice(0, 20).map((f) => ({ ...f, when: crashRuns.length > 0 ? placeAmongCrashes(f, crashRuns) : placeInTime(f.at, runs) }));
  const v = judge({ scenario, handoffs, crashes, failures: r.failures.length, unexplained: unexplained.length, refused: r.refused, writesSurvived, ...(args.error !== undefined ? { error: args.error } : {}) });
  const ok = v.problems.length === 0 && !interrupted;
  return {
    ok,
    scenario,
    port: args.port,
    tempDir: args.tempDir,
    logFile: args.logFile,
    // Kept for a look at the log when a run failed; an interrupted run leaves nothing unless asked.
    kept: (args.keep ?? false) || (!ok && !interrupted),
    interrupted,
    load: args.load,
    requests: r.requests,
    puts: r.puts,
    gets: r.gets,
    acknowledged: r.acknowledged,
    checkedReads: r.checkedReads,
    failures: r.failures.length,
    refused: r.refused,
    resetOnReuse: r.resetOnReuse,
    keepAliveConnections: r.keepAliveConnections,
    latency: splitLatency(r.samples, windows),
    handoffs,
    committed,
    crashes,
    problems: v.problems,
    verdict: v.line,
    writes: {
      keys: verify?.keys ?? 0,
      survived: verify?.survived ?? 0,
      lost: verify?.lost.length ?? 0,
      readErrors: verify?.errors ?? 0,
      examples: verify?.lost.slice(0, 5) ?? [],
    },
    writesSurvived,
    failureNotes,
    ...(args.error !== undefined ? { error: args.error } : {}),
  };
}

const PHASE_COLUMNS: HandoffPhase[] = ['hello', 'drain', 'seal', 'begin', 'commit'];

function pad(s: string, n: number): string {
  return s.length >= n ? s : s + ' '.repeat(n - s.length);
}

function lat(s: Summary): string {
  if (s.count === 0) return 'no requests';
  return `p50 ${fmtMs(s.p50)}   p99 ${fmtMs(s.p99)}   max ${fmtMs(s.max)}   (${s.count} requests)`;
}

/** A grid with a header row, columns padded to their widest cell. */
function grid(rows: string[][], indent: string): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, c.length)));
  return rows.map((row) => indent + row.map((c, i) => (i === row.length - 1 ? c : pad(c, (widths[i] ?? 0) + 2))).join('').trimEnd());
}

/** The handoffs' grid: phases, outcome, and the build that serves afterwards. */
function handoffRows(rep: DemoReport): string[] {
  const rollback = rep.handoffs.some((h) => h.record?.phases.some((p) => p.phase === 'rollback'));
  const cols = rollback ? [...PHASE_COLUMNS, 'rollback' as const] : PHASE_COLUMNS;
  const rows: string[][] = [['handoff', 'outcome', 'pid', ...cols, 'total', 'serving']];
  for (const h of rep.handoffs) {
    const rec = h.record;
    const ms = (p: HandoffPhase): string => {
      const v = rec?.phases.filter((x) => x.phase === p).reduce((a, x) => a + x.ms, 0);
      return rec?.phases.some((x) => x.phase === p) && v !== undefined ? fmtMs(v) : '-';
    };
    const outcome = !rec ? 'error' : rec.outcome === 'aborted' && rec.phases.some((p) => p.phase === 'rollback') ? 'rolled back' : rec.outcome;
    rows.push([String(h.n), outcome, rec ? `${rec.incumbent_pid ?? '-'} -> ${rec.successor_pid ?? '-'}` : '-', ...cols.map(ms), rec ? fmtMs(rec.total_ms) : '-', h.servingAfter]);
  }
  const out = grid(rows, '  ');
  for (const h of rep.handoffs) {
    if (h.record?.reason) out.push(`  handoff ${h.n}: ${h.record.reason}`);
    if (h.error) out.push(`  handoff ${h.n}: ${h.error}`);
  }
  return out;
}

/** The crashes' grid: who was killed, S's cold start, and what clients saw. */
function crashRows(rep: DemoReport): string[] {
  const rows: string[][] = [['crash', 'killed', 'restart', 'no answer for', 'failed', 'held up to', 'serving']];
  for (const c of rep.crashes) {
    rows.push([
      String(c.n),
      c.killedPid ? `pid ${c.killedPid} (${c.killedBuild})` : '-',
      c.attempt ? `attempt ${c.attempt} after ${fmtMs(c.delayMs)}` : '-',
      Number.isNaN(c.blackoutMs) ? 'never' : fmtMs(c.blackoutMs),
      String(c.failed),
      fmtMs(c.heldMaxMs),
      c.newPid !== null ? `${c.servingAfter} (pid ${c.newPid})` : c.servingAfter,
    ]);
  }
  const out = grid(rows, '  ');
  for (const c of rep.crashes) {
    if (c.reason) out.push(`  crash ${c.n}: ${c.reason}`);
    if (c.error) out.push(`  crash ${c.n}: ${c.error}`);
  }
  return out;
}

/**
 * The human table. Lines the tests read: `failures  N`, `refused  N`, `writes survived  yes|no`,
 * one `committed` (or `rolled back`) row per handoff, one row per crash, and the `PASS:`/`FAIL:` verdict.
 */
export function renderReport(rep: DemoReport): string {
  const L = 20;
  const kv = (k: string, v: string): string => `  ${pad(k, L)}${v}`;
  const crash = rep.scenario === 'crash';
  const events = crash ? `${rep.crashes.length} crash${rep.crashes.length === 1 ? '' : 'es'}` : `${rep.handoffs.length} handoff${rep.handoffs.length === 1 ? '' : 's'}`;
  const out: string[] = [];
  out.push('');
  out.push(`handoff demo --scenario ${rep.scenario}: ${SCENARIO[rep.scenario].title}; the kv example under load, ${events}, http://127.0.0.1:${rep.port}`);
  out.push('');
  out.push(
    kv(
      'load',
      `${rep.load.keepAliveClients} keep-alive + ${rep.load.newConnectionClients} new-connection clients, ` +
        `1 request per ${rep.load.intervalMs} ms each, ${Math.round(rep.load.putRatio * 100)}% PUT, no retries, ${(rep.load.elapsedMs / 1000).toFixed(1)} s` +
        (rep.load.capped ? ' (stopped at the request cap)' : ''),
    ),
  );
  out.push(kv('requests', `${rep.requests}  (${rep.puts} PUT, ${rep.gets} GET; ${rep.checkedReads} GETs checked a value written earlier)`));
  out.push(kv('failures', String(rep.failures)));
  out.push(kv('refused', String(rep.refused)));
  if (rep.resetOnReuse > 0 && !crash) out.push(kv('  resets on reuse', `${rep.resetOnReuse} (a keep-alive connection closed by the server as the request went out)`));
  out.push(kv('latency', lat(rep.latency.all)));
  out.push(kv(crash ? '  during crashes' : '  during handoffs', lat(rep.latency.during)));
  out.push(kv(crash ? '  outside crashes' : '  outside handoffs', lat(rep.latency.outside)));
  out.push(kv('connections', `the ${rep.load.keepAliveClients} keep-alive clients opened ${rep.keepAliveConnections} (${crash ? 'a crash cuts them' : 'the incumbent closes them as it drains'})`));
  out.push('');
  out.push(...(crash ? crashRows(rep) : handoffRows(rep)));
  out.push('');
  out.push(kv('writes', `${rep.acknowledged} PUTs acknowledged over ${rep.writes.keys} keys; read back at the end: ${rep.writes.survived} intact, ${rep.writes.lost} lost`));
  out.push(kv('writes survived', rep.writesSurvived ? 'yes' : 'no'));
  for (const l of rep.writes.examples) out.push(`    ${l.key}: expected ${l.expected.slice(0, 30)}…, got ${l.got.slice(0, 60)}`);
  if (rep.failureNotes.length > 0) {
    out.push('');
    out.push(`  first ${rep.failureNotes.length} of ${rep.failures} failures:`);
    for (const f of rep.failureNotes) {
      out.push(
        `    +${Math.round(f.at)} ms  ${pad(f.client, 5)} ${pad(f.method, 4)} ${pad(f.kind, 13)} after ${fmtMs(f.ms)}, ${f.reusedSocket ? 'reused' : 'new'} connection, ${f.when}: ${f.detail}`,
      );
    }
  }
  if (rep.error) {
    out.push('');
    out.push(`  error: ${rep.error}`);
  }
  out.push('');
  out.push(`  ${rep.verdict}`);
  if (rep.kept) out.push(`  temp dir kept${rep.ok ? ' (--keep)' : ''}: ${rep.tempDir}`);
  out.push(`  supervisor log: ${rep.logFile}${rep.kept ? '' : ' (removed with the temp dir)'}`);
  out.push('');
  return out.join('\n');
}
