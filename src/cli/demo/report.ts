/** The demo's results: what it measured, how it classifies them, and the table it prints. */

import type { HandoffPhase } from '../../supervisor/types.js';
import type { Failure, LoadResult, VerifyResult } from '../../load/generator.js';
import { fmtMs, type Summary } from '../../load/stats.js';
import { placeInTime, splitLatency, type HandoffRun, type LatencySplit } from '../../load/timeline.js';

export interface FailureNote extends Failure {
  /** `handoff 2 (drain)`, or `outside handoffs`. */
  when: string;
}

export interface DemoReport {
  ok: boolean;
  port: number;
  tempDir: string;
  logFile: string;
  /** True when the temp dir was left in place (something failed). */
  kept: boolean;
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
  writes: { keys: number; survived: number; lost: number; readErrors: number; examples: VerifyResult['lost'] };
  writesSurvived: boolean;
  /** The first failures, each placed in time relative to the handoffs. */
  failureNotes: FailureNote[];
  /** Set when the demo could not run to the end. */
  error?: string;
}

export function buildReport(args: {
  port: number;
  tempDir: string;
  logFile: string;
  load: DemoReport['load'];
  result: LoadResult;
  runs: HandoffRun[];
  verify: VerifyResult | null;
  error?: string;
}): DemoReport {
  const { result: r, runs, verify } = args;
  const committed = runs.filter((h) => h.record?.outcome === 'committed').length;
  const writesSurvived = verify !== null && verify.lost.length === 0 && verify.survived === verify.keys;
  const failureNotes = r.failures.slice(0, 20).map((f) => ({ ...f, when: placeInTime(f.at, runs) }));
  const ok = args.error === undefined && r.failures.length === 0 && r.refused === 0 && writesSurvived && committed === runs.length && runs.length > 0;
  return {
    ok,
    port: args.port,
    tempDir: args.tempDir,
    logFile: args.logFile,
    kept: !ok,
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
    latency: splitLatency(r.samples, runs),
    handoffs: runs.map(({ marks: _marks, ...rest }) => rest),
    committed,
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

/** The human table. Lines the test reads: `failures  N`, `refused  N`, `writes survived  yes|no`, one `committed` per handoff. */
export function renderReport(rep: DemoReport): string {
  const L = 20;
  const kv = (k: string, v: string): string => `  ${pad(k, L)}${v}`;
  const out: string[] = [];
  out.push('');
  out.push(`handoff demo: the kv example under load, ${rep.handoffs.length} handoff${rep.handoffs.length === 1 ? '' : 's'}, http://127.0.0.1:${rep.port}`);
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
  if (rep.resetOnReuse > 0) out.push(kv('  resets on reuse', `${rep.resetOnReuse} (a keep-alive connection closed by the server as the request went out)`));
  out.push(kv('latency', lat(rep.latency.all)));
  out.push(kv('  during handoffs', lat(rep.latency.during)));
  out.push(kv('  outside handoffs', lat(rep.latency.outside)));
  out.push(kv('connections', `the ${rep.load.keepAliveClients} keep-alive clients opened ${rep.keepAliveConnections} (the incumbent closes them as it drains)`));
  out.push('');
  const rollback = rep.handoffs.some((h) => h.record?.phases.some((p) => p.phase === 'rollback'));
  const cols = rollback ? [...PHASE_COLUMNS, 'rollback' as const] : PHASE_COLUMNS;
  const rows: string[][] = [['handoff', 'outcome', 'pid', ...cols, 'total', 'serving']];
  for (const h of rep.handoffs) {
    const rec = h.record;
    const ms = (p: HandoffPhase): string => {
      const v = rec?.phases.filter((x) => x.phase === p).reduce((a, x) => a + x.ms, 0);
      return rec?.phases.some((x) => x.phase === p) && v !== undefined ? fmtMs(v) : '-';
    };
    rows.push([
      String(h.n),
      rec ? rec.outcome : 'error',
      rec ? `${rec.incumbent_pid ?? '-'} -> ${rec.successor_pid ?? '-'}` : '-',
      ...cols.map(ms),
      rec ? fmtMs(rec.total_ms) : '-',
      h.servingAfter,
    ]);
  }
  out.push(...grid(rows, '  '));
  for (const h of rep.handoffs) {
    if (h.record?.reason) out.push(`  handoff ${h.n}: ${h.record.reason}`);
    if (h.error) out.push(`  handoff ${h.n}: ${h.error}`);
  }
  out.push('');
  out.push(kv('writes', `${rep.acknowledged} PUTs acknowledged over ${rep.writes.keys} keys; read back after the last handoff: ${rep.writes.survived} intact, ${rep.writes.lost} lost`));
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
  if (rep.ok) out.push(`  PASS: ${rep.committed} handoff${rep.committed === 1 ? '' : 's'} committed under load; no failed request, no refused connection, every acknowledged write survived.`);
  else out.push(`  FAIL: see above. Temp dir kept: ${rep.tempDir}`);
  out.push(`  supervisor log: ${rep.logFile}${rep.kept ? '' : ' (removed with the temp dir)'}`);
  out.push('');
  return out.join('\n');
}
