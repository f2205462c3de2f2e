/**
 * `handoff demo`: a live handoff of the bundled kv example under load, with a results table.
 *
 * Needs nothing but the install (and its build): a temp dir holds the data dir, the state dir, the
 * lock and the log. A supervisor host process (host.ts) runs a Supervisor on a loopback port with
 * the kv example; paced clients put it under a PUT/GET load (src/load/); handoffs run one after the
 * other while the load runs, each successor with a new `--build-id`; then the load stops, every
 * acknowledged write is read back, the supervisor stops, and the table is printed. Exit 0 only when
 * no request failed, no connection was refused, every handoff committed and every write survived.
 * The temp dir is removed after a clean run and kept (and named) otherwise.
 */

import fs from 'node:fs';
import { INTERVAL_MS, LoadGenerator, PUT_RATIO, loadOptions, type HandoffRun, type LoadOptions, type LoadResult, type VerifyResult } from '../../load/index.js';
import { SupervisorHost } from './host-client.js';
import { builtPaths } from './paths.js';
import { buildReport, renderReport, type DemoReport } from './report.js';
import { Guard, infoBuild, kvArgs, makeLayout, portOf, sleep, supervisorOptions } from './setup.js';

export interface DemoOptions {
  /** The loopback port to listen on; 0 (the default) picks a free one. */
  port?: number;
  /** Handoffs to run, one after the other (default 3). */
  handoffs?: number;
  /** Print the report as JSON instead of the table. */
  json?: boolean;
  /** Concurrent clients (default 20): four fifths keep-alive, one fifth a new connection per request. */
  clients?: number;
  /** How long the load runs, apart from the handoffs themselves (default 6000 ms). */
  durationMs?: number;
}

export const DEMO_DEFAULTS = { port: 0, handoffs: 3, clients: 20, durationMs: 6_000 } as const;

/** The whole demo, however slow the machine: after this it gives up and says so. */
const WATCHDOG_MS = 120_000;

/** Runs the demo and prints its table (or JSON) to stdout; resolves with the exit code. */
export async function runDemo(opts: DemoOptions = {}): Promise<number> {
  const rep = await demo(opts, (line) => {
    if (!opts.json) process.stdout.write(`${line}\n`);
  });
  process.stdout.write(opts.json ? `${JSON.stringify(rep, null, 2)}\n` : renderReport(rep));
  return rep.ok ? 0 : 1;
}

/** For tests: run the host from another file (its TypeScript source) with other Node flags. */
export interface DemoInternals {
  hostPath?: string;
  hostExecArgv?: string[];
}

/** The demo itself, without printing the result; `progress` gets one line per step. */
export async function demo(opts: DemoOptions, progress: (line: string) => void = () => undefined, internals: DemoInternals = {}): Promise<DemoReport> {
  const port = opts.port ?? DEMO_DEFAULTS.port;
  const handoffs = Math.max(1, Math.floor(opts.handoffs ?? DEMO_DEFAULTS.handoffs));
  const durationMs = Math.max(500, opts.durationMs ?? DEMO_DEFAULTS.durationMs);
  const clients = opts.clients ?? DEMO_DEFAULTS.clients;
  const paths = builtPaths();
  const layout = makeLayout('handoff-demo-');

  progress(`handoff demo: temp dir ${layout.tempDir}, supervisor log ${layout.logFile}`);
  const host = SupervisorHost.spawn(internals.hostPath ?? paths.host, layout.logFile, { cwd: layout.tempDir, ...(internals.hostExecArgv ? { execArgv: internals.hostExecArgv } : {}) });
  const guard = new Guard(host.exited, WATCHDOG_MS, 'the demo');
  const runs: HandoffRun[] = [];
  let load: LoadGenerator | null = null;
  let lo: LoadOptions | null = null;
  let result: LoadResult | null = null;
  let verify: VerifyResult | null = null;
  let realPort = port;
  let error: string | undefined;

  try {
    const status = await guard.run(host.start(supervisorOptions(paths, layout, port, 'demo-1')));
    realPort = portOf(status);
    const serving = await infoBuild(realPort);
    progress(`supervisor pid ${host.pid} serving ${serving} (kv pid ${status.incumbent?.pid ?? '?'}) on http://127.0.0.1:${realPort}`);

    lo = loadOptions(realPort, clients, durationMs + handoffs * 10_000);
    load = new LoadGenerator(lo);
    load.start();
    progress(`load: ${lo.keepAliveClients} keep-alive + ${lo.newConnectionClients} new-connection clients`);
    const gap = durationMs / (handoffs + 1);
    for (let i = 1; i <= handoffs; i++) {
      await guard.run(sleep(gap));
      const build = `demo-${i + 1}`;
      const lg = load;
      const run: HandoffRun = { n: i, build, record: null, start: lg.now(), end: 0, marks: [], servingAfter: '-' };
      runs.push(run);
      try {
        run.record = await guard.run(
          host.upgrade({ args: kvArgs(paths, layout, build) }, (e) => {
            if (e.phase !== 'done') run.marks.push({ phase: e.phase, at: run.start + e.elapsed_ms });
          }),
        );
      } catch (err) {
        run.error = err instanceof Error ? err.message : String(err);
      }
      run.end = lg.now();
      run.servingAfter = await infoBuild(realPort).catch((err: unknown) => `error: ${err instanceof Error ? err.message : String(err)}`);
      const rec = run.record;
      progress(`handoff ${i}: ${rec ? `${rec.outcome} in ${rec.total_ms} ms${rec.reason ? ` (${rec.reason})` : ''}` : `failed: ${run.error ?? '?'}`}; serving ${run.servingAfter}`);
    }
    await guard.run(sleep(gap));
    const lg = load;
    load = null;
    result = await guard.bounded(lg.stop());
    progress(`load stopped: ${result.requests} requests, ${result.failures.length} failed; reading back every written key`);
    verify = await guard.run(lg.verify());
  } catch (err) {
    error = err instanceof Error ? err.message : String(err);
    if (load) result = await guard.bounded(load.stop()).catch(() => null);
  }

  // Stop S: its incumbent drains and exits. A host that did not stop is killed (and its services).
  if (error === undefined) {
    try {
      await guard.bounded(host.stop());
    } catch (err) {
      error = `stopping the supervisor: ${err instanceof Error ? err.message : String(err)}`;
    }
  }
  await host.kill();
  guard.clear();

  const rep = buildReport({
    port: realPort,
    tempDir: layout.tempDir,
    logFile: layout.logFile,
    load: {
      keepAliveClients: lo?.keepAliveClients ?? 0,
      newConnectionClients: lo?.newConnectionClients ?? 0,
      intervalMs: INTERVAL_MS,
      putRatio: PUT_RATIO,
      elapsedMs: result?.elapsedMs ?? 0,
      capped: result?.capped ?? false,
    },
    result: result ?? emptyResult(),
    runs,
    verify,
    ...(error !== undefined ? { error } : {}),
  });
  if (!rep.kept) fs.rmSync(layout.tempDir, { recursive: true, force: true });
  return rep;
}

function emptyResult(): LoadResult {
  return { requests: 0, puts: 0, gets: 0, acknowledged: 0, checkedReads: 0, failures: [], refused: 0, resetOnReuse: 0, samples: [], capped: false, elapsedMs: 0, keepAliveConnections: 0 };
}
