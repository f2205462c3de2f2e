/**
 * The data-directory lock: the one thing that decides who may write. A proper-lockfile directory
 * (mkdir is atomic) kept fresh by touching its mtime. The supervisor arbitrates it: it never lets a
 * successor take it before the incumbent sealed, and clears it (clearLock) only after it has reaped
 * a dead holder. Both sides import this module (so it lives in src/shared/).
 *
 * Tracing: when HANDOFF_LOCK_TRACE names a file, every acquire, release and clear appends one JSON
 * line to it synchronously, with a monotonic timestamp shared by all processes of the machine. An
 * acquire is recorded after the lock is taken and a release before it is let go, so the recorded
 * intervals contain the real ones; checkLockTrace then proves no two of them overlap.
 */

import fs from 'node:fs';
import path from 'node:path';
import lockfile from 'proper-lockfile';
import { DEFAULT_HEARTBEAT_TIMEOUT_MS } from './contract.js';

/** The shortest default stale time (ARCHITECTURE.md, "The data-dir lock"). */
export const MIN_STALE_MS = 20_000;
/** The default stale time is this many heartbeat timeouts, when that is longer than MIN_STALE_MS. */
export const STALE_HEARTBEAT_TIMEOUTS = 4;

/** A lock whose mtime is older than this is stale: well above any heartbeat timeout, so S decides first. */
export function defaultStaleMs(heartbeatTimeoutMs: number = DEFAULT_HEARTBEAT_TIMEOUT_MS): number {
  return Math.max(MIN_STALE_MS, STALE_HEARTBEAT_TIMEOUTS * heartbeatTimeoutMs);
}

export type LockTraceEventName = 'acquire' | 'release' | 'clear';

export interface LockTraceEvent {
  pid: number;
  event: LockTraceEventName;
  /** For `clear`: the pid of the dead holder whose lock was removed. */
  holder?: number;
  /** process.hrtime.bigint() as a decimal string (CLOCK_MONOTONIC, comparable across processes). */
  t_ns: string;
}

/** Appends one event to the trace file named by HANDOFF_LOCK_TRACE, if any. Never throws. */
export function traceLockEvent(event: LockTraceEventName, holder?: number, env: NodeJS.ProcessEnv = process.env): void {
  const file = env.HANDOFF_LOCK_TRACE;
  if (!file) return;
  const rec: LockTraceEvent = { pid: process.pid, event, t_ns: process.hrtime.bigint().toString() };
  if (holder !== undefined) rec.holder = holder;
  try {
    fs.appendFileSync(file, `${JSON.stringify(rec)}\n`);
  } catch {
    // Tracing is a test aid; it must never take a service down.
  }
}

export class LockHeldError extends Error {
  readonly code = 'ELOCKED';
  constructor(
    readonly lockPath: string,
    /** The holder's pid from the owner record, when it had written one. */
    readonly holderPid?: number,
  ) {
    super(`the data-dir lock ${lockPath} is held by ${holderPid !== undefined ? `pid ${holderPid}` : 'another process'}`);
    this.name = 'LockHeldError';
  }
}

/**
 * Who holds the lock: proper-lockfile records nobody, so each holder writes `owner` inside the lock
 * directory right after taking it. The supervisor removes a lock only when this names a child it
 * has reaped; any other holder (a copy started by hand, an orphan of another supervisor) is left
 * alone. A holder killed between the mkdir and this write leaves no owner: its lock is then not
 * provably dead's, and waits for proper-lockfile's stale rule.
 */
export interface LockOwner {
  pid: number;
}

const OWNER_FILE = 'owner';

function ownerPath(lockPath: string): string {
  return path.join(lockPath, OWNER_FILE);
}

/** The owner record of the lock at `lockPath`; undefined when there is no lock or no record. */
export function lockOwner(lockPath: string): LockOwner | undefined {
  try {
    const v = JSON.parse(fs.readFileSync(ownerPath(lockPath), 'utf8')) as Partial<LockOwner>;
    return typeof v.pid === 'number' && Number.isInteger(v.pid) && v.pid > 0 ? { pid: v.pid } : undefined;
  } catch {
    return undefined;
  }
}

/**
 * proper-lockfile removes its lock directory with rmdir, which an owner record would make fail
 * (ENOTEMPTY): on release, at exit, and when taking over a stale lock. Its `fs` option lets the
 * removal take the record along.
 */
const lockFs = {
  ...fs,
  rmdir: (p: fs.PathLike, cb: (err: NodeJS.ErrnoException | null) => void): void => fs.rm(p, { recursive: true }, cb),
  rmdirSync: (p: fs.PathLike): void => fs.rmSync(p, { recursive: true }),
};

