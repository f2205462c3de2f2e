/**
 * `npm run stress`: N handoffs of the kv example in a row under continuous load (issue 8, "Stress").
 *
 * Invariants, each checked and reported:
 * - every handoff commits, and the new build answers `GET /info` right after;
 * - 0 failed requests (the clients never retry; see src/load/generator.ts);
 * - 0 lost acknowledged writes: at the end every key is read back and must hold its last
 *   acknowledged value (or a later one whose PUT failed, of which there must be none);
 * - after each handoff, S's open fds and its child count are back to their baseline (taken at rest
 *   before the first handoff); S closes the old incumbent's channel a moment after its exit, so this
 *   is polled (bounded: `SETTLE_MS`) and the time it took is reported;
 * - S's memory (RSS and V8 heap used, both after a forced full GC) grows less than 10 % from
 *   handoff 10 to the last (benchmarks only: `checkMemory`);
 * - after S stops, no process of the run is left.
 *
 * S runs in a process of its own: the demo's supervisor host (src/cli/demo/host.ts, built), which
 * runs the same `Supervisor` class `handoff run` runs, minus the admin socket and sd_notify. Not
 * in-process, because the load generator's sockets and this process's TypeScript loader would be
 * counted as S's fds and memory; not the real CLI, because the host can force a GC and report the
 * heap over its IPC channel (the CLI cannot), and the admin API adds nothing to what is measured
 * here (it has its own tests). S's fds and children are read from /proc/<pid> of the host.
 *
 *   npm run stress [-- --handoffs 100 --max-minutes 20 --gap 250 --clients 20 --no-write]
 *   npm run stress -- --aborts 300 [--fault NAME] [--snapshots DIR]   (memory per aborted handoff: bench/leak.ts)
 *
 * The test (test/stress/stress.test.ts) runs `runStress` with a smaller count.
 */

import fs from 'node:fs';
import os from 'node:os';
import { SupervisorHost } from '../src/cli/demo/host-client.js';
import type { HostMemory } from '../src/cli/demo/host-protocol.js';
import { builtPaths } from '../src/cli/demo/paths.js';
import { Guard, SHARDS, infoBuild, kvArgs, makeLayout, portOf, supervisorOptions } from '../src/cli/demo/setup.js';
import { INTERVAL_MS, LoadGenerator, PUT_RATIO, fmtMs, loadOptions, placeInTime, splitLatency, summarize, type HandoffRun, type LoadResult, type VerifyResult } from '../src/load/index.js';
import { childPids, fdCount } from '../test/lib/proc.js';
import { NO_WRITE, RUN_FLAGS, numberFlag, parseFlags, type RunArgs } from './args.js';
import { isScript, runMain } from './entry.js';
import { writeResults } from './results-md.js';


/** How long S may take to close the old incumbent's channel after the handoff ended. */
const SETTLE_MS = 5_000;
/** The memory bound of the issue: growth from handoff `MEMORY_FROM` to the last, in percent. */
const MEMORY_LIMIT_PCT = 10;
const MEMORY_FROM = 10;

export interface StressOptions {
  handoffs: number;
  /** Pause between the end of one handoff (and its checks) and the start of the next. */
  gapMs: number;
  clients: number;
  /** The whole run is abandoned (and fails) past this. */
  maxMs: number;
  /** Check S's memory growth (benchmarks; the test does not). */
  checkMemory: boolean;
  /** One line per handoff, as it happens. */
  progress?: (line: string) => void;
}

export const STRESS_DEFAULTS: StressOptions = { handoffs: 100, gapMs: 250, clients: 20, maxMs: 20 * 60_000, checkMemory: true };

export interface ResourceSample {
  /** Handoff number (0: the baseline at rest). */
  n: number;
  fds: number;
  children: number;
  /** ms after the handoff's end until fds and children were back at baseline (0: at once). */
  settleMs: number;
  /** After a forced GC. */
  rss: number;
  heapUsed: number;
}

