/**
 * Reversible accept needs more than one descriptor per inherited listener.
 *
 * Stopping accept means closing the listening handle, and in Node that closes the descriptor: a
 * net.Server that was close()d cannot listen({fd}) on the same fd again (measured on Node 20:
 * EINVAL). An abort must be able to reopen accept, so the library never listens on the inherited
 * descriptors themselves: it keeps them as masters and listens on duplicates, closing only a
 * duplicate when it stops accepting. The socket stays open (in S and in the masters) and new
 * connections queue in the kernel until someone accepts again.
 *
 * Node has no dup(2). A short-lived helper process inherits the masters and sends them back over
 * an IPC channel (SCM_RIGHTS): each received handle is a new descriptor of the same socket, marked
 * close-on-exec. The helper wraps the descriptors without reading or accepting, so it never takes a
 * connection. One helper run costs ~50-70 ms, so the pool keeps a spare per listener and refills in
 * the background: reopening accept after an abort does not wait for a process spawn.
 */

import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { InheritedListener } from './contract.js';

/** A libuv stream handle (TCPWrap or PipeWrap) received over IPC; only its fd is used directly. */
export interface RawHandle {
  readonly fd: number;
}

const HELPER_SOURCE = `
'use strict';
const net = require('net');
const counts = JSON.parse(process.argv[1]);
process.on('disconnect', () => process.exit(0));
const queue = [];
counts.forEach((count, i) => {
  if (count <= 0) return;
  const handle = new net.Socket({ fd: 4 + i, readable: false, writable: false, manualStart: true })._handle;
  for (let j = 0; j < count; j++) queue.push([i, handle]);
});
(function next() {
  const item = queue.shift();
  if (!item) return;
  process.send({ i: item[0] }, item[1], (err) => {
    if (err) { process.stderr.write('fd-dup helper: ' + err.message + '\\n'); process.exit(1); }
    next();
  });
})();
`;

export interface DuplicateOptions {
  /** Bound on one helper run (default 10 s). */
  timeoutMs?: number;
}

/**
 * Duplicates `fds[i]` `counts[i]` times through a helper process. Resolves with the new handles per
 * input fd. Rejects when the helper cannot be spawned, fails, or exceeds the timeout.
 */
export function duplicateFds(fds: readonly number[], counts: readonly number[], opts: DuplicateOptions = {}): Promise<RawHandle[][]> {
  const total = counts.reduce((a, b) => a + b, 0);
  const got: RawHandle[][] = fds.map(() => []);
  if (total === 0) return Promise.resolve(got);
  const env: NodeJS.ProcessEnv = { ...process.env };
  // The helper is plain CommonJS and needs no loader, preload or coverage of the parent.
  delete env.NODE_OPTIONS;
  delete env.NODE_V8_COVERAGE;
  return new Promise((resolve, reject) => {
    let received = 0;
    let settled = false;
    let stderr = '';
    const child = spawn(process.execPath, ['-e', HELPER_SOURCE, JSON.stringify(counts)], {
      stdio: ['ignore', 'ignore', 'pipe', 'ipc', ...fds],
      env,
    });
    const timer = setTimeout(() => finish(new Error(`fd-dup helper did not answer within ${opts.timeoutMs ?? 10_000} ms`)), opts.timeoutMs ?? 10_000);
    timer.unref();
    const finish = (err?: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (child.connected) child.disconnect();
      if (err) {
        child.kill('SIGKILL');
        reject(err);
      } else {
        resolve(got);
      }
    };
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      if (stderr.length < 4096) stderr += d;
    });
    child.on('message', (msg: unknown, handle: unknown) => {
      const i = (msg as { i?: unknown } | null)?.i;
      const h = handle as RawHandle | undefined;
      if (typeof i !== 'number' || !h || typeof h.fd !== 'number' || h.fd < 0 || got[i] === undefined) {
        finish(new Error('fd-dup helper sent something that is not a handle'));
        return;
      }
      got[i]!.push(h);
      received++;
      if (received === total) finish();
    });
    child.on('error', (err) => finish(err));
    child.on('exit', (code, signal) => {
      // Messages may still be queued behind the exit; give them the rest of this turn.
      setImmediate(() => {
        if (received < total) finish(new Error(`fd-dup helper exited (${signal ?? code}) after ${received} of ${total} handles${stderr ? `: ${stderr.trim().split('\n')[0]}` : ''}`));
      });
    });
  });
}

/** True when the handle is a TCP wrap (net.Server can adopt it as is); otherwise a pipe. */
export function isTcpHandle(h: RawHandle): boolean {
  return (Object.getPrototypeOf(h) as { constructor?: { name?: string } } | null)?.constructor?.name === 'TCP';
}

/**
 * Handles whose descriptor was handed over by number (pipes) stay referenced here: the wrap must
 * never be closed, since its fd number now belongs to whoever listens on it.
 */
const adoptedByNumber: RawHandle[] = [];

/** Records that `h`'s descriptor is now owned by someone who got it by number. */
export function adoptByNumber(h: RawHandle): number {
  adoptedByNumber.push(h);
  return h.fd;
}

/** A pool of duplicates of the inherited listeners, refilled in the background. */
export class ListenerPool {
  private readonly pools = new Map<string, RawHandle[]>();
  private inflight: Promise<void> | undefined;

  constructor(
    readonly listeners: readonly InheritedListener[],
    private readonly logger: Logger,
    /** Duplicates kept ready per listener. */
    private readonly spare = 1,
  ) {
    for (const l of listeners) this.pools.set(l.name, []);
  }

  has(name: string): boolean {
    return this.pools.has(name);
  }

  /** Starts filling every pool to `spare` (+ `extra` for the names given); resolves when done. */
  fill(extra: ReadonlyMap<string, number> = new Map()): Promise<void> {
    if (this.inflight) {
      // One helper at a time; a request made meanwhile is served by a second round if still short.
      return this.inflight.then(() => (this.shortOf(extra) ? this.fill(extra) : undefined));
    }
    if (!this.shortOf(extra)) return Promise.resolve();
    const counts = this.listeners.map((l) => Math.max(0, this.spare + (extra.get(l.name) ?? 0) - (this.pools.get(l.name)?.length ?? 0)));
    const run = duplicateFds(
      this.listeners.map((l) => l.fd),
      counts,
    ).then((got) => {
      this.listeners.forEach((l, i) => this.pools.get(l.name)?.push(...(got[i] ?? [])));
    });
    this.inflight = run.finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /** A fresh duplicate of the named listener (waits for a helper run only when the pool is empty). */
  async take(name: string): Promise<RawHandle> {
    const pool = this.pools.get(name);
    if (!pool) throw new Error(`no inherited listener named ${JSON.stringify(name)}`);
    for (let attempt = 0; pool.length === 0; attempt++) {
      if (attempt >= 3) throw new Error(`could not duplicate listener ${name}`);
      await this.fill(new Map([[name, 1]]));
    }
    const h = pool.shift()!;
    if (pool.length < this.spare) {
      this.fill().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'refilling the listener pool failed'));
    }
    return h;
  }

  private shortOf(extra: ReadonlyMap<string, number>): boolean {
    return this.listeners.some((l) => (this.pools.get(l.name)?.length ?? 0) < this.spare + (extra.get(l.name) ?? 0));
  }
}