export interface DataDirLockOptions {
  /** Stale threshold in ms (default: defaultStaleMs(heartbeatTimeoutMs)). */
  staleMs?: number;
  /** How often the mtime is refreshed (default: staleMs / 4). */
  updateMs?: number;
  heartbeatTimeoutMs?: number;
  /**
   * Called when the lock was lost while held (its directory removed or touched by someone else, or
   * it could not be refreshed in time). The default logs nothing and exits the process with code 1:
   * a process that lost its lock must stop writing at once.
   */
  onCompromised?: (err: Error) => void;
}

/** Locks held by this process, so that an exit records their release in the trace. */
const heldLocks = new Set<DataDirLock>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  // A plain 'exit' listener runs before signal-exit's handlers (which proper-lockfile uses to remove
  // its lock directories at exit), so the release is recorded before the directory goes.
  process.on('exit', () => {
    for (const _ of heldLocks) traceLockEvent('release');
    heldLocks.clear();
  });
}

/** One process's handle on the data-dir lock. Not reentrant: acquire while held throws. */
export class DataDirLock {
  readonly staleMs: number;
  readonly updateMs: number;
  private releaseFn: (() => Promise<void>) | undefined;
  private readonly onCompromised: (err: Error) => void;

  constructor(
    readonly lockPath: string,
    opts: DataDirLockOptions = {},
  ) {
    this.staleMs = opts.staleMs ?? defaultStaleMs(opts.heartbeatTimeoutMs);
    this.updateMs = opts.updateMs ?? Math.max(1_000, Math.floor(this.staleMs / 4));
    this.onCompromised =
      opts.onCompromised ??
      (() => {
        process.exit(1);
      });
  }

  get held(): boolean {
    return this.releaseFn !== undefined;
  }

  /** Takes the lock once, without retrying; throws LockHeldError when another process holds it. */
  async acquire(): Promise<void> {
    if (this.held) throw new Error(`the data-dir lock ${this.lockPath} is already held by this process`);
    let release: () => Promise<void>;
    try {
      release = await lockfile.lock(this.lockPath, {
        realpath: false,
        lockfilePath: this.lockPath,
        stale: this.staleMs,
        update: this.updateMs,
        retries: 0,
        fs: lockFs,
        onCompromised: (err: Error) => this.compromised(err),
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ELOCKED') throw new LockHeldError(this.lockPath, lockOwner(this.lockPath)?.pid);
      throw err;
    }
    // Before anything else: until the record exists, nobody can prove this lock is ours. Writing
    // it changes the directory's mtime, which proper-lockfile would take for a takeover: put it back.
    const before = fs.statSync(this.lockPath);
    fs.writeFileSync(ownerPath(this.lockPath), JSON.stringify({ pid: process.pid } satisfies LockOwner));
    fs.utimesSync(this.lockPath, before.atime, before.mtime);
    this.releaseFn = release;
    installExitHook();
    heldLocks.add(this);
    traceLockEvent('acquire');
  }

  /**
   * Tries to take the lock until `timeoutMs` has passed, every `pollMs`. True when taken. Errors
   * other than "held by another process" are thrown.
   */
  async acquireWithin(timeoutMs: number, pollMs = 100): Promise<boolean> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      try {
        await this.acquire();
        return true;
      } catch (err) {
        if (!(err instanceof LockHeldError)) throw err;
      }
      const left = until - performance.now();
      if (left <= 0) return false;
      await new Promise((r) => setTimeout(r, Math.min(pollMs, left)));
    }
  }

  /** Lets the lock go (a no-op when not held). */
  async release(): Promise<void> {
    const release = this.releaseFn;
    if (!release) return;
    traceLockEvent('release');
    heldLocks.delete(this);
    this.releaseFn = undefined;
    try {
      await release();
    } catch (err) {
      // ERELEASED / ENOTACQUIRED: it was already gone (compromised); nothing is held either way.
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ERELEASED' && code !== 'ENOTACQUIRED') throw err;
    }
  }

  private compromised(err: Error): void {
    if (this.releaseFn) {
      traceLockEvent('release');
      heldLocks.delete(this);
      this.releaseFn = undefined;
    }
    this.onCompromised(err);
  }
}

/** What clearLock found: it removed the reaped holder's lock, there was none, or someone else holds it. */
export type ClearResult = { cleared: true } | { cleared: false; why: 'free' } | { cleared: false; why: 'not-owner'; holderPid: number | undefined };

