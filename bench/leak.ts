/**
 * `npm run stress -- --aborts N`: does S's memory grow with aborted handoffs? (issue 8, "Memory")
 *
 * Runs N handoffs of the kv example in a row, each successor started with a `--fault` that makes S
 * abort the handoff (default `unhealthy`: N says Ready with `healthz_ok: false`, S rolls back after
 * the seal), or with `--commit` handoffs that commit, for comparison. No load: the subject is S's
 * own bookkeeping per handoff. S runs in a process of its own (the demo's supervisor host, built
 * from dist/, with `--expose-gc`), so that its heap and RSS are S's alone, not this bench's or its
 * TypeScript loader's. Every `--every` handoffs it reads S's memory after a forced full GC.
 *
 * It prints the heap used and RSS series, and the growth per handoff from the end of the warm-up
 * (`--warmup`, default 50: the JIT is still compiling the handoff's code paths before that) to the
 * end, as the least-squares slope over the samples. With `--snapshots DIR`, S writes a V8 heap
 * snapshot at the end of the warm-up and at the end (SIGUSR2, `--heapsnapshot-signal`); compare
 * them with `node scripts/heap-diff.mjs A B` (objects allocated in between and still alive, and
 * their retainers).
 *
 *   npm run stress -- --aborts 300 [--fault unhealthy|open-fail|abort-on-begin|crash-before-hello|bad-revisions|crash-on-begin]
 *   npm run stress -- --commit 300          # committed handoffs, for comparison
 *   npm run stress -- --aborts 300 --snapshots /tmp/snaps --no-write
 *   npm run stress -- --aborts 300 --node-flag --jitless --no-write   # without the JIT's compiled code
 *   (or directly: node --import ./bench/register.mjs bench/leak.ts --aborts 300)
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SupervisorHost } from '../src/cli/demo/host-client.js';
import type { HostMemory } from '../src/cli/demo/host-protocol.js';
import { builtPaths } from '../src/cli/demo/paths.js';
import { Guard, kvArgs, makeLayout, portOf, supervisorOptions } from '../src/cli/demo/setup.js';
import { NO_WRITE, countFlag, numberFlag, parseFlags, type ApplyValue } from './args.js';
import { isScript, runMain } from './entry.js';
import { writeResults } from './results-md.js';

const FAULTS = ['unhealthy', 'open-fail', 'abort-on-begin', 'crash-before-hello', 'bad-revisions', 'crash-on-begin'] as const;

interface Args {
  count: number;
  /** undefined: committed handoffs. */
  fault: string | undefined;
  warmup: number;
  every: number;
  snapshots: string | undefined;
  write: boolean;
  /** Wall-clock bound of the whole run. */
  maxMs: number;
  /** Extra Node flags for S's process (`--node-flag --jitless`: is the growth compiled code?). */
  nodeFlags: string[];
}

const LEAK_FLAGS: Readonly<Record<string, ApplyValue<Args>>> = {
  '--aborts': countFlag(1, (a, n) => (a.count = n)),
  '--commit': countFlag(1, (a, n) => {
    a.count = n;
    a.fault = undefined;
  }),
  '--fault': (a, v) => (FAULTS as readonly string[]).includes(v) && ((a.fault = v), true),
  '--warmup': countFlag(0, (a, n) => (a.warmup = n)),
  '--every': countFlag(1, (a, n) => (a.every = n)),
  '--snapshots': (a, v) => ((a.snapshots = path.resolve(v)), true),
  '--max-minutes': numberFlag((n) => n > 0, (a, n) => (a.maxMs = n * 60_000)),
  '--node-flag': (a, v) => v.startsWith('--') && (a.nodeFlags.push(v), true),
};

function parseArgs(argv: string[]): Args {
  const defaults: Args = { count: 300, fault: 'unhealthy', warmup: 50, every: 25, snapshots: undefined, write: true, maxMs: 30 * 60_000, nodeFlags: [] };
  const a = parseFlags(argv, defaults, LEAK_FLAGS, NO_WRITE, `faults: ${FAULTS.join(', ')}`);
  if (a.warmup >= a.count) throw new Error(`--warmup ${a.warmup} must be below the handoff count ${a.count}`);
  return a;
}

interface Point {
  n: number;
  heapUsed: number;
  rss: number;
  external: number;
}

