/**
 * `npm run bench:handoff`: N handoffs of the kv example under a steady load.
 *
 * Measures the handoff's duration (total and per phase, p50 and max), the request latency of
 * requests that overlapped a handoff against those that did not (p50/p99/max), failures and refused
 * connections (the clients never retry), whether every acknowledged write survived, and the
 * supervisor's memory (RSS and V8 heap, after a forced GC) before the first handoff and after the
 * last. S runs in a process of its own (the demo's supervisor host), so its RSS is its own.
 *
 * Prints the figures and writes them to the `handoff` section of bench/RESULTS.md.
 *
 *   npm run bench:handoff [-- --handoffs 10 --gap 1000 --clients 20 --no-write]
 */

import os from 'node:os';
import fs from 'node:fs';
import { SupervisorHost } from '../src/cli/demo/host-client.js';
import type { HostMemory } from '../src/cli/demo/host-protocol.js';
import { builtPaths } from '../src/cli/demo/paths.js';
import { Guard, SHARDS, infoBuild, kvArgs, makeLayout, portOf, sleep, supervisorOptions } from '../src/cli/demo/setup.js';
import { INTERVAL_MS, LoadGenerator, PUT_RATIO, fmtMs, loadOptions, placeInTime, splitLatency, summarize, type HandoffRun, type Summary } from '../src/load/index.js';
import type { HandoffPhase, HandoffRecord } from '../src/supervisor/types.js';
import { NO_WRITE, RUN_FLAGS, parseFlags, type RunArgs } from './args.js';
import { runMain } from './entry.js';
import { writeResults } from './results-md.js';


function parseArgs(argv: string[]): RunArgs {
  return parseFlags<RunArgs>(argv, { handoffs: 10, gapMs: 1000, clients: 20, write: true }, RUN_FLAGS, NO_WRITE, 'options: --handoffs N, --gap MS, --clients N, --no-write');
}

