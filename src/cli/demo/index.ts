/**
 * `handoff demo`: the kv example under a real supervisor and a real load, put through one of the
 * scenarios (scenarios.ts), with a results table.
 *
 * Needs nothing but the install (and its build): a temp dir holds the data dir, the state dir, the
 * lock and the log. A supervisor host process (host.ts) runs a Supervisor on a loopback port with
 * the kv example; paced clients put it under a PUT/GET load (src/load/); the scenario's events run
 * one after the other while the load runs (`upgrade`: handoffs to new builds; `unhealthy`: handoffs
 * to a build that reports itself unhealthy, rolled back; `crash`: the incumbent killed and cold-
 * started); then the load stops, every acknowledged write is read back, the supervisor stops, and
 * the table is printed. Exit 0 only when the run is what its scenario promises (verdict.ts).
 *
 * The temp dir is removed unless `keep` is set or the run failed (then it is kept, and named, for
 * its log). Ctrl-C or SIGTERM stops everything at once: the load, the supervisor, its services,
 * and the temp dir (unless `keep`); the exit code is then 130.
 */

import fs from 'node:fs';
import { INTERVAL_MS, LoadGenerator, PUT_RATIO, loadOptions, type HandoffRun, type LoadOptions, type LoadResult, type VerifyResult } from '../../load/index.js';
import { runCrash, type CrashRun } from './crash.js';
import { SupervisorHost } from './host-client.js';
import { builtPaths, type BuiltPaths } from './paths.js';
import { processesMentioning, waitGone } from './procs.js';
import { buildReport, renderReport, type DemoReport } from './report.js';
import { FIRST_BUILD, SCENARIO, type ScenarioName } from './scenarios.js';
import { Guard, Interrupted, infoBuild, kvArgs, makeLayout, portOf, sleep, supervisorOptions, type Layout } from './setup.js';

export interface DemoOptions {
  /** Default `upgrade`. */
  scenario?: ScenarioName;
  /** The loopback port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Events to run, one after the other (handoffs, or crashes): default per scenario. */
  handoffs?: number;
  /** Print the report as JSON instead of the table. */
  json?: boolean;
  /** Concurrent clients (default 20): four fifths keep-alive, one fifth a new connection per request. */
  clients?: number;
  /** How long the load runs, apart from the events themselves (default 6000 ms). */
  durationMs?: number;
  /** Keep the temp dir (data, state, log) even after a clean run. */
  keep?: boolean;
}

export const DEMO_DEFAULTS = { scenario: 'upgrade', port: 0, clients: 20, durationMs: 6_000 } as const;

/** The whole demo, however slow the machine: after this it gives up and says so. */
const WATCHDOG_MS = 120_000;

export const EXIT_INTERRUPTED = 130;

/** Runs the demo and prints its table (or JSON) to stdout; resolves with the exit code. */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const ac = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => ac.abort(sig);
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const rep = await demo(
      opts,
      (line) => {
        if (!opts.json) process.stdout.write(`${line}\n`);
      },
      {},
      ac.signal,
    );
    if (rep.interrupted) {
      const line = `handoff demo: interrupted (${String(ac.signal.reason)}): load, supervisor and services stopped; ${rep.kept ? `temp dir kept: ${rep.tempDir}` : 'temp dir removed'}\n`;
      (opts.json ? process.stderr : process.stdout).write(line);
      return EXIT_INTERRUPTED;
    }
    process.stdout.write(opts.json ? `${JSON.stringify(rep, null, 2)}\n` : renderReport(rep));
    return rep.ok ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

/** For tests: run the host from another file (its TypeScript source) with other Node flags. */
export interface DemoInternals {
  hostPath?: string;
  hostExecArgv?: string[];
}

/** What a run collects, filled in as it goes (so that an interruption still reports what it saw). */
interface Run {
  paths: BuiltPaths;
  layout: Layout;
  host: SupervisorHost;
  guard: Guard;
  port: number;
  handoffs: HandoffRun[];
  crashes: CrashRun[];
  load: LoadGenerator | null;
  lo: LoadOptions | null;
  result: LoadResult | null;
  verify: VerifyResult | null;
}

