/**
 * Reversible accept needs more than one descriptor per inherited listener.
 *
 * Stopping accept means closing the listening handle, and in Node that closes the descriptor: a
 * net.Server that was close()d cannot listen({fd}) on the same fd again (measured on Node 20:
 * EINVAL). An abort must be able to reopen accept, so before the library closes a descriptor it
 * holds another one of the same socket to listen on next. The socket stays open (in S) and new
 * connections queue in the kernel until someone accepts again.
 *
 * Node has no dup(2). A short-lived helper process inherits the masters and sends them back over
 * an IPC channel (SCM_RIGHTS): each received handle is a new descriptor of the same socket, marked
 * close-on-exec. The helper wraps the descriptors without reading or accepting, so it never takes a
 * connection. One helper run costs ~50-80 ms, so it is kept off the critical path: the first listen
 * uses the inherited descriptor itself, and a spare duplicate per listener is made in the background
 * for the next one (reopening accept after an abort does not wait for a process spawn).
 */

import { spawn } from 'node:child_process';
import type { Logger } from 'pino';
import type { InheritedListener } from '../shared/contract.js';

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
      got[i].push(h);
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

interface Slot {
  name: string;
  /** The inherited descriptor. */
  master: number;
  masterState: 'unused' | 'in-use' | 'closed';
  /** Duplicates ready to listen on. */
  spares: RawHandle[];
  /** Descriptors handed out by take() and not yet reported closed (other than the master). */
  inUse: Set<number>;
}

/**
 * The descriptors of each inherited listener: the master is handed out first (the first listen
 * needs no helper run), then duplicates, one kept spare and refilled in the background.
 *
 * A duplicate is made from any descriptor of the socket that is open when the helper is spawned:
 * a spare, the master, or one being listened on. spawn() returns only after the helper has
 * exec'd, holding its own copies, so closing that descriptor afterwards cannot race the helper.
 */
export class ListenerPool {
  private readonly slots = new Map<string, Slot>();
  private inflight: Promise<void> | undefined;

  constructor(
    readonly listeners: readonly InheritedListener[],
    private readonly logger: Logger,
    /** Duplicates kept ready per listener. */
    private readonly spare = 1,
  ) {
    for (const l of listeners) this.slots.set(l.name, { name: l.name, master: l.fd, masterState: 'unused', spares: [], inUse: new Set() });
  }

  has(name: string): boolean {
    return this.slots.has(name);
  }

  /** Spares ready for `name`. */
  spares(name: string): number {
    return this.slots.get(name)?.spares.length ?? 0;
  }

  /** Fills every listener's spares to `spare` (+ `extra` for the names given); resolves when done. */
  fill(extra: ReadonlyMap<string, number> = new Map()): Promise<void> {
    if (this.inflight) {
      // One helper at a time; a request made meanwhile is served by a second round if still short.
      return this.inflight.then(() => (this.shortOf(extra).length > 0 ? this.fill(extra) : undefined));
    }
    const short = this.shortOf(extra);
    if (short.length === 0) return Promise.resolve();
    const sources: number[] = [];
    const counts: number[] = [];
    const slots: Slot[] = [];
    for (const { slot, count } of short) {
      const src = this.source(slot);
      if (src === undefined) {
        this.logger.error({ listener: slot.name }, 'no open descriptor left to duplicate this listener from');
        continue;
      }
      slots.push(slot);
      sources.push(src);
      counts.push(count);
    }
    if (slots.length === 0) return Promise.reject(new Error(`no open descriptor to duplicate ${short.map((x) => x.slot.name).join(', ')} from`));
    // duplicateFds spawns synchronously: from here on the sources may be closed.
    const run = duplicateFds(sources, counts).then((got) => {
      slots.forEach((slot, i) => slot.spares.push(...(got[i] ?? [])));
    });
    this.inflight = run.finally(() => {
      this.inflight = undefined;
    });
    return this.inflight;
  }

  /**
   * A descriptor to listen on (the caller owns it until it reports it closed): the master the
   * first time, then a spare (waiting for a helper run only when none is ready).
   */
  async take(name: string): Promise<RawHandle> {
    const slot = this.slots.get(name);
    if (!slot) throw new Error(`no inherited listener named ${JSON.stringify(name)}`);
    let h: RawHandle | undefined;
    if (slot.spares.length === 0 && slot.masterState === 'unused') {
      slot.masterState = 'in-use';
      h = { fd: slot.master };
    }
    for (let attempt = 0; !h && slot.spares.length === 0; attempt++) {
      if (attempt >= 3) throw new Error(`could not duplicate listener ${name}`);
      // A fill already running (the prefetch) usually brings what we need: wait for it first.
      if (this.inflight) await this.inflight.catch(() => undefined);
      else await this.fill(new Map([[name, 1]]));
    }
    if (!h) {
      h = slot.spares.shift()!;
      slot.inUse.add(h.fd);
    }
    if (slot.spares.length < this.spare) {
      this.fill().catch((err: unknown) => this.logger.warn({ err: (err as Error).message }, 'refilling the listener pool failed'));
    }
    return h;
  }

  /** The descriptor `fd` of `name`, given by take(), was closed. */
  closed(name: string, fd: number): void {
    const slot = this.slots.get(name);
    if (!slot) return;
    if (fd === slot.master && slot.masterState === 'in-use') slot.masterState = 'closed';
    else slot.inUse.delete(fd);
  }

  private source(slot: Slot): number | undefined {
    if (slot.spares[0]) return slot.spares[0].fd;
    if (slot.masterState !== 'closed') return slot.master;
    for (const fd of slot.inUse) return fd;
    return undefined;
  }

  private shortOf(extra: ReadonlyMap<string, number>): Array<{ slot: Slot; count: number }> {
    const out: Array<{ slot: Slot; count: number }> = [];
    for (const slot of this.slots.values()) {
      const count = this.spare + (extra.get(slot.name) ?? 0) - slot.spares.length;
      if (count > 0) out.push({ slot, count });
    }
    return out;
  }
}
