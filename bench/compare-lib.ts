/**
 * Helpers of `npm run bench:compare`: bounded child processes, /proc memory, the "who serves now"
 * prober, a raw keep-alive saturation client, and PM2's install into a cache directory.
 */

import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import net, { type AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { httpRequest } from '../src/load/index.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Every process this bench started and did not see exit: killed if the bench itself ends early. */
const live = new Set<ChildProcess>();
process.on('exit', () => {
  for (const c of live) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
});

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Starts a long-lived process (tracked, killed at the bench's exit if still running). */
export function start(cmd: string, args: string[], opts: SpawnOptions): { child: ChildProcess; exited: Promise<Exit> } {
  const child = spawn(cmd, args, opts);
  live.add(child);
  const exited = new Promise<Exit>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
    child.once('error', () => {
      live.delete(child);
      resolve({ code: null, signal: null });
    });
  });
  return { child, exited };
}

/** Waits for an exit, SIGKILLs after `ms`; resolves with how it ended. */
export async function waitExit(p: { child: ChildProcess; exited: Promise<Exit> }, ms: number): Promise<Exit & { killed: boolean }> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)));
  const r = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  if (r !== 'timeout') return { ...r, killed: false };
  p.child.kill('SIGKILL');
  return { ...(await p.exited), killed: true };
}

export interface Ran extends Exit {
  stdout: string;
  stderr: string;
  /** Wall time from spawn to exit. */
  ms: number;
  /** performance.now() at spawn. */
  t0: number;
  timedOut: boolean;
}

/** Runs a command to its end (SIGKILL after `timeoutMs`). */
export async function run(cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs: number }): Promise<Ran> {
  const t0 = performance.now();
  const p = start(cmd, args, { env: opts.env, cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  p.child.stdout?.on('data', (c: Buffer) => out.push(c));
  p.child.stderr?.on('data', (c: Buffer) => err.push(c));
  const e = await waitExit(p, opts.timeoutMs);
  return { ...e, stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8'), ms: performance.now() - t0, t0, timedOut: e.killed };
}

export async function freePort(): Promise<number> {
  const s = net.createServer();
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen(0, '127.0.0.1', resolve);
  });
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** VmRSS and VmHWM of a process, in bytes; undefined when it is gone. */
export function procMemory(pid: number): { rss: number; hwm: number } | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? NaN) * 1024;
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** CPU time a process has used so far, all its threads, in ns (the schedstat of each of its tasks); NaN when gone. */
export function cpuNs(pid: number): number {
  try {
    let ns = 0;
    for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
      try {
        ns += Number(fs.readFileSync(`/proc/${pid}/task/${t}/schedstat`, 'utf8').split(' ')[0]);
      } catch {
        // a thread that just ended
      }
    }
    return ns;
  } catch {
    return Number.NaN;
  }
}

/**
 * Runs `cmd args` under bash and returns its wall time (bash's EPOCHREALTIME around it) and the CPU
 * time (user + system) it used (bash's `times`): the CPU time hardly moves when a busy neighbour
 * makes the wall time wait for a core.
 */
export async function timed(cmd: string, args: string[], cwd: string): Promise<{ wallMs: number; cpuMs: number; code: number | null }> {
  const script = 's=$EPOCHREALTIME; "$@" >/dev/null 2>&1; c=$?; e=$EPOCHREALTIME; times; echo "$s $e $c"';
  const r = await run('bash', ['-c', script, 'timed', cmd, ...args], { cwd, timeoutMs: 30_000 });
  const lines = r.stdout.trim().split('\n');
  const sec = (t: string): number => {
    const m = /^(\d+)m([\d.]+)s$/.exec(t);
    return m ? Number(m[1]) * 60 + Number(m[2]) : Number.NaN;
  };
  const [cu, cs] = (lines[1] ?? '').split(' ');
  const [s0, e0, c] = (lines[2] ?? '').split(' ');
  return { wallMs: (Number(e0) - Number(s0)) * 1000, cpuMs: (sec(cu ?? '') + sec(cs ?? '')) * 1000, code: c === undefined ? null : Number(c) };
}

export { isAlive as alive } from '../test/lib/proc.js';