/** Least-squares slope of y over x (bytes per handoff). */
function slope(points: ReadonlyArray<{ x: number; y: number }>): number {
  const n = points.length;
  if (n < 2) return Number.NaN;
  const mx = points.reduce((s, p) => s + p.x, 0) / n;
  const my = points.reduce((s, p) => s + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? Number.NaN : num / den;
}

const KiB = (b: number): string => `${(b / 1024).toFixed(0)} KiB`;
const MiB = (b: number): string => `${(b / 1024 / 1024).toFixed(1)} MiB`;
const perHandoff = (b: number): string => (Number.isFinite(b) ? `${b >= 0 ? '+' : ''}${Math.round(b)} B` : '-');

/** Asks the host for a heap snapshot (SIGUSR2) and waits until it is written; returns its path. */
async function snapshot(host: SupervisorHost, dir: string, guard: Guard, label: string): Promise<string> {
  const before = new Set(fs.readdirSync(dir));
  await guard.run(host.memory(true));
  process.kill(host.pid, 'SIGUSR2');
  // The host writes the file synchronously on its main thread: once the file exists, an IPC
  // round trip can only complete after the write has finished.
  let file: string | undefined;
  while (file === undefined) {
    file = fs.readdirSync(dir).find((f) => !before.has(f) && f.endsWith('.heapsnapshot'));
    if (file === undefined) await guard.run(new Promise((r) => setTimeout(r, 50)));
  }
  await guard.run(host.status());
  const named = path.join(dir, `s-${label}.heapsnapshot`);
  fs.renameSync(path.join(dir, file), named);
  return named;
}

/** The leak bench's command line (`--aborts`, `--commit`, …); resolves with the exit code. */
export async function leakMain(argv: string[]): Promise<number> {
  const args = parseArgs(argv);
  const out = (s: string): boolean => process.stdout.write(`${s}\n`);
  const paths = builtPaths();
  const layout = makeLayout('handoff-leak-');
  if (args.snapshots) fs.mkdirSync(args.snapshots, { recursive: true });
  const execArgv = [...args.nodeFlags, ...(args.snapshots ? ['--heapsnapshot-signal=SIGUSR2'] : [])];
  const host = SupervisorHost.spawn(paths.host, layout.logFile, { exposeGc: true, cwd: args.snapshots ?? layout.tempDir, execArgv });
  const guard = new Guard(host.exited, args.maxMs, 'the leak bench');
  const kind = `${args.fault === undefined ? 'committed' : `aborted (successor \`--fault ${args.fault}\`)`}${args.nodeFlags.length > 0 ? `, S run with ${args.nodeFlags.join(' ')},` : ''}`;
  out(`leak: ${args.count} ${kind} handoffs, S's memory after a forced GC every ${args.every}; log ${layout.logFile}`);

  const points: Point[] = [];
  const reasons = new Map<string, number>();
  const snaps: string[] = [];
  let error: string | undefined;
  let done = 0;
  const t0 = performance.now();
  try {
    // A heap snapshot stops S's event loop for seconds: long heartbeat timeouts keep that from
    // looking like a hung incumbent (or a lost supervisor, to the incumbent).
    const opts = { ...supervisorOptions(paths, layout, 0, 'leak-0'), heartbeatTimeoutMs: args.snapshots ? 120_000 : 5_000 };
    const status = await guard.run(host.start(opts));
    portOf(status);
    const sample = async (n: number): Promise<void> => {
      const m: HostMemory = await guard.run(host.memory(true));
      points.push({ n, heapUsed: m.heapUsed, rss: m.rss, external: m.external });
    };
    await sample(0);
    for (let i = 1; i <= args.count; i++) {
      const fault = args.fault === undefined ? [] : ['--fault', args.fault];
      const rec = await guard.run(host.upgrade({ args: [...kvArgs(paths, layout, `leak-${i}`), ...fault] }));
      const want = args.fault === undefined ? 'committed' : 'aborted';
      if (rec.outcome !== want) throw new Error(`handoff ${i}: ${rec.outcome} (${rec.reason ?? 'no reason'}), expected ${want}`);
      const key = rec.reason_kind ?? rec.outcome;
      reasons.set(key, (reasons.get(key) ?? 0) + 1);
      // A handoff ends when S has the record; the incumbent it kept must be serving before the next.
      for (let tries = 0; (await guard.run(host.status())).state !== 'serving'; tries++) {
        if (tries > 400) throw new Error(`S not serving after handoff ${i}`);
        await guard.run(new Promise((r) => setTimeout(r, 25)));
      }
      done = i;
      if (i % args.every === 0 || i === args.warmup || i === args.count) {
        await sample(i);
        const p = points[points.length - 1]!;
        out(`  ${i}: heap used ${KiB(p.heapUsed)}, RSS ${MiB(p.rss)}`);
      }
      if (args.snapshots && (i === args.warmup || i === args.count)) snaps.push(await snapshot(host, args.snapshots, guard, String(i)));
    }
    await guard.bounded(host.stop());
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
  }
  await host.kill();
  guard.clear();
  const elapsed = performance.now() - t0;

  const after = points.filter((p) => p.n >= args.warmup);
  const heapSlope = slope(after.map((p) => ({ x: p.n, y: p.heapUsed })));
  const rssSlope = slope(after.map((p) => ({ x: p.n, y: p.rss })));
  const first = after[0];
  const last = after[after.length - 1];
  const cpu = os.cpus()[0]?.model.trim() ?? 'unknown cpu';
  const lines: string[] = [];
  lines.push(`## Memory per handoff (\`npm run stress -- ${args.fault === undefined ? '--commit' : '--aborts'} N\`)`);
  lines.push('');
  lines.push(`Machine: ${cpu}, ${os.cpus().length} logical CPUs; Node ${process.version}; ${new Date().toISOString().slice(0, 10)}.`);
  lines.push('');
  lines.push(
    `${done}/${args.count} ${kind} handoffs of the kv example in a row, no load, in ${(elapsed / 1000).toFixed(0)} s` +
      ` (outcomes: ${[...reasons.entries()].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}). S runs in a process of its own (the demo's supervisor host, from dist/); ` +
      `its memory is read after a forced full GC every ${args.every} handoffs. Growth per handoff is the least-squares slope from handoff ${args.warmup} (after the JIT's warm-up) to the last.`,
  );
  if (error) lines.push(`\nThe run did not finish: ${error}`);
  lines.push('');
  lines.push(`| S's memory | after ${first?.n ?? '-'} | after ${last?.n ?? '-'} | growth per handoff |`);
  lines.push('|---|---:|---:|---:|');
  if (first && last) {
    lines.push(`| V8 heap used | ${KiB(first.heapUsed)} | ${KiB(last.heapUsed)} | ${perHandoff(heapSlope)} |`);
    lines.push(`| RSS | ${MiB(first.rss)} | ${MiB(last.rss)} | ${perHandoff(rssSlope)} |`);
  }
  lines.push('');
  lines.push(`Heap used (KiB) after handoff ${points.map((p) => `${p.n}: ${Math.round(p.heapUsed / 1024)}`).join(', ')}.`);
  lines.push(`RSS (MiB) after handoff ${points.map((p) => `${p.n}: ${(p.rss / 1024 / 1024).toFixed(1)}`).join(', ')}.`);
  if (snaps.length > 0) lines.push(`\nHeap snapshots: ${snaps.join(', ')} (\`node scripts/heap-diff.mjs ${snaps.join(' ')}\`).`);
  const section = lines.join('\n');
  out('');
  out(section);
  const ok = error === undefined;
  if (args.write && ok) {
    // One section per kind of run: aborted, committed, and either with Node flags for S (--jitless).
    const flags = args.nodeFlags.map((f) => f.replace(/^--/, '')).join('-');
    const name = `${args.fault === undefined ? 'leak-commit' : 'leak'}${flags ? `-${flags}` : ''}`;
    const title = `## Memory per ${args.fault === undefined ? 'committed' : 'aborted'} handoff${flags ? ` (S with ${args.nodeFlags.join(' ')})` : ''}`;
    writeResults(name, section.replace('## Memory per handoff', title), out);
  }
  if (ok) fs.rmSync(layout.tempDir, { recursive: true, force: true });
  else out(`\nFAILED; temp dir kept: ${layout.tempDir}`);
  return ok ? 0 : 1;
}

if (isScript(import.meta.url)) runMain('leak', () => leakMain(process.argv.slice(2)));
