/**
 * One service process spawned by S: its listeners at fds 3..3+n-1, the control channel (a Unix
 * socketpair end) at fd 3+n, the contract environment, and a promise of its reaped exit.
 *
 * The OS process comes from a `Launcher`: `spawnLauncher` (the real one) by default; in-process
 * tests pass their own to drive S's real channel and router over real sockets without a process.
 */

import { spawn } from 'node:child_process';
import type { EventEmitter } from 'node:events';
import type { Duplex, Readable } from 'node:stream';
import { Channel } from '../protocol/channel.js';
import type { Hello } from '../protocol/messages.js';
import type { Timer } from './clock.js';
import { contractEnv, controlFd, type StartRole } from '../shared/contract.js';
import { StderrTail } from './stderr-tail.js';

export type ChildRole = StartRole;

/** How long a reaped child's control socket and stderr may take to end before S goes on without the rest. */
const LAST_WORDS_MS = 200;

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

/** What S needs of an OS process: a pid, signals, and the events of a ChildProcess. */
export interface ProcessHandle extends Pick<EventEmitter, 'once'> {
  readonly pid?: number | undefined;
  kill(signal: NodeJS.Signals): boolean;
}

export interface Launched {
  proc: ProcessHandle;
  /** S's end of the control socketpair. */
  control: Duplex;
  /** The child's stderr, when S captures it (forwarded to S's own stderr, its tail kept). */
  stderr?: Readable | null;
}

export type Launcher = (spec: SpawnSpec) => Launched;

/** The child's environment: the contract (src/shared/contract.ts) over what S passes on. */
export function childEnv(spec: SpawnSpec): NodeJS.ProcessEnv {
  return contractEnv(spec.env, { ...spec, listenerNames: spec.listeners.map((l) => l.name) });
}

/** The real launcher: a process with the listeners, the socketpair, and stderr piped through S. */
export const spawnLauncher: Launcher = (spec) => {
  const stdio: Array<'ignore' | 'inherit' | 'pipe' | number> = ['ignore', 'inherit', 'pipe', ...spec.listeners.map((l) => l.fd), 'pipe'];
  const proc = spawn(spec.command, spec.args, { stdio, env: childEnv(spec), cwd: spec.cwd });
  return { proc, control: proc.stdio[controlFd(spec.listeners.length)] as Duplex, stderr: proc.stderr };
};

/** A timer whose callback runs after the poll phase that follows it: what waited unread is read first. */
function afterIo(ms: number, fn: () => void): Timer {
  let immediate: NodeJS.Immediate | undefined;
  const timeout = setTimeout(() => {
    immediate = setImmediate(fn);
  }, ms);
  return {
    cancel: () => {
      clearTimeout(timeout);
      if (immediate) clearImmediate(immediate);
    },
  };
}

export class ServiceChild {
  readonly proc: ProcessHandle;
  readonly channel: Channel;
  readonly role: ChildRole;
  readonly command: string[];
  readonly startedAt = new Date();
  /** The pid, or 0 when spawning failed. */
  readonly pid: number;
  /** The last lines the process wrote to stderr (stack frames left out). */
  readonly stderrTail = new StderrTail();
  /** Set when S answers the child's Hello: its build id, decoded once. */
  private acceptedBuildId: string | undefined;
  exitInfo: ChildExit | undefined;
  /** Resolves once the process has been reaped (or never started). */
  readonly exited: Promise<ChildExit>;

  /**
   * `timer` bounds the wait for a dead child's last words; S passes its Clock's, which counts only
   * time S ran and decides after the poll phase (a Ready still unread after a stall must count).
   */
  constructor(spec: SpawnSpec, launch: Launcher = spawnLauncher, timer: (ms: number, fn: () => void) => Timer = afterIo) {
    this.role = spec.role;
    this.command = [spec.command, ...spec.args];
    const { proc, control, stderr } = launch(spec);
    this.proc = proc;
    this.pid = proc.pid ?? 0;
    this.channel = new Channel(control);
    if (stderr) this.stderrTail.follow(stderr, process.stderr);
    this.exited = new Promise((resolve) => {
      let spawnError: string | undefined;
      proc.once('error', (err: NodeJS.ErrnoException) => {
        // 'error' without a pid: the process never existed, and no 'exit' will follow.
        if (proc.pid === undefined) spawnError = err.code ?? err.message;
      });
      let settled = false;
      const done = (code: number | null, signal: NodeJS.Signals | null): void => {
        if (settled) return;
        settled = true;
        const info: ChildExit = spawnError === undefined ? { code, signal } : { code, signal, spawnError };
        // Its last words may still be unread: the frames it sent before it died (a Ready that
        // must count) and the end of its stderr (for the failure report). Its exit is told only
        // once both are read to their end, or after a short bound: a grandchild holding either
        // open must not delay the reap for long.
        let ended = false;
        const finish = (): void => {
          if (ended) return;
          ended = true;
          bound.cancel();
          this.exitInfo = info;
          resolve(info);
        };
        const bound = timer(LAST_WORDS_MS, finish);
        const pending: Array<Promise<unknown>> = [];
        if (stderr && !stderr.readableEnded && !stderr.destroyed) pending.push(new Promise((r) => stderr.once('close', r)));
        if (!this.channel.closed) pending.push(new Promise((r) => this.channel.once('close', r)));
        void Promise.all(pending).then(finish);
      };
      proc.once('exit', done);
      proc.once('close', (code: number | null, signal: NodeJS.Signals | null) => done(code, signal));
    });
    // The channel of a dead process cannot say anything more.
    void this.exited.then(() => this.channel.close());
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** True once the child said Hello and S answered: only then may S send it anything else. */
  get acked(): boolean {
    return this.acceptedBuildId !== undefined;
  }

  /** The build id its Hello gave (decoded once, as UTF-8), once S answered that Hello. */
  get buildId(): string | undefined {
    return this.acceptedBuildId;
  }

  /** S answered this Hello (HelloAck): the child is a peer from now on. */
  accept(hello: Hello): void {
    this.acceptedBuildId = Buffer.from(hello.build_id).toString('utf8');
  }

  kill(signal: NodeJS.Signals): void {
    if (this.alive && this.pid > 0) {
      try {
        this.proc.kill(signal);
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