/** The pid that answered `GET /info` (a new connection each time), or undefined on any failure. */
export async function infoPid(port: number, timeoutMs = 2_000): Promise<number | undefined> {
  try {
    const r = await httpRequest(port, '127.0.0.1', 'GET', '/info', undefined, false, timeoutMs);
    if (r.status !== 200) return undefined;
    const pid = (JSON.parse(r.body) as { pid?: unknown }).pid;
    return typeof pid === 'number' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Polls `GET /info` until it answers (any pid); false after `ms`. */
export async function waitServing(port: number, ms: number, give?: Promise<unknown>): Promise<boolean> {
  const until = performance.now() + ms;
  let gone = false;
  void give?.then(() => (gone = true));
  while (performance.now() < until && !gone) {
    if ((await infoPid(port, 1_000)) !== undefined) return true;
    await sleep(20);
  }
  return false;
}

/**
 * From now on, polls `GET /info` over new connections every `everyMs` until a process that is not
 * in `old` answers; resolves with `clock()` at the end of that answer, or NaN once `deadline()`
 * (a performance.now() time, which the caller may move) has passed. A probe that waits in the
 * listen backlog (nobody accepting) completes when the new process accepts it, so for a listener
 * that never closes the figure is exact; where connections are refused, it is late by up to `everyMs`.
 */
export async function firstNewAnswer(port: number, old: ReadonlySet<number>, clock: () => number, deadline: () => number, everyMs = 5): Promise<{ at: number; pid: number | undefined }> {
  while (performance.now() < deadline()) {
    const pid = await infoPid(port, Math.max(100, Math.min(5_000, deadline() - performance.now())));
    if (pid !== undefined && !old.has(pid)) return { at: clock(), pid };
    await sleep(everyMs);
  }
  return { at: Number.NaN, pid: undefined };
}

/** The pids that answer `GET /info` now, over `probes` new connections (several, for PM2's round robin). */
export async function answeringPids(port: number, probes: number): Promise<Set<number>> {
  const s = new Set<number>();
  for (let i = 0; i < probes; i++) {
    const p = await infoPid(port);
    if (p !== undefined) s.add(p);
  }
  return s;
}

/**
 * Requests/s at saturation: `conns` keep-alive connections, each sending the next GET as soon as
 * the previous response is complete (no pipelining), for `ms`. A raw socket client: node:http's
 * client costs more per request than the server being measured, and would saturate first.
 */
export async function saturate(port: number, paths: readonly string[], conns: number, ms: number): Promise<{ rps: number; ok: number; bad: number }> {
  let ok = 0;
  let bad = 0;
  let stopping = false;
  const sockets: net.Socket[] = [];
  const reqs = paths.map((p) => Buffer.from(`GET ${p} HTTP/1.1\r\nHost: kv\r\n\r\n`, 'latin1'));
  await Promise.all(
    Array.from(
      { length: conns },
      (_, i) =>
        new Promise<void>((resolve, reject) => {
          const s = net.connect({ port, host: '127.0.0.1', noDelay: true }, () => resolve());
          s.once('error', reject);
          sockets.push(s);
          let n = i;
          let buf: Buffer = Buffer.alloc(0);
          const next = (): void => {
            if (!stopping) s.write(reqs[n++ % reqs.length]!);
          };
          s.on('data', (d: Buffer) => {
            buf = buf.length === 0 ? d : Buffer.concat([buf, d]);
            for (;;) {
              const he = buf.indexOf('\r\n\r\n');
              if (he < 0) return;
              const head = buf.toString('latin1', 0, he);
              const len = Number(/content-length: *(\d+)/i.exec(head)?.[1] ?? 0);
              if (buf.length < he + 4 + len) return;
              if (head.startsWith('HTTP/1.1 200')) ok++;
              else bad++;
              buf = buf.subarray(he + 4 + len);
              next();
            }
          });
          (s as net.Socket & { kick?: () => void }).kick = next;
        }),
    ),
  );
  const t0 = performance.now();
  const ok0 = ok;
  for (const s of sockets) (s as net.Socket & { kick?: () => void }).kick?.();
  await sleep(ms);
  const done = ok - ok0;
  const elapsed = performance.now() - t0;
  stopping = true;
  for (const s of sockets) s.destroy();
  return { rps: (done * 1000) / elapsed, ok: done, bad };
}

export const PM2_VERSION = '6.0.14';

/** Where PM2 is installed on first use: never a dependency of the package. */
export function pm2Dir(): string {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(cache, 'handoff-bench', 'pm2');
}

/** PM2's CLI script, installing the pinned version into the cache on first use; a reason string when it cannot. */
export async function ensurePm2(log: (s: string) => void): Promise<{ bin: string } | { error: string }> {
  const dir = pm2Dir();
  const pkg = path.join(dir, 'node_modules', 'pm2', 'package.json');
  const bin = path.join(dir, 'node_modules', 'pm2', 'bin', 'pm2');
  const installed = (): string | undefined => {
    try {
      return (JSON.parse(fs.readFileSync(pkg, 'utf8')) as { version?: string }).version;
    } catch {
      return undefined;
    }
  };
  if (installed() === PM2_VERSION && fs.existsSync(bin)) return { bin };
  log(`installing pm2@${PM2_VERSION} into ${dir} (first use only)`);
  fs.mkdirSync(dir, { recursive: true });
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const r = await run(npm, ['install', '--prefix', dir, '--no-save', '--no-package-lock', '--no-audit', '--no-fund', '--loglevel=error', `pm2@${PM2_VERSION}`], { timeoutMs: 300_000 });
  if (r.code !== 0 || installed() !== PM2_VERSION || !fs.existsSync(bin)) {
    const lines = r.stderr.trim().split('\n').filter((l) => l.trim() !== '' && !/complete log of this run/.test(l));
    const why = r.timedOut ? 'timed out after 300 s' : lines.slice(0, 2).join(' ').slice(0, 300) || `npm exit ${String(r.code)}`;
    return { error: `pm2@${PM2_VERSION} could not be installed into ${dir}: ${why}` };
  }
  return { bin };
}

/** Median of a non-empty list (NaN when empty). */
export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
