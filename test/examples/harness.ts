/**
 * The examples' harness: an example under a real `handoff run` (bin/handoff from dist/), driven by
 * real `handoff` client processes, with a bounded load on it. Built on test/cli/harness.ts (its
 * process wrapper, client runner and status parsing); what is added here is what the examples need
 * that the kv tests do not: a listener name of the example's choosing, timings for frameworks that
 * start slowly on a busy machine, and a non-node process (systemd-socket-activate, by test/lib/launch.ts).
 *
 * Every wait is on an event (a log line, an answer, an exit), bounded by a timeout that only turns
 * a hang into a failure.
 */

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Test } from 'tap';
import { BIN, CHILD_ENV, FAST_FLAGS, Proc, ROOT, cli, pidAlive, portOf, status, tmpdir } from '../cli/harness.js';
import { HttpLoad } from './http-load.js';

export { CHILD_ENV, Proc, ROOT, cli, pidAlive, portOf, status, tmpdir };
export { freePort } from '../lib/free-port.js';
export { launch } from '../lib/launch.js';
export { within } from '../lib/within.js';

export const EXAMPLES = path.join(ROOT, 'dist/examples');
export const mainOf = (name: string): string => path.join(EXAMPLES, name, 'main.js');

/**
 * FAST_FLAGS with room for a busy machine: a framework's successor may take seconds to say Hello,
 * and a drain must end by itself (not at the grace) for a run to have no failed request.
 */
export const EXAMPLE_FLAGS = withFlags(FAST_FLAGS, {
  '--heartbeat-timeout': '5s',
  '--hello-timeout': '30s',
  '--drain-grace': '10s',
  '--deadline': '60s',
  '--exit-timeout': '10s',
});

/** `flags` with the values of some flags replaced (each must be there already). */
export function withFlags(flags: readonly string[], values: Record<string, string>): string[] {
  const out = [...flags];
  for (const [name, v] of Object.entries(values)) {
    const i = out.indexOf(name);
    if (i < 0) throw new Error(`no ${name} in ${flags.join(' ')}`);
    out[i + 1] = v;
  }
  return out;
}

export const hasSocketActivate = spawnSync('sh', ['-c', 'command -v systemd-socket-activate'], { stdio: 'ignore' }).status === 0;

export interface Supervised {
  p: Proc;
  /** For `handoff` clients: the admin socket is in HANDOFF_ADMIN_SOCKET. */
  env: NodeJS.ProcessEnv;
  port: number;
  /** The first incumbent. */
  pid: number;
}

/**
 * `handoff run --listen <listener>=tcp://127.0.0.1:0 -- node <example> <args>`, waited for until
 * its incumbent serves; stopped (SIGTERM, then SIGKILL) at teardown. No --lock: the examples keep no data.
 */
export async function runExample(t: Test, example: string, o: { listener?: string; args?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Supervised> {
  const dir = tmpdir(t, 'hex-');
  const sock = path.join(dir, 'admin.sock');
  const args = [BIN, 'run', '--listen', `${o.listener ?? 'http'}=tcp://127.0.0.1:0`, '--state-dir', path.join(dir, 'state'), '--admin-socket', sock, ...EXAMPLE_FLAGS, '--', process.execPath, mainOf(example), ...(o.args ?? [])];
  const p = new Proc(args, { ...CHILD_ENV, ...o.env });
  t.teardown(async () => {
    if (!p.alive) return;
    p.signal('SIGTERM');
    await p.exit(20_000).catch(() => p.signal('SIGKILL'));
  });
  await p.waitLog('ready', 60_000);
  const env = { ...CHILD_ENV, HANDOFF_ADMIN_SOCKET: sock };
  const s = await status(env);
  const pid = s.incumbent?.pid;
  if (pid === undefined) throw new Error(`no incumbent after ready: ${JSON.stringify(s)}`);
  return { p, env, port: portOf(s), pid };
}

/** `handoff upgrade -- <example> --build-id <build>`: the same program, as a new build. Returns the new incumbent. */
export async function upgrade(t: Test, run: Supervised, example: string, build: string): Promise<number> {
  const r = await cli(['upgrade', '--', mainOf(example), '--build-id', build], run.env, 120_000);
  t.equal(r.code, 0, 'handoff upgrade exits 0 (committed)', { stdout: r.stdout, stderr: r.stderr });
  const s = await status(run.env);
  t.equal(s.incumbent?.build_id, build, 'the new build is the incumbent');
  t.notOk(pidAlive(run.pid), 'the old incumbent exited');
  const pid = s.incumbent?.pid ?? 0;
  t.not(pid, run.pid, 'a new process serves');
  return pid;
}

/** SIGTERM to `handoff run`: the incumbent drains, S exits 0. */
export async function stopRun(t: Test, run: Supervised): Promise<void> {
  run.p.signal('SIGTERM');
  const { code, signal } = await run.p.exit(30_000);
  t.equal(code, 0, 'handoff run exits 0 on SIGTERM');
  t.equal(signal, null);
}

/** A load of 4 keep-alive and 4 new-connection clients on `run`, started; stopped at teardown. */
export function startHttpLoad(t: Test, run: Supervised, urlPath = '/who'): HttpLoad {
  const load = new HttpLoad({ port: run.port, path: urlPath, keepAliveClients: 4, newConnectionClients: 4, intervalMs: 20, maxRequests: 40_000, maxMs: 180_000 });
  t.teardown(() => load.stop());
  load.start();
  return load;
}

/**
 * The scenario every HTTP example goes through: under `handoff run`, a load of keep-alive and
 * new-connection clients; a handoff to build v2 while it runs; no request fails, every keep-alive
 * client is served by both builds, and the successor serves afterwards. `handoff run` is stopped at
 * the end; its output (`run.p`) stays for checks of the example's own.
 */
export async function httpHandoffUnderLoad(t: Test, example: string, o: { path?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ run: Supervised; successor: number }> {
  const run = await runExample(t, example, { env: o.env });
  const load = startHttpLoad(t, run, o.path);
  // Every client has been served by the incumbent before the handoff starts.
  await load.until(() => load.clients.every((c) => (c.byPid.get(run.pid) ?? 0) > 0), 'every client served by the incumbent');

  const successor = await upgrade(t, run, example, 'v2');
  // And by the successor after it: keep-alive clients too, on a new connection.
  await load.until(() => load.clients.every((c) => (c.byPid.get(successor) ?? 0) > 0), 'every client served by the successor');
  const r = await load.stop();

  t.same(r.failures, [], 'no request failed');
  t.notOk(r.capped, 'the load ran until stopped, not until its cap');
  t.ok(r.ok > 0, `${r.ok} requests answered`);
  for (const c of load.clients.filter((x) => x.keepAlive)) {
    t.ok(c.connections >= 2, `${c.name}: its keep-alive connection was closed by the drain and a new one taken (${c.connections} connections)`);
  }
  const after = JSON.parse((await load.once()).body) as { pid: number; build: string };
  t.match(after, { pid: successor, build: 'v2' }, 'the successor answers a new client');
  await stopRun(t, run);
  return { run, successor };
}

/** dist/ must hold the example (the tests run the built JS, as `handoff run` would). */
export function built(example: string): boolean {
  return fs.existsSync(mainOf(example));
}
