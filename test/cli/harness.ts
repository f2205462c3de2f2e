/**
 * End-to-end harness: a real `bin/handoff run` process with the kv example, the real admin socket,
 * and `bin/handoff` client processes. Every wait is on an event (a log line, an output line, an
 * exit), bounded by a timeout that only turns a hang into a failure.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import type { SupervisorStatus } from '../../src/supervisor/types.js';
import { tmpdir as tmpdirOf } from '../lib/tmpdir.js';
import { within } from '../lib/within.js';
import { adminRequest } from '../lib/admin.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/handoff');
export const KV = path.join(ROOT, 'dist/examples/kv/main.js');

/** Children run without tap's loaders: they are built JS. */
export const CHILD_ENV: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
for (const k of Object.keys(CHILD_ENV)) if (k.startsWith('HANDOFF_') || k === 'NOTIFY_SOCKET') delete CHILD_ENV[k];

/** Short timeouts: a handoff of the kv takes well under a second. */
export const FAST_FLAGS = ['--heartbeat', '200ms', '--heartbeat-timeout', '1500ms', '--drain-grace', '2s', '--hello-timeout', '5s', '--exit-timeout', '3s', '--kill-after', '1s', '--deadline', '15s', '--restart-initial', '50ms', '--restart-max', '1s'];

/** Short: the admin socket path must fit in 107 bytes. */
export function tmpdir(t: Test, prefix = 'hcli-'): string {
  return tmpdirOf(t, prefix);
}

export type LogLine = Record<string, unknown> & { msg?: string };

/** A process whose output lines can be awaited. */
export class Proc {
  readonly proc: ChildProcess;
  readonly out: string[] = [];
  readonly err: string[] = [];
  stdout = '';
  stderr = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private waiters: Array<() => void> = [];

  constructor(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT) {
    this.proc = spawn(process.execPath, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    const lines = (stream: NodeJS.ReadableStream, into: string[], key: 'stdout' | 'stderr'): void => {
      let buf = '';
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => {
        this[key] += d;
        buf += d;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          into.push(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
        }
        this.wake();
      });
      stream.on('end', () => {
        if (buf !== '') into.push(buf);
        this.wake();
      });
    };
    lines(this.proc.stdout!, this.out, 'stdout');
    lines(this.proc.stderr!, this.err, 'stderr');
    this.exited = new Promise((resolve) => this.proc.once('close', (code, signal) => resolve({ code, signal })));
    void this.exited.then(() => this.wake());
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Waits until `pred` finds something in the output so far; rejects if the process exits first. */
  async until<T>(pred: () => T | undefined, what: string, ms = 20_000): Promise<T> {
    const loop = async (): Promise<T> => {
      for (;;) {
        const v = pred();
        if (v !== undefined) return v;
        if (!this.alive && this.proc.stdout?.readableEnded && this.proc.stderr?.readableEnded) {
          throw new Error(`process exited before ${what}; stderr:\n${this.stderr.slice(-3000)}`);
        }
        await new Promise<void>((r) => this.waiters.push(r));
      }
    };
    return within(ms, what, loop());
  }

  /** The stderr JSON log lines (pino) that parse. */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.err) {
      if (!l.startsWith('{')) continue;
      try {
        out.push(JSON.parse(l) as LogLine);
      } catch {
        // A child's non-JSON output.
      }
    }
    return out;
  }

  /** Waits for a log line with this message (and matching fields), counting only lines after `from`. */
  waitLog(msg: string | RegExp, ms = 20_000, from = 0): Promise<LogLine> {
    return this.until(
      () =>
        this.logs()
          .slice(from)
          .find((l) => (typeof msg === 'string' ? l.msg === msg : typeof l.msg === 'string' && msg.test(l.msg))),
      `log line ${String(msg)}`,
      ms,
    );
  }

  waitStdout(re: RegExp, ms = 20_000): Promise<string> {
    return this.until(() => this.out.find((l) => re.test(l)), `stdout line ${String(re)}`, ms);
  }

  async exit(ms = 20_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return within(ms, `exit of pid ${this.pid}`, this.exited);
  }

  signal(sig: NodeJS.Signals): void {
    if (this.alive) this.proc.kill(sig);
  }
}

export interface RunOptions {
  extra?: string[];
  kvArgs?: string[];
  /** The command and args instead of the kv. */
  command?: string[];
  socket?: string;
  stateDir?: string;
  waitReady?: boolean;
}

export interface Running {
  p: Proc;
  dir: string;
  sock: string;
  dataDir: string;
  stateDir: string;
  lockPath: string;
  env: NodeJS.ProcessEnv;
}

export function runArgs(dir: string, o: RunOptions = {}): { args: string[]; sock: string; dataDir: string; stateDir: string; lockPath: string } {
  const sock = o.socket ?? path.join(dir, 'admin.sock');
  const dataDir = path.join(dir, 'data');
  const stateDir = o.stateDir ?? path.join(dir, 'state');
  const lockPath = path.join(dir, 'data.lock');
  fs.mkdirSync(dataDir, { recursive: true });
  const command = o.command ?? [process.execPath, KV, '--data', dataDir, ...(o.kvArgs ?? [])];
  const args = [BIN, 'run', '--listen', 'http=tcp://127.0.0.1:0', '--lock', lockPath, '--state-dir', stateDir, '--admin-socket', sock, ...FAST_FLAGS, ...(o.extra ?? []), '--', ...command];
  return { args, sock, dataDir, stateDir, lockPath };
}

/** Starts `handoff run` and waits until the incumbent serves; stops it (SIGTERM, then SIGKILL) at teardown. */
export async function startRun(t: Test, o: RunOptions = {}, dir = tmpdir(t)): Promise<Running> {
  const r = runArgs(dir, o);
  const p = new Proc(r.args, CHILD_ENV);
  t.teardown(async () => {
    if (!p.alive) return;
    p.signal('SIGTERM');
    try {
      await p.exit(15_000);
    } catch {
      p.signal('SIGKILL');
    }
  });
  if (o.waitReady !== false) await p.waitLog('ready');
  return { p, dir, ...r, env: { ...CHILD_ENV, HANDOFF_ADMIN_SOCKET: r.sock } };
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `bin/handoff ARGS` to completion. */
export async function cli(args: string[], env: NodeJS.ProcessEnv, ms = 30_000): Promise<CliResult> {
  const p = new Proc([BIN, ...args], env);
  const { code } = await p.exit(ms);
  return { code, stdout: p.stdout, stderr: p.stderr };
}

export async function status(env: NodeJS.ProcessEnv): Promise<SupervisorStatus> {
  const r = await cli(['status', '--json'], env);
  if (r.code !== 0) throw new Error(`status failed (${r.code}): ${r.stderr}`);
  return JSON.parse(r.stdout) as SupervisorStatus;
}

export function portOf(s: SupervisorStatus): number {
  const m = /:(\d+)$/.exec(s.listeners[0]?.address ?? '');
  if (!m) throw new Error(`no tcp listener in ${JSON.stringify(s.listeners)}`);
  return Number(m[1]);
}

/** GET http://127.0.0.1:port/path → status and parsed JSON (or text). */
export function httpGet(port: number, p: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('timeout')));
  });
}

/** An admin request over the socket with a raw body. */
export const admin = (sock: string, method: string, p: string, body?: string): Promise<{ status: number; body: string }> => adminRequest(sock, method, p, body);

/** True while `pid` runs (a zombie waiting for its reaper counts as gone). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^\d+ \(.*\) [ZX] /s.test(stat);
  } catch {
    return false;
  }
}
