/**
 * Shared set-up for the end-to-end supervisor tests: a real Supervisor in this process (so its code
 * is covered), real kv children, real loopback sockets, short timeouts, and event-based waits.
 */

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pino from 'pino';
import type { Test } from 'tap';
import { Supervisor } from '../../src/supervisor/supervisor.js';
import { DEFAULT_OPTIONS, type HandoffEvent, type HandoffRecord, type SupervisorOptions } from '../../src/supervisor/types.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KV_MAIN = path.join(ROOT, 'dist/examples/kv/main.js');

export interface Env {
  dir: string;
  dataDir: string;
  lockPath: string;
  tracePath: string;
  stateDir: string;
  logPath: string;
}

export function makeEnv(prefix = 'handoff-e2e-'): Env {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const env: Env = {
    dir,
    dataDir: path.join(dir, 'data'),
    lockPath: path.join(dir, 'data.lock'),
    tracePath: path.join(dir, 'lock-trace.jsonl'),
    stateDir: path.join(dir, 'state'),
    logPath: path.join(dir, 'supervisor.log'),
  };
  fs.mkdirSync(env.dataDir);
  return env;
}

export function kvArgs(env: Env, extra: string[] = []): string[] {
  return [KV_MAIN, '--data', env.dataDir, ...extra];
}

/** Timeouts short enough for tests, long enough for a loaded 2-core machine. */
export const FAST: Partial<SupervisorOptions> = {
  helloTimeoutMs: 5_000,
  drainGraceMs: 2_000,
  deadlineMs: 15_000,
  exitTimeoutMs: 3_000,
  killAfterMs: 1_000,
  heartbeatMs: 200,
  heartbeatTimeoutMs: 1_500,
  restartInitialMs: 50,
  restartMaxMs: 1_000,
};

/** The options every end-to-end test starts from: the kv on a free loopback port, fast timeouts. */
export function supervisorOptions(env: Env, over: Partial<SupervisorOptions> = {}, kvExtra: string[] = []): SupervisorOptions {
  return {
    ...DEFAULT_OPTIONS,
    ...FAST,
    command: process.execPath,
    args: kvArgs(env, kvExtra),
    listen: ['http=tcp://127.0.0.1:0'],
    lockPath: env.lockPath,
    stateDir: env.stateDir,
    env: { ...process.env, HANDOFF_LOCK_TRACE: env.tracePath, NODE_OPTIONS: '' },
    allowExec: [],
    ...over,
  };
}

export async function startSupervisor(env: Env, over: Partial<SupervisorOptions> = {}, kvExtra: string[] = []): Promise<Supervisor> {
  const log = pino({ level: 'debug' }, pino.destination({ dest: env.logPath, sync: true }));
  const s = new Supervisor(supervisorOptions(env, over, kvExtra), log);
  await s.start();
  return s;
}

/** A fresh env and a started supervisor, both torn down with the test. */
export async function withSupervisor(t: Test, over: Partial<SupervisorOptions> = {}, kvExtra: string[] = []): Promise<{ env: Env; s: Supervisor; port: number }> {
  const env = makeEnv();
  const s = await startSupervisor(env, over, kvExtra);
  t.teardown(async () => {
    await s.stop();
    cleanup(env);
  });
  // A test without listeners (a raw-protocol incumbent) has no port.
  return { env, s, port: s.status().listeners.length > 0 ? portOf(s) : 0 };
}

export function portOf(s: Supervisor): number {
  const addr = s.status().listeners[0]?.address ?? '';
  const m = /:(\d+)$/.exec(addr);
  if (!m) throw new Error(`no tcp listener: ${addr}`);
  return Number(m[1]);
}

/** An upgrade of the kv with extra successor args (a fault, a build id). */
export function upgrade(s: Supervisor, env: Env, extra: string[] = [], events?: HandoffEvent[]): Promise<HandoffRecord> {
  return s.upgrade({ command: process.execPath, args: kvArgs(env, extra) }, (e) => events?.push(e));
}

