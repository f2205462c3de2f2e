/**
 * One service process spawned by S: its listeners at fds 3..3+n-1, the control channel (a Unix
 * socketpair end) at fd 3+n, the contract environment, and a promise of its reaped exit.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { Channel } from '../protocol/channel.js';
import type { Hello } from '../protocol/messages.js';

export type ChildRole = 'cold-start' | 'successor';

export interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Set when the process could not be started at all (e.g. ENOENT). */
  spawnError?: string;
}

export interface SpawnSpec {
  command: string;
  args: string[];
  role: ChildRole;
  /** fds S holds, in listener order, with their names. */
  listeners: ReadonlyArray<{ name: string; fd: number }>;
  env: NodeJS.ProcessEnv;
  cwd?: string;
  lockPath?: string;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  /** How long S lets the incumbent drain on stop (SIGTERM); the library drains within it. */
  drainGraceMs: number;
}

/** Variables S owns; a stale copy from S's own environment must not reach a child. */
const CONTRACT_VARS = ['LISTEN_FDS', 'LISTEN_FDNAMES', 'LISTEN_PID', 'HANDOFF_SOCK_FD', 'HANDOFF_ROLE', 'HANDOFF_LOCK_PATH', 'HANDOFF_HEARTBEAT_MS', 'HANDOFF_HEARTBEAT_TIMEOUT_MS', 'HANDOFF_DRAIN_GRACE_MS'];

export function childEnv(spec: SpawnSpec): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...spec.env };
  for (const k of CONTRACT_VARS) delete env[k];
  const n = spec.listeners.length;
  env['LISTEN_FDS'] = String(n);
  env['LISTEN_FDNAMES'] = spec.listeners.map((l) => l.name).join(':');
  env['HANDOFF_SOCK_FD'] = String(3 + n);
  env['HANDOFF_ROLE'] = spec.role;
  env['HANDOFF_HEARTBEAT_MS'] = String(spec.heartbeatMs);
  env['HANDOFF_HEARTBEAT_TIMEOUT_MS'] = String(spec.heartbeatTimeoutMs);
  env['HANDOFF_DRAIN_GRACE_MS'] = String(spec.drainGraceMs);
  if (spec.lockPath !== undefined) env['HANDOFF_LOCK_PATH'] = spec.lockPath;
  return env;
}

export class ServiceChild {
  readonly proc: ChildProcess;
  readonly channel: Channel;
  readonly role: ChildRole;
  readonly startedAt = new Date();
  /** The pid, or 0 when spawning failed. */
  readonly pid: number;
  hello: Hello | undefined;
  exitInfo: ChildExit | undefined;
  /** Resolves once the process has been reaped (or never started). */
  readonly exited: Promise<ChildExit>;

  constructor(spec: SpawnSpec) {
    this.role = spec.role;
    const stdio: Array<'ignore' | 'inherit' | 'pipe' | number> = ['ignore', 'inherit', 'inherit', ...spec.listeners.map((l) => l.fd), 'pipe'];
    this.proc = spawn(spec.command, spec.args, { stdio, env: childEnv(spec), cwd: spec.cwd });
    this.pid = this.proc.pid ?? 0;
    const sock = this.proc.stdio[3 + spec.listeners.length] as Socket;
    this.channel = new Channel(sock);
    this.exited = new Promise((resolve) => {
      let spawnError: string | undefined;
      this.proc.once('error', (err: NodeJS.ErrnoException) => {
        // 'error' without a pid: the process never existed, and no 'exit' will follow.
        if (this.proc.pid === undefined) spawnError = err.code ?? err.message;
      });
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (this.exitInfo) return;
        this.exitInfo = spawnError === undefined ? { code, signal } : { code, signal, spawnError };
        resolve(this.exitInfo);
      };
      this.proc.once('exit', done);
      this.proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => done(code, signal));
    });
    // The channel of a dead process cannot say anything more.
    void this.exited.then(() => this.channel.close());
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive && this.pid > 0) {
      try {
        process.kill(this.pid, signal);
      } catch {
        // Already gone: the exit event is on its way.
      }
    }
  }

  /** SIGKILL and wait for the reap. */
  async killAndReap(): Promise<ChildExit> {
    this.kill('SIGKILL');
    return this.exited;
  }

  /** Waits `graceMs` for a voluntary exit, then SIGTERM, then SIGKILL after `killAfterMs`. */
  async retire(graceMs: number, killAfterMs: number, onEscalate?: (signal: NodeJS.Signals) => void): Promise<ChildExit> {
    if (!this.alive) return this.exited;
    const step = (ms: number): Promise<boolean> =>
      new Promise((resolve) => {
        const t = setTimeout(() => resolve(false), ms);
        void this.exited.then(() => {
          clearTimeout(t);
          resolve(true);
        });
      });
    if (await step(graceMs)) return this.exited;
    onEscalate?.('SIGTERM');
    this.kill('SIGTERM');
    if (await step(killAfterMs)) return this.exited;
    onEscalate?.('SIGKILL');
    return this.killAndReap();
  }

  describeExit(): string {
    const e = this.exitInfo;
    if (!e) return 'running';
    if (e.spawnError) return `could not start (${e.spawnError})`;
    return e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`;
  }
}