export interface StressResult {
  ok: boolean;
  /** What broke, one line each (empty when ok). */
  violations: string[];
  handoffs: number;
  committed: number;
  runs: HandoffRun[];
  load: LoadResult | null;
  verify: VerifyResult | null;
  baseline: ResourceSample | null;
  samples: ResourceSample[];
  /** Growth from handoff MEMORY_FROM (or the first) to the last, percent; NaN when not measured. */
  rssGrowthPct: number;
  heapGrowthPct: number;
  memoryFrom: number;
  orphans: number[];
  elapsedMs: number;
  tempDir: string;
  logFile: string;
  kept: boolean;
  loadDescription: string;
}

/** Live processes whose command line mentions `marker` (the run's temp dir): what must be gone at the end. */
export function processesMentioning(marker: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d) || Number(d) === process.pid) continue;
    try {
      if (fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').includes(marker)) out.push(Number(d));
    } catch {
      // Gone while we looked.
    }
  }
  return out;
}

const pct = (from: number, to: number): number => ((to - from) / from) * 100;

export async function runStress(o: StressOptions): Promise<StressResult> {
  const progress = o.progress ?? ((): void => undefined);
  const paths = builtPaths();
  const layout = makeLayout('handoff-stress-');
  const host = SupervisorHost.spawn(paths.host, layout.logFile, { exposeGc: true, cwd: layout.tempDir });
  const guard = new Guard(host.exited, o.maxMs, `the stress run (${o.handoffs} handoffs)`);
  const t0 = performance.now();
  const violations: string[] = [];
  const runs: HandoffRun[] = [];
  const samples: ResourceSample[] = [];
  let baseline: ResourceSample | null = null;
  let load: LoadGenerator | null = null;
  let loadResult: LoadResult | null = null;
  let verify: VerifyResult | null = null;
  const lo = loadOptions(0, o.clients, o.maxMs);
  const loadDescription = `${lo.keepAliveClients} keep-alive + ${lo.newConnectionClients} new-connection clients (each at most one request per ${INTERVAL_MS} ms, ${Math.round(PUT_RATIO * 100)}% PUT, no retries)`;

  const resources = async (n: number, settleMs: number): Promise<ResourceSample> => {
    const m: HostMemory = await guard.run(host.memory(true));
    return { n, fds: fdCount(host.pid), children: childPids(host.pid).length, settleMs, rss: m.rss, heapUsed: m.heapUsed };
  };
  /** Polls until S's fds and children are back at baseline, or SETTLE_MS passed. */
  const settle = async (n: number): Promise<ResourceSample> => {
    const b = baseline!;
    const start = performance.now();
    for (;;) {
      const fds = fdCount(host.pid);
      const children = childPids(host.pid).length;
      const waited = performance.now() - start;
      if ((fds === b.fds && children === b.children) || waited > SETTLE_MS) {
        const s = await resources(n, Math.round(waited));
        // What the poll saw when it gave up (the GC does not change fds or children).
        return { ...s, fds, children };
      }
      await guard.run(new Promise((r) => setTimeout(r, 10)));
    }
  };

  try {
    const status = await guard.run(host.start(supervisorOptions(paths, layout, 0, 'stress-0')));
    const port = portOf(status);
    load = new LoadGenerator({ ...lo, port });
    load.start();
    // The baseline at rest: S serving its first incumbent, the load running (S holds no client connection).
    baseline = await resources(0, 0);
    progress(`stress: ${o.handoffs} handoffs, S pid ${host.pid}: ${baseline.fds} fds, ${baseline.children} child, heap ${(baseline.heapUsed / 1024).toFixed(0)} KiB; load ${loadDescription}`);
    for (let i = 1; i <= o.handoffs; i++) {
      const lg = load;
      const run: HandoffRun = { n: i, build: `stress-${i}`, record: null, start: lg.now(), end: 0, marks: [], servingAfter: '-' };
      runs.push(run);
      try {
        run.record = await guard.run(
          host.upgrade({ args: kvArgs(paths, layout, run.build) }, (e) => {
            if (e.phase !== 'done') run.marks.push({ phase: e.phase, at: run.start + e.elapsed_ms });
          }),
        );
      } catch (err) {
        run.error = err instanceof Error ? err.message : String(err);
      }
      run.end = lg.now();
      run.servingAfter = await guard.run(infoBuild(port)).catch((err: unknown) => `error: ${err instanceof Error ? err.message : String(err)}`);
      const rec = run.record;
      if (!rec) violations.push(`handoff ${i}: ${run.error ?? 'no record'}`);
      else if (rec.outcome !== 'committed') violations.push(`handoff ${i}: ${rec.outcome} (${rec.reason ?? 'no reason'})`);
      if (rec?.outcome === 'committed' && run.servingAfter !== run.build) violations.push(`handoff ${i}: serving ${run.servingAfter} after committing ${run.build}`);
      const s = await settle(i);
      samples.push(s);
      if (s.fds !== baseline.fds) violations.push(`handoff ${i}: S has ${s.fds} open fds ${SETTLE_MS} ms after the handoff (baseline ${baseline.fds})`);
      if (s.children !== baseline.children) violations.push(`handoff ${i}: S has ${s.children} children ${SETTLE_MS} ms after the handoff (baseline ${baseline.children})`);
      progress(
        `  ${i}: ${rec ? `${rec.outcome} in ${rec.total_ms} ms` : `error: ${run.error ?? '?'}`}; serving ${run.servingAfter}; ` +
          `fds ${s.fds}, children ${s.children}${s.settleMs > 0 ? ` (settled in ${s.settleMs} ms)` : ''}; RSS ${(s.rss / 1048576).toFixed(1)} MiB, heap ${(s.heapUsed / 1024).toFixed(0)} KiB`,
      );
      // Stop at the first broken handoff: the rest would only pile up consequences.
      if (violations.length > 0) break;
      if (o.gapMs > 0) await guard.run(new Promise((r) => setTimeout(r, o.gapMs)));
    }
    const lg = load;
    load = null;
    loadResult = await guard.bounded(lg.stop());
    progress(`load stopped: ${loadResult.requests} requests, ${loadResult.failures.length} failed; reading back every written key`);
    verify = await guard.run(lg.verify());
    await guard.bounded(host.stop());
  } catch (err) {
    violations.push(err instanceof Error ? err.message : String(err));
    if (load) loadResult = await guard.bounded(load.stop()).catch(() => null);
  }
  await host.kill();
  guard.clear();

  if (loadResult) {
    if (loadResult.failures.length > 0) {
      const f = loadResult.failures[0]!;
      violations.push(`${loadResult.failures.length} failed requests; first: +${Math.round(f.at)} ms ${f.client} ${f.method} ${f.kind} (${placeInTime(f.at, runs)}): ${f.detail}`);
    }
    if (loadResult.capped) violations.push('the load hit its request cap before the end');
  } else violations.push('no load result');
  if (verify) {
    if (verify.lost.length > 0) {
      const l = verify.lost[0]!;
      violations.push(`${verify.lost.length} acknowledged writes lost; first: ${l.key} expected ${l.expected.slice(0, 30)}…, got ${l.got.slice(0, 60)}`);
    }
    if (verify.survived !== verify.keys) violations.push(`${verify.keys - verify.survived} of ${verify.keys} acknowledged keys did not read back intact`);
    if (verify.errors > 0) violations.push(`${verify.errors} read-back errors`);
  } else violations.push('acknowledged writes were not read back');
  const orphans = processesMentioning(layout.dataDir);
  if (orphans.length > 0) violations.push(`processes left after S stopped: ${orphans.join(', ')}`);

  // Memory from handoff 10 (the JIT has compiled the handoff's paths by then) to the last.
  const memoryFrom = Math.min(MEMORY_FROM, Math.max(1, Math.floor(samples.length / 2)));
  const from = samples.find((s) => s.n === memoryFrom);
  const to = samples[samples.length - 1];
  const rssGrowthPct = from && to && to.n > from.n ? pct(from.rss, to.rss) : Number.NaN;
  const heapGrowthPct = from && to && to.n > from.n ? pct(from.heapUsed, to.heapUsed) : Number.NaN;
  if (o.checkMemory && samples.length === o.handoffs) {
    if (!(rssGrowthPct < MEMORY_LIMIT_PCT)) violations.push(`S's RSS grew ${rssGrowthPct.toFixed(1)} % from handoff ${memoryFrom} to ${to?.n ?? '?'} (limit ${MEMORY_LIMIT_PCT} %)`);
    if (!(heapGrowthPct < MEMORY_LIMIT_PCT)) violations.push(`S's heap used grew ${heapGrowthPct.toFixed(1)} % from handoff ${memoryFrom} to ${to?.n ?? '?'} (limit ${MEMORY_LIMIT_PCT} %)`);
  }
  const committed = runs.filter((r) => r.record?.outcome === 'committed').length;
  if (committed !== o.handoffs && !violations.some((v) => v.startsWith('handoff'))) violations.push(`${committed}/${o.handoffs} handoffs committed`);
  const ok = violations.length === 0;
  if (ok) fs.rmSync(layout.tempDir, { recursive: true, force: true });
  return {
    ok,
    violations,
    handoffs: o.handoffs,
    committed,
    runs,
    load: loadResult,
    verify,
    baseline,
    samples,
    rssGrowthPct,
    heapGrowthPct,
    memoryFrom,
    orphans,
    elapsedMs: performance.now() - t0,
    tempDir: layout.tempDir,
    logFile: layout.logFile,
    kept: !ok,
    loadDescription,
  };
}

