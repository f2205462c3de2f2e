/** The parent side of the supervisor host: spawn it, call it, and learn when it dies. */

import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import type { HandoffEvent, HandoffRecord, SupervisorStatus, UpgradeRequest } from '../../supervisor/types.js';
import type { HostCrash, HostMemory, HostMessage, HostRequest, HostResults, HostSupervisorOptions } from './host-protocol.js';

type Pending = { resolve: (v: HostResults[keyof HostResults]) => void; reject: (e: Error) => void };
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

export class SupervisorHost {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private onEvent: ((e: HandoffEvent) => void) | undefined;
  /** Resolves with a description of how the host ended. */
  readonly exited: Promise<string>;
  private gone: string | undefined;

  private constructor(private readonly proc: ChildProcess) {
    proc.on('message', (raw: unknown) => {
      const m = raw as HostMessage;
      if ('event' in m) {
        this.onEvent?.(m.event);
        return;
      }
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.ok) p.resolve(m.result);
      else p.reject(new Error(m.error));
    });
    this.exited = new Promise((resolve) => {
      proc.on('exit', (code, signal) => {
        this.gone = signal ? `killed by ${signal}` : `exited with code ${String(code)}`;
        for (const p of this.pending.values()) p.reject(new Error(`the supervisor host ${this.gone}`));
        this.pending.clear();
        resolve(this.gone);
      });
    });
  }

  /** Forks the host with its stdout and stderr (and so its services') appended to `logFile`. */
  static spawn(hostPath: string, logFile: string, opts: { exposeGc?: boolean; cwd?: string; execArgv?: string[] } = {}): SupervisorHost {
    const fd = fs.openSync(logFile, 'a');
    try {
      const proc = fork(hostPath, [], {
        stdio: ['ignore', fd, fd, 'ipc'],
        // Not the parent's flags (a test runner's loaders, say): the host is a plain Node process.
        execArgv: [...(opts.execArgv ?? []), ...(opts.exposeGc ? ['--expose-gc'] : [])],
        ...(opts.cwd !== undefined ? { cwd: opts.cwd } : {}),
      });
      return new SupervisorHost(proc);
    } finally {
      fs.closeSync(fd);
    }
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  private call<K extends keyof HostResults>(req: DistributiveOmit<Extract<HostRequest, { op: K }>, 'id'>): Promise<HostResults[K]> {
    if (this.gone !== undefined) return Promise.reject(new Error(`the supervisor host ${this.gone}`));
    const id = this.nextId++;
    return new Promise<HostResults[K]>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: HostResults[keyof HostResults]) => void, reject });
      this.proc.send({ ...req, id });
    });
  }

  start(opts: HostSupervisorOptions): Promise<SupervisorStatus> {
    return this.call<'start'>({ op: 'start', opts });
  }

  /** Runs one handoff; `onEvent` sees its progress events. */
  upgrade(req: UpgradeRequest, onEvent?: (e: HandoffEvent) => void): Promise<HandoffRecord> {
    this.onEvent = onEvent;
    return this.call<'upgrade'>({ op: 'upgrade', req }).finally(() => {
      this.onEvent = undefined;
    });
  }

  status(): Promise<SupervisorStatus> {
    return this.call<'status'>({ op: 'status' });
  }

  /** Kills the incumbent with SIGKILL; resolves when S has scheduled the cold start of a fresh one. */
  crash(): Promise<HostCrash> {
    return this.call<'crash'>({ op: 'crash' });
  }

  memory(gc = false): Promise<HostMemory> {
    return this.call<'memory'>({ op: 'memory', gc });
  }

  /** Stops S (its incumbent drains and exits) and waits for the host to exit. */
  async stop(): Promise<void> {
    await this.call<'stop'>({ op: 'stop' });
    await this.exited;
  }

  /** The last resort: S's children are killed by the host when its IPC channel goes. */
  async kill(): Promise<void> {
    if (this.gone !== undefined) return;
    if (this.proc.connected) this.proc.disconnect();
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 3000);
    await this.exited;
    clearTimeout(t);
  }
}
