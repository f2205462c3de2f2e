/**
 * What one service process shares between its flows (start, incumbent, successor, S loss, stop):
 * the configuration, the machine's state (machine.ts: private here, moved only by `enter`), and
 * the endings any flow may reach (close the state, let the lock go, exit).
 */

import type { EventEmitter } from 'node:events';
import { MAX_BUILD_ID, abortReason, idToString, type Channel, type HandoffId } from '../protocol/index.js';
import { AcceptControl } from './accept.js';
import { readContract, type ServiceContract } from '../shared/contract.js';
import { DataDirLock } from '../shared/lock.js';
import { defaultLogger, type Logger } from './logger.js';
import { handoffOf, type State } from './machine.js';
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
  /** No `open` and no `seal`: nothing to lock, open or seal (a successor accepts once healthy, before Begin). */
  readonly stateless: boolean;

  #state: State = { phase: 'idle' };
  channel: Channel | undefined;
  /** The last handoff this incumbent called off and served again after: its late messages are no violation. */
  lastEnded: HandoffId | undefined;
  /**
   * What we know of S, whatever the phase: `heard` (frames arrive), `silent` (none for the
   * heartbeat timeout on a channel still open: maybe paused, not gone), `lost` (the channel
   * closed: gone for good). Written by SupervisorLoss only.
   */
  supervisor: 'heard' | 'silent' | 'lost' = 'heard';
  /** Heartbeat and watchdog intervals. */
  timers: NodeJS.Timeout[] = [];
  /** The incumbent's own handoff deadline (IncumbentFlow.armDeadline); it lives only while draining or drained. */
  deadlineTimer: NodeJS.Timeout | undefined;
  servingResolve: (() => void) | undefined;
  removeSignalHandlers: () => void = () => undefined;
  /** Settles once the process has been told to end (never, when that is process.exit). */
  readonly exited: Promise<void>;
  #exitedResolve: () => void = () => undefined;

  constructor(
    readonly opts: ServiceOptions,
    readonly events: EventEmitter<ServiceEvents>,
  ) {
    if ((opts.open === undefined) !== (opts.seal === undefined)) throw new TypeError('give open and seal together, or neither (a stateless service)');
    this.stateless = opts.open === undefined;
    if (this.stateless && opts.lockPath) throw new TypeError('lockPath without open and seal: a stateless service takes no lock');
    const env = opts.env ?? process.env;
    this.logger = opts.logger ?? defaultLogger(env);
    const fromEnv = readContract(env);
    const over = opts.contract ?? {};
    const sockFd = 'sockFd' in over ? over.sockFd : fromEnv.sockFd;
    this.contract = { ...fromEnv, ...over, sockFd, supervised: sockFd !== undefined };
    this.buildId = typeof opts.buildId === 'string' ? new Uint8Array(Buffer.from(opts.buildId, 'utf8')) : opts.buildId;
    if (this.buildId.length > MAX_BUILD_ID) throw new RangeError(`buildId is longer than ${MAX_BUILD_ID} bytes`);
    this.accept = new AcceptControl(opts, this.contract, env, this.logger, events, () => this.phase === 'stopping' || this.phase === 'exiting');
    this.exited = new Promise((resolve) => (this.#exitedResolve = resolve));

    const envLock = this.stateless ? undefined : this.contract.lockPath;
    if (this.stateless && this.contract.lockPath) {
      this.logger.warn({ lockPath: this.contract.lockPath }, 'stateless (no open, no seal): HANDOFF_LOCK_PATH is not taken');
    }
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

  get state(): State {
    return this.#state;
  }

  get phase(): ServicePhase {
    return this.#state.phase;
  }

  /** The one way the state moves (TABLE's handlers and the steps they start). */
  enter(next: State): void {
    if (next.phase !== 'draining' && next.phase !== 'drained') this.clearDeadline();
    this.#state = next;
  }

  /** The handoff S's messages must name (machine.ts handoffOf). */
  get inFlight(): HandoffId | undefined {
    return handoffOf(this.#state);
  }

  /** The handoff in flight (canonical UUID form), if any. */
  get handoffId(): string | undefined {
    const id = this.inFlight;
    return id ? idToString(id) : undefined;
  }

  /** The Abort reason for a handoff called off because S fell silent. */
  silenceReason(): string {
    return abortReason('heartbeat_timeout', `no frame from the supervisor for ${this.contract.heartbeatTimeoutMs} ms; the incumbent serves on`);
  }

  /**
   * The start step's end (as successor: of `successorOf`). A stop or an exit that came meanwhile
   * keeps its phase; start() resolves either way.
   */
  becomeServing(successorOf?: HandoffId): void {
    if (this.phase === 'starting' || this.phase === 'beginning') this.enter({ phase: 'serving', successorOf });
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

  /** The health hook's answer (default healthy); throwing counts as unhealthy. */
  async askHealth(): Promise<boolean> {
    try {
      return (await (this.opts.health?.() ?? true)) === true;
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'health check threw');
      return false;
    }
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

  /**
   * Flushes what is owed to S and exits; the lock (if still held) goes with the process. `first`:
   * what to close once exiting (a successor's rollback), before that.
   */
  async exit(code: number, first?: () => Promise<void>): Promise<void> {
    if (this.phase === 'exiting') return;
    this.enter({ phase: 'exiting', handoff: this.inFlight });
    await first?.();
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
    this.#exitedResolve();
  }

  /** Runs a step in the background; a step that throws is a bug, and ends the process. */
  task(p: Promise<void>): void {
    p.catch((err: unknown) => this.fatal('internal error', err));
  }
}