const MiB = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const KiB = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
const signed = (p: number): string => (Number.isFinite(p) ? `${p >= 0 ? '+' : ''}${p.toFixed(1)} %` : '-');

/** The figures as a Markdown section (printed, and written to bench/RESULTS.md). */
export function renderStress(r: StressResult, o: StressOptions): string {
  const lines: string[] = [];
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown cpu';
  const records = r.runs.map((x) => x.record).filter((x) => x !== null);
  const total = summarize(records.map((x) => x.total_ms));
  const lat = r.load ? splitLatency(r.load.samples, r.runs) : null;
  const b = r.baseline;
  const maxOf = (f: (s: ResourceSample) => number): number => (r.samples.length > 0 ? Math.max(...r.samples.map(f)) : Number.NaN);
  const from = r.samples.find((s) => s.n === r.memoryFrom);
  const last = r.samples[r.samples.length - 1];
  lines.push('## Stress (`npm run stress`)');
  lines.push('');
  lines.push(`Machine: ${cpu}, ${os.cpus().length} logical CPUs, ${os.type()} ${os.release()}; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}; load average ${os.loadavg()[0]?.toFixed(1) ?? '?'} at the end.`);
  lines.push('');
  lines.push(
    `${o.handoffs} handoffs of the kv example (${SHARDS} shards, fsync per PUT) in a row, ${o.gapMs} ms apart, under a continuous load of ${r.loadDescription}, on loopback, ` +
      `in ${(r.elapsedMs / 1000).toFixed(0)} s. S runs in a process of its own (the demo's supervisor host: the \`Supervisor\` of \`handoff run\`, built); ` +
      `its fds and children are read from /proc after each handoff, its memory after a forced GC.`,
  );
  lines.push('');
  lines.push(`Result: **${r.ok ? 'PASS' : 'FAIL'}**.`);
  lines.push('');
  lines.push('| invariant | figure |');
  lines.push('|---|---:|');
  lines.push(`| handoffs committed | ${r.committed}/${r.handoffs} |`);
  lines.push(`| requests (PUT / GET) | ${r.load?.requests ?? 0} (${r.load?.puts ?? 0} / ${r.load?.gets ?? 0}) |`);
  lines.push(`| failed requests | **${r.load?.failures.length ?? '-'}** (refused ${r.load?.refused ?? '-'}, reset on reuse ${r.load?.resetOnReuse ?? '-'}) |`);
  lines.push(`| acknowledged PUTs | ${r.load?.acknowledged ?? 0} |`);
  lines.push(`| keys read back at the end (intact / acknowledged) | ${r.verify?.survived ?? 0} / ${r.verify?.keys ?? 0} |`);
  lines.push(`| lost acknowledged writes | **${r.verify?.lost.length ?? '-'}** |`);
  lines.push(`| S's open fds: baseline / max after a handoff | ${b?.fds ?? '-'} / ${maxOf((s) => s.fds)} |`);
  lines.push(`| S's children: baseline / max after a handoff | ${b?.children ?? '-'} / ${maxOf((s) => s.children)} |`);
  lines.push(`| back to baseline after a handoff within (max) | ${fmtMs(maxOf((s) => s.settleMs))} |`);
  lines.push(`| processes left after S stopped | ${r.orphans.length} |`);
  lines.push('');
  if (from && last) {
    lines.push(`| S's memory (after GC) | at rest | after handoff ${from.n} | after handoff ${last.n} | growth ${from.n} → ${last.n} |`);
    lines.push('|---|---:|---:|---:|---:|');
    lines.push(`| RSS | ${b ? MiB(b.rss) : '-'} | ${MiB(from.rss)} | ${MiB(last.rss)} | ${signed(r.rssGrowthPct)} |`);
    lines.push(`| V8 heap used | ${b ? KiB(b.heapUsed) : '-'} | ${KiB(from.heapUsed)} | ${KiB(last.heapUsed)} | ${signed(r.heapGrowthPct)} |`);
    lines.push('');
  }
  lines.push('| | p50 | p99 | max |');
  lines.push('|---|---:|---:|---:|');
  lines.push(`| handoff duration | ${fmtMs(total.p50)} | ${fmtMs(total.p99)} | ${fmtMs(total.max)} |`);
  if (lat) {
    lines.push(`| request latency, overlapping a handoff (${lat.during.count}) | ${fmtMs(lat.during.p50)} | ${fmtMs(lat.during.p99)} | ${fmtMs(lat.during.max)} |`);
    lines.push(`| request latency, outside handoffs (${lat.outside.count}) | ${fmtMs(lat.outside.p50)} | ${fmtMs(lat.outside.p99)} | ${fmtMs(lat.outside.max)} |`);
  }
  const every = Math.max(1, Math.round(r.samples.length / 10));
  const series = r.samples.filter((s, i) => s.n === 1 || (i + 1) % every === 0 || i === r.samples.length - 1);
  if (series.length > 0) {
    lines.push('');
    lines.push(`RSS / heap used after handoff ${series.map((s) => `${s.n}: ${(s.rss / 1048576).toFixed(1)} MiB / ${KiB(s.heapUsed)}`).join(', ')}.`);
  }
  if (r.violations.length > 0) {
    lines.push('');
    lines.push('Violations:');
    for (const v of r.violations.slice(0, 20)) lines.push(`- ${v}`);
    lines.push(`\nTemp dir kept: ${r.tempDir} (supervisor log: ${r.logFile}).`);
  }
  return lines.join('\n');
}

type StressArgs = StressOptions & RunArgs;

function parseArgs(argv: string[]): StressArgs {
  const flags = { ...RUN_FLAGS, '--max-minutes': numberFlag<StressArgs>((n) => n > 0, (a, n) => (a.maxMs = n * 60_000)) };
  return parseFlags<StressArgs>(argv, { ...STRESS_DEFAULTS, write: true }, flags, NO_WRITE, 'options: --handoffs N, --max-minutes M, --gap MS, --clients N, --no-write');
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  // The memory-per-handoff mode (issue 8, "Memory"): bench/leak.ts.
  if (argv.includes('--aborts') || argv.includes('--commit')) return (await import('./leak.js')).leakMain(argv);
  const o = parseArgs(argv);
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  const r = await runStress({ ...o, progress: out });
  const section = renderStress(r, o);
  out('');
  out(section);
  if (o.write) {
    writeResults('stress', section, out);
  }
  return r.ok ? 0 : 1;
}

// Run only as a script (`npm run stress`); the test imports runStress.
if (isScript(import.meta.url)) runMain('stress', main);