export interface Reply {
  status: number;
  body: string;
}

export function request(port: number, method: string, urlPath: string, body?: string, agent?: http.Agent | false): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent: agent ?? false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(20_000, () => req.destroy(new Error('request timed out')));
    req.end(body);
  });
}

export async function info(port: number): Promise<{ pid: number; build_id: string }> {
  const r = await request(port, 'GET', '/info');
  return JSON.parse(r.body) as { pid: number; build_id: string };
}

/** Waits for the next supervisor event matching `pred`. */
export function nextEvent<K extends 'handoff' | 'restart' | 'ready'>(s: Supervisor, name: K, pred: (...a: Parameters<Listener<K>>) => boolean = () => true): Promise<Parameters<Listener<K>>> {
  return new Promise((resolve) => {
    const fn = (...a: Parameters<Listener<K>>): void => {
      if (!pred(...a)) return;
      s.off(name, fn as never);
      resolve(a);
    };
    s.on(name, fn as never);
  });
}
type Listener<K extends 'handoff' | 'restart' | 'ready'> = (...a: import('../../src/supervisor/types.js').SupervisorEvents[K]) => void;

/** Waits until a handoff enters `phase`. */
export async function phaseEntered(s: Supervisor, phase: HandoffEvent['phase']): Promise<HandoffEvent> {
  const [e] = await nextEvent(s, 'handoff', (ev) => ev.phase === phase);
  return e;
}

/** Waits until the supervisor's incumbent serves again (state `serving`), polling its status. */
export async function serving(s: Supervisor, timeoutMs = 20_000): Promise<void> {
  if (s.state === 'serving') return;
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => {
      clearInterval(iv);
      reject(new Error(`supervisor not serving after ${timeoutMs} ms (state ${s.state})`));
    }, timeoutMs);
    const iv = setInterval(() => {
      if (s.state === 'serving') {
        clearInterval(iv);
        clearTimeout(deadline);
        resolve();
      }
    }, 20);
  });
}

/** childPids(): this process's children (what S has not reaped); openFds(): this process's open fds. */
export { childPids, fdCount as openFds, isAlive } from '../lib/proc.js';

export function readTrace(env: Env): string[] {
  try {
    return fs.readFileSync(env.tracePath, 'utf8').split('\n').filter((l) => l.trim() !== '');
  } catch {
    return [];
  }
}

export function cleanup(env: Env): void {
  fs.rmSync(env.dir, { recursive: true, force: true });
}

interface TraceEvent {
  pid: number;
  event: 'acquire' | 'release' | 'clear';
  holder?: number;
  t_ns: string;
}

/** Who holds the data-dir lock according to the trace (null: nobody). */
export function lockHolder(env: Env): number | null {
  let holder: number | null = null;
  for (const line of readTrace(env)) {
    const e = JSON.parse(line) as TraceEvent;
    if (e.event === 'acquire') holder = e.pid;
    else if (e.event === 'release' && holder === e.pid) holder = null;
    else if (e.event === 'clear' && holder === e.holder) holder = null;
  }
  return holder;
}

/** Pids that ever acquired the lock, in order. */
export function lockAcquirers(env: Env): number[] {
  return readTrace(env)
    .map((l) => JSON.parse(l) as TraceEvent)
    .filter((e) => e.event === 'acquire')
    .map((e) => e.pid);
}

/** Waits until the supervisor's log file has a line matching `re` (S logs synchronously). */
export async function logLine(env: Env, re: RegExp, timeoutMs = 10_000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const text = fs.existsSync(env.logPath) ? fs.readFileSync(env.logPath, 'utf8') : '';
    const hit = text.split('\n').find((l) => re.test(l));
    if (hit) return hit;
    if (Date.now() > until) throw new Error(`no log line matching ${re} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}