/** The demo itself, without printing the result; `progress` gets one line per step; `signal` interrupts it. */
export async function demo(opts: DemoOptions, progress: (line: string) => void = () => undefined, internals: DemoInternals = {}, signal?: AbortSignal): Promise<DemoReport> {
  const scenario = opts.scenario ?? DEMO_DEFAULTS.scenario;
  const paths = builtPaths();
  const layout = makeLayout('handoff-demo-');
  progress(`handoff demo --scenario ${scenario}: temp dir ${layout.tempDir}, supervisor log ${layout.logFile}`);
  const host = SupervisorHost.spawn(internals.hostPath ?? paths.host, layout.logFile, { cwd: layout.tempDir, ...(internals.hostExecArgv ? { execArgv: internals.hostExecArgv } : {}) });
  const run: Run = {
    paths,
    layout,
    host,
    guard: new Guard(host.exited, WATCHDOG_MS, 'the demo', signal),
    port: opts.port ?? DEMO_DEFAULTS.port,
    handoffs: [],
    crashes: [],
    load: null,
    lo: null,
    result: null,
    verify: null,
  };
  let error: string | undefined;
  let interrupted = false;
  try {
    await steps(run, opts, scenario, progress);
  } catch (err) {
    interrupted = err instanceof Interrupted;
    error = err instanceof Error ? err.message : String(err);
    if (run.load) run.result = await run.guard.bounded(run.load.stop()).catch(() => null);
  }

  // Stop S: its incumbent drains and exits. A host that did not stop (or an interrupted run's) is killed, and its services.
  if (error === undefined) {
    try {
      await run.guard.interruptible(host.stop());
    } catch (err) {
      interrupted = err instanceof Interrupted;
      error = `stopping the supervisor: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  await host.kill();
  run.guard.clear();
  // Only if the host itself had to be killed can a service outlive it: none may outlive the demo.
  for (const pid of processesMentioning(layout.tempDir)) process.kill(pid, 'SIGKILL');
  await waitGone(processesMentioning(layout.tempDir), 3_000);

  const rep = buildReport({
    scenario,
    port: run.port,
    tempDir: layout.tempDir,
    logFile: layout.logFile,
    load: {
      keepAliveClients: run.lo?.keepAliveClients ?? 0,
      newConnectionClients: run.lo?.newConnectionClients ?? 0,
      intervalMs: INTERVAL_MS,
      putRatio: PUT_RATIO,
      elapsedMs: run.result?.elapsedMs ?? 0,
      capped: run.result?.capped ?? false,
    },
    result: run.result ?? emptyResult(),
    runs: run.handoffs,
    crashes: run.crashes,
    verify: run.verify,
    keep: opts.keep ?? false,
    interrupted,
    ...(error !== undefined && !interrupted ? { error } : {}),
  });
  if (!rep.kept) fs.rmSync(layout.tempDir, { recursive: true, force: true });
  return rep;
}

/** Start, load, the scenario's events, stop the load, read every write back. */
async function steps(run: Run, opts: DemoOptions, scenario: ScenarioName, progress: (line: string) => void): Promise<void> {
  const { host, guard, paths, layout } = run;
  const sc = SCENARIO[scenario];
  const count = Math.max(1, Math.floor(opts.handoffs ?? sc.defaultCount));
  const durationMs = Math.max(500, opts.durationMs ?? DEMO_DEFAULTS.durationMs);
  const status = await guard.run(host.start(supervisorOptions(paths, layout, run.port, FIRST_BUILD)));
  run.port = portOf(status);
  const serving = await guard.run(infoBuild(run.port));
  progress(`supervisor pid ${host.pid} serving ${serving} (kv pid ${status.incumbent?.pid ?? '?'}) on http://127.0.0.1:${run.port}`);

  run.lo = loadOptions(run.port, opts.clients ?? DEMO_DEFAULTS.clients, durationMs + count * 10_000);
  const load = new LoadGenerator(run.lo);
  run.load = load;
  load.start();
  progress(`load: ${run.lo.keepAliveClients} keep-alive + ${run.lo.newConnectionClients} new-connection clients`);
  const gap = durationMs / (count + 1);
  for (let i = 1; i <= count; i++) {
    await guard.run(sleep(gap));
    if (sc.event === 'crash') {
      const c = await runCrash(i, host, guard, load, run.port);
      run.crashes.push(c);
      const answered = Number.isNaN(c.answeredAt) ? 'no answer' : `the fresh incumbent answered ${Math.round(c.answeredAt - c.at)} ms after the kill`;
      progress(`crash ${i}: killed pid ${c.killedPid} (${c.killedBuild}); ${c.error ? `failed: ${c.error}` : `${answered}; serving ${c.servingAfter} (pid ${c.newPid ?? '?'})`}`);
      continue;
    }
    const h = await handoff(run, load, i, sc.successorFaults);
    const rec = h.record;
    progress(`handoff ${i}: ${rec ? `${rec.outcome} in ${rec.total_ms} ms${rec.reason ? ` (${rec.reason})` : ''}` : `failed: ${h.error ?? '?'}`}; serving ${h.servingAfter}`);
  }
  await guard.run(sleep(gap));
  run.load = null;
  run.result = await guard.bounded(load.stop());
  progress(`load stopped: ${run.result.requests} requests, ${run.result.failures.length} failed; reading back every written key`);
  run.verify = await guard.run(load.verify());
}

async function handoff(run: Run, load: LoadGenerator, n: number, faults: readonly string[]): Promise<HandoffRun> {
  const build = `demo-${n + 1}`;
  const h: HandoffRun = { n, build, record: null, start: load.now(), end: 0, marks: [], servingAfter: '-' };
  run.handoffs.push(h);
  try {
    h.record = await run.guard.run(
      run.host.upgrade({ args: kvArgs(run.paths, run.layout, build, faults) }, (e) => {
        if (e.phase !== 'done') h.marks.push({ phase: e.phase, at: h.start + e.elapsed_ms });
      }),
    );
  } catch (err) {
    if (err instanceof Interrupted) throw err;
    h.error = err instanceof Error ? err.message : String(err);
  }
  h.end = load.now();
  h.servingAfter = await run.guard.run(infoBuild(run.port)).catch((err: unknown) => {
    if (err instanceof Interrupted) throw err;
    return `error: ${err instanceof Error ? err.message : String(err)}`;
  });
  return h;
}

function emptyResult(): LoadResult {
  return { requests: 0, puts: 0, gets: 0, acknowledged: 0, checkedReads: 0, failures: [], refused: 0, resetOnReuse: 0, samples: [], capped: false, elapsedMs: 0, keepAliveConnections: 0 };
}