/**
 * For S, after it has reaped a dead holder: removes the lock directory so that the next process
 * can take it at once instead of waiting for it to go stale, but only when the owner record names
 * that holder. Records a `clear` naming the holder (before removing, so the dead holder's interval
 * ends no later than the lock became free) in the trace named by `env` (pass the children's
 * environment when only they carry HANDOFF_LOCK_TRACE).
 */
export function clearLock(lockPath: string, holderPid: number, env: NodeJS.ProcessEnv = process.env): ClearResult {
  if (!isLockHeld(lockPath)) return { cleared: false, why: 'free' };
  const owner = lockOwner(lockPath);
  if (owner?.pid !== holderPid) return { cleared: false, why: 'not-owner', holderPid: owner?.pid };
  traceLockEvent('clear', holderPid, env);
  fs.rmSync(lockPath, { recursive: true, force: true });
  return { cleared: true };
}

/** True when the lock directory exists (held, or left behind by a dead holder). */
export function isLockHeld(lockPath: string): boolean {
  return fs.existsSync(lockPath);
}

export interface LockInterval {
  pid: number;
  start: bigint;
  /** Undefined while still held at the end of the trace. */
  end: bigint | undefined;
  endedBy: 'release' | 'clear' | 'open';
}

export interface LockOverlap {
  /** The interval that was open when `second` began. */
  first: LockInterval;
  second: LockInterval;
}

/** Parses trace lines (blank lines are skipped); a malformed line throws, naming its index. */
export function parseLockTrace(lines: Iterable<string>): LockTraceEvent[] {
  const out: LockTraceEvent[] = [];
  let i = 0;
  for (const line of lines) {
    i++;
    if (line.trim() === '') continue;
    const v = JSON.parse(line) as Partial<LockTraceEvent>;
    if (
      typeof v.pid !== 'number' ||
      (v.event !== 'acquire' && v.event !== 'release' && v.event !== 'clear') ||
      typeof v.t_ns !== 'string' ||
      !/^\d+$/.test(v.t_ns) ||
      (v.event === 'clear' && typeof v.holder !== 'number')
    ) {
      throw new Error(`lock trace line ${i} is malformed`);
    }
    out.push(v as LockTraceEvent);
  }
  return out;
}

/** Reads a trace file (a missing file is an empty trace). */
export function readLockTrace(file: string): LockTraceEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
  return parseLockTrace(text.split('\n'));
}

/** The holding intervals of a trace, in order of start. A dead holder's interval ends at the `clear` naming it. */
export function lockIntervals(trace: Iterable<string> | LockTraceEvent[]): LockInterval[] {
  const events = Array.isArray(trace) && (trace.length === 0 || typeof trace[0] !== 'string') ? (trace) : parseLockTrace(trace as Iterable<string>);
  const sorted = events
    .map((e, i) => ({ e, t: BigInt(e.t_ns), i }))
    .sort((a, b) => (a.t < b.t ? -1 : a.t > b.t ? 1 : a.i - b.i));
  const open = new Map<number, LockInterval[]>();
  const all: LockInterval[] = [];
  const close = (pid: number, t: bigint, by: 'release' | 'clear'): void => {
    const list = open.get(pid);
    const iv = list?.shift();
    if (!iv) return;
    iv.end = t;
    iv.endedBy = by;
    if (list && list.length === 0) open.delete(pid);
  };
  for (const { e, t } of sorted) {
    if (e.event === 'acquire') {
      const iv: LockInterval = { pid: e.pid, start: t, end: undefined, endedBy: 'open' };
      all.push(iv);
      const list = open.get(e.pid) ?? [];
      list.push(iv);
      open.set(e.pid, list);
    } else if (e.event === 'release') {
      close(e.pid, t, 'release');
    } else if (e.holder !== undefined) {
      // A clear ends every interval the dead holder still had open.
      while (open.has(e.holder)) close(e.holder, t, 'clear');
    }
  }
  return all;
}

/**
 * Every pair of holding intervals that overlap (empty when the lock was exclusive). Intervals are
 * conservative (see the module comment), so an empty result proves there were never two writers.
 */
export function checkLockTrace(trace: Iterable<string> | LockTraceEvent[]): LockOverlap[] {
  const intervals = lockIntervals(trace);
  const overlaps: LockOverlap[] = [];
  for (let j = 0; j < intervals.length; j++) {
    const b = intervals[j]!;
    for (let i = 0; i < j; i++) {
      const a = intervals[i]!;
      if (a.end === undefined || a.end > b.start) overlaps.push({ first: a, second: b });
    }
  }
  return overlaps;
}
