/** What the demo and the handoff bench set up alike: the temp layout, S's options, the kv command. */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DEFAULT_OPTIONS, type SupervisorStatus } from '../../supervisor/types.js';
import type { HostSupervisorOptions } from './host-protocol.js';
import { httpRequest } from '../../load/index.js';
import type { BuiltPaths } from './paths.js';

export const SHARDS = 4;

export interface Layout {
  tempDir: string;
  dataDir: string;
  logFile: string;
  lockPath: string;
  stateDir: string;
}

export function makeLayout(prefix: string): Layout {
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const l: Layout = {
    tempDir,
    dataDir: path.join(tempDir, 'data'),
    logFile: path.join(tempDir, 'supervisor.log'),
    lockPath: path.join(tempDir, 'data.lock'),
    stateDir: path.join(tempDir, 'state'),
  };
  fs.mkdirSync(l.dataDir);
  return l;
}

/** The kv example's command line (after `node`) for one build id, and its fault flags if any. */
export function kvArgs(paths: BuiltPaths, layout: Layout, build: string, faults: readonly string[] = []): string[] {
  return [paths.kvMain, '--data', layout.dataDir, '--shards', String(SHARDS), '--build-id', build, ...faults.flatMap((f) => ['--fault', f])];
}

export function supervisorOptions(paths: BuiltPaths, layout: Layout, port: number, build: string): HostSupervisorOptions {
  return {
    ...DEFAULT_OPTIONS,
    // Bounded for a demo: a drain that needs more than 5 s, or a handoff more than 30 s, fails it.
    drainGraceMs: 5_000,
    deadlineMs: 30_000,
    command: process.execPath,
    args: kvArgs(paths, layout, build),
    listen: [`http=tcp://127.0.0.1:${port}`],
    lockPath: layout.lockPath,
    stateDir: layout.stateDir,
    cwd: layout.tempDir,
    allowExec: [],
  };
}

/** The real port of S's first listener (asked as port 0). */
export function portOf(status: SupervisorStatus): number {
  const addr = status.listeners[0]?.address ?? '';
  const m = /^tcp:\/\/127\.0\.0\.1:(\d+)$/.exec(addr);
  if (!m?.[1]) throw new Error(`unexpected listener address ${JSON.stringify(addr)}`);
  return Number(m[1]);
}

/** The build id the service answers `GET /info` with, over a new connection. */
export async function infoBuild(port: number, timeoutMs = 5_000): Promise<string> {
  const r = await httpRequest(port, '127.0.0.1', 'GET', '/info', undefined, false, timeoutMs);
  if (r.status !== 200) throw new Error(`GET /info: status ${r.status}`);
  const info = JSON.parse(r.body) as { build_id?: unknown };
  return typeof info.build_id === 'string' ? info.build_id : '?';
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What a Guard rejects with when its AbortSignal fires (Ctrl-C). */
export class Interrupted extends Error {
  override name = 'Interrupted';
}

/** Races work against the host's death, a watchdog and an interruption, so that no await can hang the run. */
export class Guard {
  private timer: NodeJS.Timeout | undefined;
  private readonly expired: Promise<never>;
  private readonly died: Promise<never>;
  private readonly interrupted: Promise<never>;

  constructor(hostExited: Promise<string>, limitMs: number, what: string, signal?: AbortSignal) {
    this.expired = new Promise<never>((_, reject) => {
      this.timer = setTimeout(() => reject(new Error(`${what} did not finish within ${Math.round(limitMs / 1000)} s`)), limitMs);
    });
    this.died = hostExited.then((how) => {
      throw new Error(`the supervisor host ${how} (see the log)`);
    });
    this.interrupted = new Promise<never>((_, reject) => {
      const fire = (): void => reject(new Interrupted(`interrupted (${String(signal?.reason ?? 'abort')})`));
      if (signal?.aborted) fire();
      else signal?.addEventListener('abort', fire, { once: true });
    });
    this.expired.catch(() => undefined);
    this.died.catch(() => undefined);
    this.interrupted.catch(() => undefined);
  }

  run<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.expired, this.died, this.interrupted]);
  }

  /** Only a timeout: for steps that must go on after the host is gone (stopping the load). */
  bounded<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.expired]);
  }

  /** A timeout and an interruption, not the host's death: for stopping the host, whose exit is the point. */
  interruptible<T>(p: Promise<T>): Promise<T> {
    return Promise.race([p, this.expired, this.interrupted]);
  }

  clear(): void {
    clearTimeout(this.timer);
  }
}
