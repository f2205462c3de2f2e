/**
 * What one service process shares between its flows (start, incumbent, successor, S loss, stop):
 * the configuration, the mutable handoff state, and the endings any flow may reach (close the
 * state, let the lock go, exit). The flows read and write the state directly: it is one process's
 * single-threaded state machine, split across modules only for size.
 */

import type { EventEmitter } from 'node:events';
import { MAX_BUILD_ID, abortReason, idToString, type Channel, type HandoffId } from '../protocol/index.js';
import { AcceptControl } from './accept.js';
import { readContract, type ServiceContract } from '../shared/contract.js';
import { DataDirLock } from '../shared/lock.js';
import { defaultLogger, type Logger } from './logger.js';
import type { ServiceEvents, ServiceOptions, ServicePhase } from './types.js';
import { firstLine } from './wire.js';

/** How long an exit waits for what is owed to S to leave the socket. */
const FLUSH_BOUND_MS = 500;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export class Runtime {
  readonly logger: Logger;
  readonly contract: ServiceContract;
  readonly buildId: Uint8Array;
  readonly accept: AcceptControl;
  readonly lock: DataDirLock | undefined;

  phase: ServicePhase = 'idle';
  channel: Channel | undefined;
  /** The handoff in flight, if any (as successor: the one we came with, until the next PrepareHandoff). */
  currentId: HandoffId | undefined;
  /** Set while we are the successor of `currentId` (until a PrepareHandoff makes us a plain incumbent). */
  asSuccessor = false;
  lastEndedId: HandoffId | undefined;
  /** Bumped whenever a drain is called off; a drain that finishes late then sends nothing. */
  epoch = 0;
  abortPending: string | undefined;
  sealStarted = false;
  /**
   * What we know of S: `heard` (frames arrive), `silent` (none for the heartbeat timeout on a
   * channel still open: maybe paused, not gone), `lost` (the channel closed: gone for good).
   */
  supervisor: 'heard' | 'silent' | 'lost' = 'heard';
  exiting = false;
  stopping = false;
  opened = false;
  /** Heartbeat and watchdog intervals. */
  timers: NodeJS.Timeout[] = [];
  /** The incumbent's own handoff deadline (see IncumbentFlow.armDeadline). */
  deadlineTimer: NodeJS.Timeout | undefined;
  servingResolve: (() => void) | undefined;
  removeSignalHandlers: () => void = () => undefined;

  constructor(
    readonly opts: ServiceOptions,
    readonly events: EventEmitter<ServiceEvents>,
  ) {
    const env = opts.env ?? process.env;
    this.logger = opts.logger ?? defaultLogger(env);
    const fromEnv = readContract(env);
    const over = opts.contract ?? {};
    const sockFd = 'sockFd' in over ? over.sockFd : fromEnv.sockFd;
    this.contract = { ...fromEnv, ...over, sockFd, supervised: sockFd !== undefined };
    this.buildId = typeof opts.buildId === 'string' ? new Uint8Array(Buffer.from(opts.buildId, 'utf8')) : opts.buildId;
    if (this.buildId.length > MAX_BUILD_ID) throw new RangeError(`buildId is longer than ${MAX_BUILD_ID} bytes`);
    this.accept = new AcceptControl(opts, this.contract, env, this.logger, events, () => this.exiting || this.phase === 'stopping' || this.phase === 'exiting');

    const envLock = this.contract.lockPath;
    if (envLock && opts.lockPath && envLock !== opts.lockPath) {
      this.logger.warn({ lockPath: envLock, option: opts.lockPath }, 'HANDOFF_LOCK_PATH differs from the lockPath option; using the supervisor’s');
    }
    const lockPath = envLock ?? opts.lockPath;
    this.lock = lockPath
      ? new DataDirLock(lockPath, {
          heartbeatTimeoutMs: this.contract.heartbeatTimeoutMs,
          onCompromised: (err) => {
            this.logger.fatal({ err: err.message, lockPath }, 'the data-dir lock was lost while held; exiting so as never to be a second writer');
            process.exit(1);
          },
        })
      : undefined;
  }

  /** The handoff in flight (canonical UUID form), if any. */
  get handoffId(): string | undefined {
    return this.currentId ? idToString(this.currentId) : undefined;
  }

  /** The Abort reason for a handoff called off because S fell silent. */
  silenceReason(): string {
    return abortReason('heartbeat_timeout', `no frame from the supervisor for ${this.contract.heartbeatTimeoutMs} ms; the incumbent serves on`);
  }

  becomeServing(): void {
    this.phase = 'serving';
    const r = this.servingResolve;
    this.servingResolve = undefined;
    r?.();
  }

  clearDeadline(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }

  stopTimers(): void {
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
  }

  async runClose(): Promise<void> {
    try {
      await this.opts.close?.();
    } catch (err) {
      this.logger.error({ err: firstLine(err) }, 'close hook failed');
    }
  }

  async releaseLock(): Promise<void> {
    try {
      await this.lock?.release();
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'releasing the data-dir lock failed');
    }
  }

  async flushChannel(): Promise<void> {
    const s = this.channel?.stream;
    if (!s || s.destroyed || s.writableLength === 0) return;
    await Promise.race([new Promise((r) => s.once('drain', r)), sleep(FLUSH_BOUND_MS)]);
  }

  async fatal(what: string, err: unknown): Promise<void> {
    this.logger.fatal({ err: firstLine(err) }, what);
    return this.exit(1);
  }

  /** Flushes what is owed to S and exits; the lock (if still held) goes with the process. */
  async exit(code: number): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    this.phase = 'exiting';
    this.clearDeadline();
    this.stopTimers();
    await this.flushChannel();
    this.logger.info({ code }, 'exiting');
    if (!this.opts.exit) process.exit(code);
    // Someone else ends the process: leave nothing behind that process.exit would have taken.
    await this.accept.stop();
    await this.releaseLock();
    this.channel?.close();
    this.removeSignalHandlers();
    this.opts.exit(code);
  }

  /** Runs a step in the background; a step that throws is a bug, and ends the process. */
  task(p: Promise<void>): void {
    p.catch((err: unknown) => this.fatal('internal error', err));
  }
}