const MiB = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const delta = (b: number): string => `${b >= 0 ? '+' : '-'}${MiB(Math.abs(b))}`;

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const paths = builtPaths();
  const layout = makeLayout('handoff-bench-');
  const host = SupervisorHost.spawn(paths.host, layout.logFile, { exposeGc: true, cwd: layout.tempDir });
  const guard = new Guard(host.exited, 60_000 + args.handoffs * (args.gapMs + 15_000), 'the bench');
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  out(`bench:handoff: ${args.handoffs} handoffs, ${args.gapMs} ms apart, ${args.clients} clients; log ${layout.logFile}`);

  const runs: HandoffRun[] = [];
  const rssSeries: number[] = [];
  let memBefore: HostMemory | undefined;
  let memAfter: HostMemory | undefined;
  let error: string | undefined;
  let load: LoadGenerator | null = null;
  let result: Awaited<ReturnType<LoadGenerator['stop']>> | null = null;
  let verify: Awaited<ReturnType<LoadGenerator['verify']>> | null = null;
  try {
    const status = await guard.run(host.start(supervisorOptions(paths, layout, 0, 'bench-0')));
    const port = portOf(status);
    const lo = loadOptions(port, args.clients, (args.handoffs + 2) * (args.gapMs + 10_000));
    load = new LoadGenerator(lo);
    load.start();
    await guard.run(sleep(Math.max(1000, args.gapMs)));
    memBefore = await guard.run(host.memory(true));
    for (let i = 1; i <= args.handoffs; i++) {
      const run: HandoffRun = { n: i, build: `bench-${i}`, record: null, start: load.now(), end: 0, marks: [], servingAfter: '-' };
      runs.push(run);
      const lg = load;
      run.record = await guard.run(
        host.upgrade({ args: kvArgs(paths, layout, run.build) }, (e) => {
          if (e.phase !== 'done') run.marks.push({ phase: e.phase, at: run.start + e.elapsed_ms });
        }),
      );
      run.end = lg.now();
      run.servingAfter = await infoBuild(port);
      rssSeries.push((await guard.run(host.memory(false))).rss);
      out(`  handoff ${i}: ${run.record.outcome} in ${run.record.total_ms} ms (${run.record.phases.map((p) => `${p.phase} ${p.ms}`).join(', ')}); serving ${run.servingAfter}`);
      await guard.run(sleep(args.gapMs));
    }
    const lg = load;
    load = null;
    result = await guard.bounded(lg.stop());
    verify = await guard.run(lg.verify());
    memAfter = await guard.run(host.memory(true));
    await guard.bounded(host.stop());
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    if (load) result = await guard.bounded(load.stop()).catch(() => null);
  }
  await host.kill();
  guard.clear();

  const records = runs.map((r) => r.record).filter((r): r is HandoffRecord => r !== null);
  const committed = records.filter((r) => r.outcome === 'committed').length;
  const phaseNames: HandoffPhase[] = [];
  for (const r of records) for (const p of r.phases) if (!phaseNames.includes(p.phase)) phaseNames.push(p.phase);
  const phaseStats: Array<[string, Summary]> = phaseNames.map((name) => [name, summarize(records.flatMap((r) => r.phases.filter((p) => p.phase === name).map((p) => p.ms)))]);
  // From the incumbent's PrepareHandoff to the successor's Ready nobody accepts: new connections wait in the kernel backlog.
  const gap = (r: HandoffRecord): number => r.phases.filter((p) => p.phase === 'drain' || p.phase === 'seal' || p.phase === 'begin').reduce((a, p) => a + p.ms, 0);
  phaseStats.push(['drain + seal + begin (accept paused)', summarize(records.map(gap))]);
  phaseStats.push(['total', summarize(records.map((r) => r.total_ms))]);
  const lat = result ? splitLatency(result.samples, runs) : null;
  const failures = result?.failures.length ?? 0;
  const refused = result?.refused ?? 0;
  const survived = verify !== null && verify.lost.length === 0 && verify.survived === verify.keys;
  const ok = error === undefined && committed === args.handoffs && failures === 0 && refused === 0 && survived;

  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown cpu';
  const lines: string[] = [];
  lines.push('## Handoff (`npm run bench:handoff`)');
  lines.push('');
  lines.push(`Machine: ${cpu}, ${os.cpus().length} logical CPUs, ${os.type()} ${os.release()}; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`);
  lines.push('');
  lines.push(
    `${args.handoffs} handoffs of the kv example (${SHARDS} shards, fsync per PUT), ${args.gapMs} ms apart, under a steady load of ` +
      `${lo(args.clients)} (each at most one request per ${INTERVAL_MS} ms, ${Math.round(PUT_RATIO * 100)}% PUT, no retries), all on loopback. ` +
      `S runs in a process of its own; its memory is read after a forced GC.`,
  );
  lines.push('');
  lines.push(`Result: ${committed}/${args.handoffs} committed, ${result?.requests ?? 0} requests, **${failures} failures, ${refused} refused**; ` + `acknowledged writes survived: **${survived ? 'yes' : 'no'}** (${verify?.survived ?? 0}/${verify?.keys ?? 0} keys read back intact).`);
  if (error) lines.push(`\nThe run did not finish: ${error}`);
  lines.push('');
  lines.push('| handoff phase | p50 | max |');
  lines.push('|---|---:|---:|');
  for (const [name, s] of phaseStats) lines.push(`| ${name} | ${fmtMs(s.p50)} | ${fmtMs(s.max)} |`);
  lines.push('');
  if (lat) {
    lines.push('| request latency | requests | p50 | p99 | max |');
    lines.push('|---|---:|---:|---:|---:|');
    const row = (name: string, s: Summary): string => `| ${name} | ${s.count} | ${fmtMs(s.p50)} | ${fmtMs(s.p99)} | ${fmtMs(s.max)} |`;
    lines.push(row('overlapping a handoff', lat.during));
    lines.push(row('outside handoffs', lat.outside));
    lines.push(row('all', lat.all));
    lines.push('');
  }
  if (memBefore && memAfter) {
    const growth = rssSeries.length > 0 ? `; RSS after each handoff (no GC): ${rssSeries.map((b) => (b / 1024 / 1024).toFixed(1)).join(', ')} MiB` : '';
    lines.push('| supervisor memory | before the first handoff | after the last | change |');
    lines.push('|---|---:|---:|---:|');
    lines.push(`| RSS | ${MiB(memBefore.rss)} | ${MiB(memAfter.rss)} | ${delta(memAfter.rss - memBefore.rss)} |`);
    lines.push(`| V8 heap used | ${MiB(memBefore.heapUsed)} | ${MiB(memAfter.heapUsed)} | ${delta(memAfter.heapUsed - memBefore.heapUsed)} |`);
    lines.push('');
    lines.push(
      `Handoff duration is S's own record, from the successor's spawn to the incumbent's exit; the incumbent serves through \`hello\` (the successor starting). ` +
        `From \`drain\` until the successor opens accept (in \`begin\`, before it says Ready) no process accepts: new connections wait in the kernel backlog, which bounds the latency of requests overlapping a handoff. ` +
        `A request "overlaps a handoff" when its lifetime intersects the upgrade call${growth}.`,
    );
  }
  if (result && result.failures.length > 0) {
    lines.push('');
    lines.push('First failures:');
    for (const f of result.failures.slice(0, 10)) lines.push(`- +${Math.round(f.at)} ms ${f.client} ${f.method} ${f.kind} (${f.reusedSocket ? 'reused' : 'new'} connection, ${placeInTime(f.at, runs)}): ${f.detail}`);
  }
  const section = lines.join('\n');
  out('');
  out(section);
  if (args.write) {
    writeResults('handoff', section, out);
  }
  if (ok) fs.rmSync(layout.tempDir, { recursive: true, force: true });
  else out(`\nFAILED; temp dir kept: ${layout.tempDir}`);
  return ok ? 0 : 1;
}

function lo(clients: number): string {
  const o = loadOptions(0, clients, 1);
  return `${o.keepAliveClients} keep-alive + ${o.newConnectionClients} new-connection clients`;
}

runMain('bench:handoff', main);
