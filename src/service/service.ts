/**
 * The service side of a handoff: what a service embeds to act as cold-start incumbent, successor,
 * and incumbent of the next handoff. It speaks the wire protocol with S over the inherited control
 * channel, owns the data-dir lock, opens and closes accept on the inherited listeners, drains, and
 * calls the service's hooks (open, seal, resume, health, close) at the right moments.
 *
 * The one rule every path keeps: never two writers. A process writes only while it holds the lock;
 * the incumbent lets it go only after its seal hook stopped writes; a successor takes it only when
 * S says Begin; when S is lost, whoever holds the lock serves and nobody else does.
 */

import { EventEmitter } from 'node:events';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import {
  Channel,
  MAX_BUILD_ID,
  MAX_REVISIONS,
  PROTO_MAX,
  PROTO_MIN,
  ProtocolError,
  abortReason,
  idEquals,
  idToString,
  isNilId,
  type ErrorKind,
  type HandoffId,
  type Message,
  type MessageOf,
  type Side,
} from '../protocol/index.js';
import { ContractError, readContract, type InheritedListener, type ServiceContract } from './contract.js';
import { ListenerPool, adoptByNumber, isTcpHandle } from './fd-dup.js';
import { ConnectionTracker, HttpDrain } from './http-drain.js';
import { DataDirLock, LockHeldError } from './lock.js';
import { defaultLogger, type Logger } from './logger.js';

/** u64 values as the hooks may give them; numbers must be safe non-negative integers. */
export type Revisions = ReadonlyArray<bigint | number>;

export interface OpenResult {
  /** The last revision of each shard after replay: advertised to S in Ready. */
  revisions: Revisions;
}

export interface SealResult {
  /** The last revision of each shard, after writes stopped and everything was flushed. */
  revisions: Revisions;
  /** Exactly 32 bytes (e.g. a SHA-256 of the data files). */
  fingerprint: Uint8Array;
}

export interface SealProgressInfo {
  shardsSealed: number;
  shardsTotal: number;
  lastRevision: bigint | number;
}

/** For a service that listens by itself: it is handed a fresh descriptor (its own to close) each time. */
export interface Acceptor {
  /** Start accepting on `fd`, a listening socket descriptor now owned by the acceptor. */
  start(fd: number): void | Promise<void>;
  /** Stop accepting: close the descriptor given to start(). Open connections may stay. */
  stop(): void | Promise<void>;
}

export interface ServiceOptions {
  /** Identifies the build to S (UTF-8, at most 64 bytes). */
  buildId: string | Uint8Array;
  /**
   * Listener name (as in LISTEN_FDNAMES) → the server that accepts on it. The library makes it
   * listen and stop listening; do not call listen() yourself.
   */
  servers: Record<string, net.Server | Acceptor>;
  /** The lock is held: open and replay state. Return the revisions reached. */
  open(): Promise<OpenResult>;
  /**
   * Stop writes, flush/fsync, compute the revisions and the fingerprint. Throwing (ideally a
   * SealError with a partial state) makes it a SealFailed: the lock is kept and resume() follows.
   */
  seal(progress: (p: SealProgressInfo) => void): Promise<SealResult>;
  /** After an aborted handoff that got as far as sealing: reopen writer state (the lock is held again). Re-read state: a successor may have written. */
  resume?(): Promise<void>;
  /** Reported in Ready as healthz_ok. Throwing counts as unhealthy. Default: healthy. */
  health?(): Promise<boolean> | boolean;
  /** Successor only: Begin arrived, before the lock is taken. Throwing aborts the handoff. */
  begin?(): Promise<void> | void;
  /**
   * Replaces the default drain (HttpDrain for http servers, wait-then-destroy for net servers).
   * Accept is already closed. Resolve with the connections left open (their number goes to S).
   */
  drain?(graceMs: number): Promise<number | void>;
  /** With a custom drain: back to normal after an aborted handoff. */
  undrain?(): void;
  /** Before the process exits after Commit or a stop: close what is left. May run unsealed on a stop. */
  close?(): Promise<void> | void;
  /** The data-dir lock; HANDOFF_LOCK_PATH (set by S) wins when both are set. No path: no lock. */
  lockPath?: string;
  /** HttpDrain: how long an idle keep-alive connection may linger while draining (default 250 ms). */
  lingerMs?: number;
  /** Drain grace on SIGTERM/SIGINT or stop() (default 10 s). */
  stopGraceMs?: number;
  /** Without S and without LISTEN_FDS: where each server listens (development, tests). */
  standaloneListen?: Record<string, net.ListenOptions>;
  /** Handle SIGTERM and SIGINT with a graceful stop (default true). */
  handleSignals?: boolean;
  logger?: Logger;
  /** Default process.env. */
  env?: NodeJS.ProcessEnv;
  /**
   * Advanced: overrides what the environment says, for other launchers and in-process tests
   * (a `sockFd` makes the service supervised; `listeners` replaces LISTEN_FDS/LISTEN_FDNAMES).
   */
  contract?: Partial<Omit<ServiceContract, 'supervised'>>;
  /**
   * How the process ends (default process.exit). When replaced, the service stops accepting,
   * releases the lock and closes the channel first, and does nothing more afterwards.
   */
  exit?: (code: number) => void;
}

export type ServicePhase =
  | 'idle'
  | 'starting'
  | 'awaiting-begin'
  | 'beginning'
  | 'serving'
  | 'draining'
  | 'drained'
  | 'sealing'
  | 'sealed'
  | 'seal-failed'
  | 'resuming'
  | 'committing'
  | 'stopping'
  | 'exiting';

/** Emitted synchronously at each step; listeners may exit the process (fault injection). */
export interface ServiceEvents {
  hello: [{ role: Side; handoffId: string; version: number }];
  /** Accept (re)opened on every server. */
  accepting: [];
  'accept-closed': [];
  prepare: [{ handoffId: string; successorPid: number; drainGraceMs: number }];
  drained: [{ openConnsRemaining: number }];
  /** SealRequest arrived; the seal hook runs next. */
  seal: [{ handoffId: string }];
  /** SealComplete was written to S; the lock is released. */
  sealed: [{ revisions: bigint[] }];
  'seal-failed': [{ error: string }];
  /** Successor: Begin arrived; the begin hook and the lock come next. */
  begin: [{ handoffId: string }];
  /** Successor: Ready was written to S. */
  ready: [{ healthy: boolean; revisions: bigint[] }];
  /** Commit arrived; close and exit follow. */
  committed: [];
  /** A handoff was called off (by S, or because S was lost); `phase` is where it was. */
  aborted: [{ reason: string; phase: ServicePhase }];
  /** Serving again as incumbent after an aborted handoff. */
  resumed: [];
  'supervisor-lost': [{ reason: string; phase: ServicePhase }];
}

export class SealError extends Error {
  constructor(
    message: string,
    /** What is left, for SealFailed.partial_state (e.g. `shards 0-1 sealed, 2-3 writable`). */
    readonly partialState: string,
  ) {
    super(message);
    this.name = 'SealError';
  }
}

interface ServerEntry {
  name: string;
  target: net.Server | Acceptor;
  listening: boolean;
  /** The pool descriptor accepted on, to report when closed. */
  fd: number | undefined;
  drainer: HttpDrain | ConnectionTracker | undefined;
}

const U64_MAX = 2n ** 64n - 1n;
const RESUME_LOCK_WINDOW_MS = 2_000;
const FLUSH_BOUND_MS = 500;

function isAcceptor(t: net.Server | Acceptor): t is Acceptor {
  return !(t instanceof net.Server) && typeof (t as Acceptor).start === 'function' && typeof (t as Acceptor).stop === 'function';
}

function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split(/\r?\n/, 1)[0] ?? '';
}

/** A free-text field made safe for the wire: first line, no control characters, ≤ 512 bytes. */
function wireText(s: string): string {
  return abortReason('seal_failed', s).slice('seal_failed: '.length);
}

function toU64List(v: Revisions, what: string): bigint[] {
  if (!Array.isArray(v)) throw new TypeError(`${what} is not an array`);
  if (v.length > MAX_REVISIONS) throw new RangeError(`${what} has more than ${MAX_REVISIONS} entries`);
  return v.map((x, i) => {
    let b: bigint;
    if (typeof x === 'bigint') b = x;
    else if (typeof x === 'number' && Number.isSafeInteger(x)) b = BigInt(x);
    else throw new TypeError(`${what}[${i}] is not an integer`);
    if (b < 0n || b > U64_MAX) throw new RangeError(`${what}[${i}] is out of the u64 range`);
    return b;
  });
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref());

export class HandoffService extends EventEmitter<ServiceEvents> {
  readonly logger: Logger;
  readonly contract: ServiceContract;
  private readonly opts: ServiceOptions;
  private readonly buildId: Uint8Array;
  private readonly pool: ListenerPool;
  private readonly entries: ServerEntry[];
  private readonly lock: DataDirLock | undefined;

  private phaseValue: ServicePhase = 'idle';
  private channel: Channel | undefined;
  /** The handoff in flight, if any (as successor: the one we came with, until the next PrepareHandoff). */
  private currentId: HandoffId | undefined;
  /** Set while we are the successor of `currentId` (until a PrepareHandoff makes us a plain incumbent). */
  private asSuccessor = false;
  private lastEndedId: HandoffId | undefined;
  /** Bumped whenever a drain is called off; a drain that finishes late then sends nothing. */
  private epoch = 0;
  private abortPending: string | undefined;
  private sealStarted = false;
  private supervisorLost = false;
  private exiting = false;
  private stopping = false;
  private opened = false;
  private timers: NodeJS.Timeout[] = [];
  private deadlineTimer: NodeJS.Timeout | undefined;
  private servingResolve: (() => void) | undefined;
  private deferredPrepare: MessageOf<'PrepareHandoff'> | undefined;
  private removeSignalHandlers: () => void = () => undefined;

  constructor(opts: ServiceOptions) {
    super();
    this.opts = opts;
    const env = opts.env ?? process.env;
    this.logger = opts.logger ?? defaultLogger(env);
    const fromEnv = readContract(env);
    const over = opts.contract ?? {};
    const sockFd = 'sockFd' in over ? over.sockFd : fromEnv.sockFd;
    this.contract = { ...fromEnv, ...over, sockFd, supervised: sockFd !== undefined };
    this.buildId = typeof opts.buildId === 'string' ? new Uint8Array(Buffer.from(opts.buildId, 'utf8')) : opts.buildId;
    if (this.buildId.length > MAX_BUILD_ID) throw new RangeError(`buildId is longer than ${MAX_BUILD_ID} bytes`);
    const names = Object.keys(opts.servers);
    if (names.length === 0) throw new TypeError('servers: name at least one server');

    let listeners: InheritedListener[] = this.contract.listeners;
    if (listeners.length > 0 && !opts.contract?.listeners && !env.LISTEN_FDNAMES && listeners.length === names.length) {
      // Unnamed fds (plain systemd socket activation): take them in the order the servers are given.
      listeners = listeners.map((l, i) => ({ name: names[i]!, fd: l.fd }));
    }
    this.pool = new ListenerPool(listeners, this.logger);
    for (const name of names) {
      if (this.contract.supervised || listeners.length > 0) {
        if (!this.pool.has(name)) throw new ContractError(`no inherited listener named ${JSON.stringify(name)} (LISTEN_FDNAMES has ${listeners.map((l) => l.name).join(', ') || 'none'})`);
      } else if (!opts.standaloneListen?.[name]) {
        throw new ContractError(`no supervisor, no LISTEN_FDS and no standaloneListen for ${JSON.stringify(name)}`);
      }
    }
    for (const l of listeners) if (!names.includes(l.name)) this.logger.warn({ listener: l.name }, 'an inherited listener has no server; it is not served');
    this.entries = names.map((name) => {
      const target = opts.servers[name]!;
      let drainer: HttpDrain | ConnectionTracker | undefined;
      if (!opts.drain && !isAcceptor(target)) {
        drainer = target instanceof http.Server || target instanceof https.Server ? new HttpDrain(target, { lingerMs: opts.lingerMs }) : new ConnectionTracker(target);
      }
      return { name, target, listening: false, fd: undefined, drainer };
    });

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

  get phase(): ServicePhase {
    return this.phaseValue;
  }

  /** The handoff in flight (canonical UUID form), if any. */
  get handoffId(): string | undefined {
    return this.currentId ? idToString(this.currentId) : undefined;
  }

  /** The inherited listeners by name → fd (the masters: do not close or listen on them; see Acceptor). */
  get listenerFds(): ReadonlyMap<string, number> {
    return new Map(this.pool.listeners.map((l) => [l.name, l.fd]));
  }

  get supervised(): boolean {
    return this.contract.supervised;
  }

  get lockHeld(): boolean {
    return this.lock?.held ?? false;
  }

  /**
   * Starts: cold start (lock, open, accept, Hello) or successor (Hello, then Begin → lock, open,
   * accept, Ready). Resolves once serving. Failures that the contract says end the process do.
   */
  start(): Promise<void> {
    if (this.phaseValue !== 'idle') return Promise.reject(new Error('start() was already called'));
    this.phaseValue = 'starting';
    if (this.opts.handleSignals !== false) {
      const onSignal = (sig: NodeJS.Signals): void => {
        this.logger.info({ signal: sig }, 'stopping on signal');
        void this.stop();
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
      this.removeSignalHandlers = () => {
        process.off('SIGTERM', onSignal);
        process.off('SIGINT', onSignal);
      };
    }
    const serving = new Promise<void>((resolve) => {
      this.servingResolve = resolve;
    });
    const run = !this.contract.supervised ? this.runStandalone() : this.contract.role === 'successor' ? this.runSuccessor() : this.runColdStart();
    run.catch((err: unknown) => this.fatal('start failed', err));
    return serving;
  }

  /** Graceful stop (what SIGTERM does): stop accepting, drain, close, release the lock, exit 0. */
  async stop(): Promise<void> {
    if (this.exiting) return;
    if (this.stopping) {
      this.logger.warn('second stop request: exiting now');
      return this.exit(1);
    }
    this.stopping = true;
    const was = this.phaseValue;
    this.phaseValue = 'stopping';
    this.epoch++;
    this.clearDeadline();
    if (was === 'idle' || was === 'starting' || was === 'awaiting-begin') return this.exit(0);
    await this.stopAccepting();
    const left = await this.runDrain(this.opts.stopGraceMs ?? 10_000);
    this.logger.info({ open_conns_remaining: left }, 'drained for stop');
    await this.runClose();
    await this.releaseLock();
    return this.exit(0);
  }

  // ---------------------------------------------------------------- start paths

  private async runStandalone(): Promise<void> {
    this.logger.info({ role: 'standalone' }, 'no supervisor: serving on our own');
    if (!(await this.takeLockOrExit())) return;
    if (!(await this.openOrExit())) return;
    await this.startAccepting();
    this.becomeServing();
  }

  private async runColdStart(): Promise<void> {
    const channel = this.openChannel();
    if (!(await this.takeLockOrExit())) return;
    if (!(await this.openOrExit())) return;
    try {
      await this.startAccepting();
    } catch (err) {
      return this.fatal('cannot accept on the inherited listeners', err);
    }
    this.becomeServing();
    const ack = await this.hello(channel, 'Incumbent');
    if (!ack) return;
    if (!isNilId(ack.handoff_id)) this.logger.warn({ handoff_id: idToString(ack.handoff_id) }, 'HelloAck for a cold start carries a handoff id; ignored');
    void this.messageLoop(channel);
  }

  private async runSuccessor(): Promise<void> {
    const channel = this.openChannel();
    // Ready the listener duplicates while S gets on with the handoff.
    this.pool.fill().catch((err: unknown) => this.logger.warn({ err: firstLine(err) }, 'prefetching listener duplicates failed'));
    const ack = await this.hello(channel, 'Successor');
    if (!ack) return;
    if (isNilId(ack.handoff_id)) {
      channel.fail(new ProtocolError('handoff_id_mismatch', 'HelloAck to a successor carries the nil handoff id'));
      return;
    }
    this.currentId = ack.handoff_id;
    this.asSuccessor = true;
    channel.handoffId = ack.handoff_id;
    this.phaseValue = 'awaiting-begin';
    void this.messageLoop(channel);
  }

  private openChannel(): Channel {
    const socket = new net.Socket({ fd: this.contract.sockFd! });
    const channel = new Channel(socket);
    this.channel = channel;
    channel.on('close', (err) => this.onChannelClose(err));
    return channel;
  }

  private async hello(channel: Channel, role: Side): Promise<MessageOf<'HelloAck'> | undefined> {
    channel.send({ type: 'Hello', role, pid: process.pid, build_id: this.buildId, proto_min: PROTO_MIN, proto_max: PROTO_MAX, capabilities: { reserved: 0n } });
    channel.lastReceived = performance.now();
    this.startHeartbeats(channel);
    let msg: Message;
    do {
      try {
        msg = await channel.receive();
      } catch {
        return undefined; // closed: onChannelClose applies the S-loss rules
      }
    } while (msg.type === 'Heartbeat');
    if (msg.type !== 'HelloAck') {
      channel.fail(new ProtocolError('unexpected_message', `expected HelloAck, got ${msg.type}`));
      return undefined;
    }
    const v = msg.proto_version_chosen;
    if (v < PROTO_MIN || v > PROTO_MAX) {
      channel.fail(new ProtocolError('version_mismatch', `HelloAck chose version ${v}, ours is ${PROTO_MIN}..${PROTO_MAX}`));
      return undefined;
    }
    channel.version = v;
    this.logger.info({ role, version: v, handoff_id: idToString(msg.handoff_id) }, 'hello acknowledged');
    this.emit('hello', { role, handoffId: idToString(msg.handoff_id), version: v });
    return msg;
  }

  private async takeLockOrExit(): Promise<boolean> {
    if (!this.lock) return true;
    try {
      await this.lock.acquire();
      this.logger.info({ lockPath: this.lock.lockPath }, 'data-dir lock taken');
      return true;
    } catch (err) {
      this.logger.fatal({ err: firstLine(err), lockPath: this.lock.lockPath }, 'cannot take the data-dir lock');
      await this.exit(1);
      return false;
    }
  }

  private async openOrExit(): Promise<boolean> {
    try {
      const res = await this.opts.open();
      this.opened = true;
      toU64List(res.revisions, 'open().revisions');
      return true;
    } catch (err) {
      await this.fatal('open failed', err);
      return false;
    }
  }

  private becomeServing(): void {
    this.phaseValue = 'serving';
    const r = this.servingResolve;
    this.servingResolve = undefined;
    r?.();
  }

  // ---------------------------------------------------------------- messages

  private async messageLoop(channel: Channel): Promise<void> {
    for (;;) {
      let msg: Message;
      try {
        msg = await channel.receive();
      } catch {
        return;
      }
      if (this.exiting) return;
      this.logger.debug({ type: msg.type }, 'received');
      try {
        this.onMessage(channel, msg);
      } catch (err) {
        channel.fail(err instanceof ProtocolError ? err : new ProtocolError('unexpected_message', firstLine(err)));
      }
    }
  }

  private unexpected(msg: Message): never {
    throw new ProtocolError('unexpected_message', `${msg.type} while ${this.phaseValue}`);
  }

  private checkId(id: HandoffId): void {
    if (!this.currentId) throw new ProtocolError('handoff_id_mismatch', `a message for handoff ${idToString(id)} while none is in flight`);
    if (!idEquals(id, this.currentId)) throw new ProtocolError('handoff_id_mismatch', `got ${idToString(id)}, in flight ${idToString(this.currentId)}`);
  }

  private onMessage(channel: Channel, msg: Message): void {
    const phase = this.phaseValue;
    switch (msg.type) {
      case 'Heartbeat':
        return;
      case 'PrepareHandoff': {
        if (phase === 'resuming' && !this.deferredPrepare) {
          // S cannot know when a resume is over (there is no message for it): take it right after.
          this.deferredPrepare = msg;
          return;
        }
        if (phase !== 'serving') this.unexpected(msg);
        this.currentId = msg.handoff_id;
        this.asSuccessor = false;
        this.sealStarted = false;
        this.abortPending = undefined;
        channel.handoffId = msg.handoff_id;
        const grace = Number(msg.drain_grace_ms > 2n ** 31n - 1n ? 2n ** 31n - 1n : msg.drain_grace_ms);
        this.armDeadline(channel, msg.deadline_ms);
        this.task(this.drain(channel, grace));
        this.emit('prepare', { handoffId: idToString(msg.handoff_id), successorPid: msg.successor_pid, drainGraceMs: grace });
        return;
      }
      case 'SealRequest':
        this.checkId(msg.handoff_id);
        if (phase !== 'drained') this.unexpected(msg);
        this.task(this.seal(channel));
        return;
      case 'Commit':
        this.checkId(msg.handoff_id);
        if (phase !== 'sealed') this.unexpected(msg);
        this.task(this.commit());
        return;
      case 'Begin':
        this.checkId(msg.handoff_id);
        if (phase !== 'awaiting-begin' || !this.asSuccessor) this.unexpected(msg);
        this.task(this.begin(channel));
        return;
      case 'Abort':
      case 'ResumeAfterAbort':
        return this.onAbort(channel, msg);
      default:
        this.unexpected(msg);
    }
  }

  private onAbort(channel: Channel, msg: MessageOf<'Abort'> | MessageOf<'ResumeAfterAbort'>): void {
    const reason = msg.type === 'Abort' ? msg.reason : 'resume after abort';
    const id = msg.handoff_id;
    if (!this.currentId || !idEquals(id, this.currentId)) {
      if (this.lastEndedId && idEquals(id, this.lastEndedId)) {
        this.logger.debug({ type: msg.type }, 'the handoff already ended here; ignored');
        return;
      }
      if (msg.type === 'Abort' && !this.currentId && this.phaseValue === 'serving') {
        // S may call off a handoff it never told us about (the successor failed early): harmless.
        this.logger.warn({ handoff_id: idToString(id), reason }, 'Abort for a handoff this process is not part of; ignored');
        return;
      }
      this.checkId(id);
    }
    const phase = this.phaseValue;
    this.logger.warn({ type: msg.type, reason, phase }, 'handoff called off');
    switch (phase) {
      case 'awaiting-begin':
      case 'beginning':
        if (msg.type === 'ResumeAfterAbort') this.unexpected(msg);
        // Nothing acknowledged depends on us yet; the lock (if taken) goes with the process.
        this.emit('aborted', { reason, phase });
        this.task(this.rollbackSuccessor(false));
        return;
      case 'serving':
        if (this.asSuccessor && msg.type === 'Abort') {
          this.emit('aborted', { reason, phase });
          this.task(this.rollbackSuccessor(true));
          return;
        }
        this.unexpected(msg);
        return;
      case 'draining':
      case 'drained':
      case 'seal-failed':
        this.emit('aborted', { reason, phase });
        this.task(this.undoHeld());
        return;
      case 'sealing':
        this.abortPending = reason;
        return;
      case 'sealed':
        this.emit('aborted', { reason, phase });
        this.task(this.resumeReleased(RESUME_LOCK_WINDOW_MS, 50));
        return;
      case 'resuming':
      case 'committing':
      case 'stopping':
      case 'exiting':
        this.logger.debug({ phase }, `${msg.type} ignored`);
        return;
      default:
        this.unexpected(msg);
    }
  }

  // ---------------------------------------------------------------- incumbent

  private async drain(channel: Channel, graceMs: number): Promise<void> {
    const epoch = ++this.epoch;
    this.phaseValue = 'draining';
    this.logger.info({ handoff_id: this.handoffId, drain_grace_ms: graceMs }, 'preparing: accept closed, draining');
    await this.stopAccepting();
    // Called off while accept was closing: draining now would close connections of a serving process.
    if (epoch !== this.epoch) return;
    const left = await this.runDrain(graceMs);
    if (epoch !== this.epoch || this.phaseValue !== 'draining') return;
    this.phaseValue = 'drained';
    channel.send({ type: 'Drained', open_conns_remaining: Math.min(left, 0xffffffff), accept_closed: true });
    this.logger.info({ open_conns_remaining: left }, 'drained');
    this.emit('drained', { openConnsRemaining: left });
  }

  private async seal(channel: Channel): Promise<void> {
    const id = this.currentId!;
    this.phaseValue = 'sealing';
    this.sealStarted = true;
    this.clearDeadline();
    this.emit('seal', { handoffId: idToString(id) });
    this.logger.info({ handoff_id: idToString(id) }, 'sealing');
    let result: { revisions: bigint[]; fingerprint: Uint8Array } | undefined;
    let failure: unknown;
    try {
      const r = await this.opts.seal((p) => {
        if (this.phaseValue !== 'sealing') return;
        channel.send({
          type: 'SealProgress',
          shards_sealed: p.shardsSealed >>> 0,
          shards_total: p.shardsTotal >>> 0,
          last_revision: toU64List([p.lastRevision], 'lastRevision')[0]!,
        });
      });
      const revisions = toU64List(r.revisions, 'seal().revisions');
      if (!(r.fingerprint instanceof Uint8Array) || r.fingerprint.length !== 32) throw new TypeError('seal().fingerprint must be 32 bytes');
      result = { revisions, fingerprint: r.fingerprint };
    } catch (err) {
      failure = err;
    }
    if (this.exiting || this.stopping) return;
    if (this.abortPending !== undefined || this.supervisorLost) {
      this.emit('aborted', { reason: this.abortPending ?? 'supervisor lost', phase: 'sealing' });
      return this.undoHeld();
    }
    if (!result) {
      const error = wireText(firstLine(failure));
      const partial = failure instanceof SealError ? wireText(failure.partialState) : 'unknown';
      this.phaseValue = 'seal-failed';
      channel.send({ type: 'SealFailed', handoff_id: id, error, partial_state: partial });
      this.logger.error({ err: error, partial_state: partial }, 'seal failed; keeping the lock');
      this.emit('seal-failed', { error });
      return;
    }
    await this.releaseLock();
    if (this.abortPending !== undefined || this.supervisorLost) {
      this.emit('aborted', { reason: this.abortPending ?? 'supervisor lost', phase: 'sealing' });
      return this.resumeReleased(this.supervisorLost ? 2 * this.contract.heartbeatTimeoutMs : RESUME_LOCK_WINDOW_MS, 50);
    }
    this.phaseValue = 'sealed';
    channel.send({ type: 'SealComplete', handoff_id: id, last_revision_per_shard: result.revisions, data_dir_fingerprint: result.fingerprint });
    this.logger.info({ revisions: result.revisions.map(String) }, 'sealed; lock released');
    await this.flushChannel();
    if (this.phaseValue === 'sealed') this.emit('sealed', { revisions: result.revisions });
  }

  private async commit(): Promise<void> {
    this.phaseValue = 'committing';
    this.logger.info({ handoff_id: this.handoffId }, 'committed: closing and exiting');
    this.emit('committed');
    await this.runClose();
    await this.releaseLock();
    return this.exit(0);
  }

  /** Abort while we still hold the lock (before sealing, or after a failed seal): serve again. */
  private async undoHeld(): Promise<void> {
    this.epoch++;
    this.phaseValue = 'resuming';
    this.clearDeadline();
    this.undrain();
    if (this.sealStarted) {
      try {
        await this.opts.resume?.();
      } catch (err) {
        return this.fatal('resume failed', err);
      }
    }
    await this.reopenAccept();
    this.endHandoff();
  }

  /** After SealComplete: retake the lock (bounded), resume, accept again; exit when it cannot be had. */
  private async resumeReleased(windowMs: number, pollMs: number): Promise<void> {
    this.epoch++;
    this.phaseValue = 'resuming';
    this.clearDeadline();
    if (this.lock) {
      let ok: boolean;
      try {
        ok = await this.lock.acquireWithin(windowMs, pollMs);
      } catch (err) {
        return this.fatal('retaking the data-dir lock failed', err);
      }
      if (!ok) {
        this.logger.error({ window_ms: windowMs }, 'cannot retake the data-dir lock (another process holds it); exiting');
        return this.exit(1);
      }
    }
    try {
      await this.opts.resume?.();
    } catch (err) {
      return this.fatal('resume failed', err);
    }
    this.undrain();
    await this.reopenAccept();
    this.endHandoff();
  }

  private async reopenAccept(): Promise<void> {
    try {
      await this.startAccepting();
    } catch (err) {
      return this.fatal('cannot reopen accept', err);
    }
  }

  private endHandoff(): void {
    this.lastEndedId = this.currentId;
    this.currentId = undefined;
    this.asSuccessor = false;
    this.sealStarted = false;
    this.abortPending = undefined;
    if (this.channel) this.channel.handoffId = undefined;
    this.phaseValue = 'serving';
    this.logger.info('serving again');
    this.emit('resumed');
    const next = this.deferredPrepare;
    this.deferredPrepare = undefined;
    if (next && this.channel && !this.channel.closed) {
      try {
        this.onMessage(this.channel, next);
      } catch (err) {
        this.channel.fail(err instanceof ProtocolError ? err : new ProtocolError('unexpected_message', firstLine(err)));
      }
    }
  }

  /** O's own deadline: if S neither seals nor aborts well past the handoff deadline, stop waiting. */
  private armDeadline(channel: Channel, deadlineMs: bigint): void {
    this.clearDeadline();
    // A relative budget; a value that can only be a Unix time is taken as one.
    let ms = Number(deadlineMs);
    if (ms > 1e12) ms -= Date.now();
    ms = Math.min(Math.max(ms, 0) + this.contract.heartbeatTimeoutMs, 2 ** 31 - 1);
    const id = this.currentId;
    this.deadlineTimer = setTimeout(() => {
      this.deadlineTimer = undefined;
      if ((this.phaseValue !== 'draining' && this.phaseValue !== 'drained') || !id || !this.currentId || !idEquals(id, this.currentId)) return;
      const reason = abortReason('deadline_exceeded', 'the incumbent waited past the handoff deadline and serves again');
      this.logger.error('handoff deadline passed while drained: serving again');
      channel.send({ type: 'Abort', handoff_id: id, reason });
      this.emit('aborted', { reason, phase: this.phaseValue });
      this.task(this.undoHeld());
    }, ms);
    this.deadlineTimer.unref();
  }

  private clearDeadline(): void {
    clearTimeout(this.deadlineTimer);
    this.deadlineTimer = undefined;
  }

  // ---------------------------------------------------------------- successor

  private async begin(channel: Channel): Promise<void> {
    const id = this.currentId!;
    this.phaseValue = 'beginning';
    this.logger.info({ handoff_id: idToString(id) }, 'begin');
    this.emit('begin', { handoffId: idToString(id) });
    const fail = async (kind: ErrorKind, err: unknown): Promise<void> => {
      if (this.exiting) return;
      const reason = abortReason(kind, firstLine(err));
      this.logger.error({ reason }, 'successor failed; aborting the handoff');
      channel.send({ type: 'Abort', handoff_id: id, reason });
      await this.stopAccepting();
      return this.exit(1);
    };
    const stillOn = (): boolean => this.phaseValue === 'beginning' && !this.exiting;
    try {
      await this.opts.begin?.();
    } catch (err) {
      return fail('successor_failed', err);
    }
    if (!stillOn()) return;
    if (this.lock) {
      try {
        await this.lock.acquire();
      } catch (err) {
        return fail(err instanceof LockHeldError ? 'lock_held' : 'successor_failed', err);
      }
      this.logger.info({ lockPath: this.lock.lockPath }, 'data-dir lock taken');
    }
    if (!stillOn()) return;
    let revisions: bigint[];
    try {
      const res = await this.opts.open();
      this.opened = true;
      revisions = toU64List(res.revisions, 'open().revisions');
    } catch (err) {
      return fail('successor_failed', err);
    }
    if (!stillOn()) return;
    try {
      await this.startAccepting();
    } catch (err) {
      return fail('successor_failed', err);
    }
    let healthy: boolean;
    try {
      healthy = (await (this.opts.health?.() ?? true)) === true;
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'health check threw');
      healthy = false;
    }
    if (!stillOn()) return;
    this.becomeServing();
    if (this.supervisorLost) {
      this.logger.warn('the supervisor was lost after Begin; holding the lock, serving');
      return;
    }
    channel.send({
      type: 'Ready',
      handoff_id: id,
      listening_on: this.entries.map((e) => e.name),
      healthz_ok: healthy,
      advertised_revision_per_shard: revisions,
    });
    this.logger.info({ healthz_ok: healthy, revisions: revisions.map(String) }, 'ready');
    await this.flushChannel();
    this.emit('ready', { healthy, revisions });
  }

  /** S called off the handoff we were the successor of: stop, close, let the lock go, exit quietly. */
  private async rollbackSuccessor(closeState: boolean): Promise<void> {
    this.phaseValue = 'exiting';
    await this.stopAccepting();
    if (closeState) {
      if (this.opened) await this.runClose();
      await this.releaseLock();
    }
    // Mid-begin, a hook may still be running: the lock then goes with the process, atomically.
    return this.exit(0);
  }

  // ---------------------------------------------------------------- S loss

  private onChannelClose(err: ProtocolError): void {
    if (this.exiting || this.phaseValue === 'committing') return;
    this.lostSupervisor(err.message);
  }

  private lostSupervisor(reason: string): void {
    if (this.supervisorLost) return;
    this.supervisorLost = true;
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    const phase = this.phaseValue;
    this.logger.warn({ reason, phase }, 'supervisor lost');
    this.emit('supervisor-lost', { reason, phase });
    switch (phase) {
      case 'starting':
        if (this.contract.role === 'successor') this.task(this.exit(1));
        // A cold start goes on: it holds the lock (or will) and serves.
        return;
      case 'awaiting-begin':
        this.logger.warn('no Begin yet: exiting');
        this.task(this.exit(1));
        return;
      case 'draining':
      case 'drained':
      case 'seal-failed':
        this.emit('aborted', { reason: 'supervisor lost', phase });
        this.task(this.undoHeld());
        return;
      case 'sealed':
        this.emit('aborted', { reason: 'supervisor lost', phase });
        this.task(this.resumeReleased(2 * this.contract.heartbeatTimeoutMs, 250));
        return;
      default:
        // serving: keep serving; beginning/sealing: the running step checks the flag.
        return;
    }
  }

  private startHeartbeats(channel: Channel): void {
    const { heartbeatMs, heartbeatTimeoutMs } = this.contract;
    const hb = setInterval(() => {
      channel.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) });
    }, heartbeatMs);
    hb.unref();
    const every = Math.max(10, Math.min(heartbeatMs, Math.floor(heartbeatTimeoutMs / 4)));
    let lastCheck = performance.now();
    const wd = setInterval(() => {
      const now = performance.now();
      const late = now - lastCheck - every;
      lastCheck = now;
      // Our own loop stalled: let pending input be read before judging S.
      if (late > every) return;
      if (now - channel.lastReceived > heartbeatTimeoutMs) {
        channel.fail(new ProtocolError('heartbeat_timeout', `no frame from the supervisor for ${heartbeatTimeoutMs} ms`));
      }
    }, every);
    wd.unref();
    this.timers.push(hb, wd);
  }

  // ---------------------------------------------------------------- accept and drain

  private async startAccepting(): Promise<void> {
    for (const e of this.entries) {
      if (e.listening || this.exiting) continue;
      if (!this.pool.has(e.name)) {
        const where = this.opts.standaloneListen?.[e.name];
        if (!where || isAcceptor(e.target)) throw new Error(`nowhere to listen for ${e.name}`);
        await listenOn(e.target, where);
      } else {
        const h = await this.pool.take(e.name);
        e.fd = h.fd;
        if (this.exiting) return;
        if (isAcceptor(e.target)) await e.target.start(adoptByNumber(h));
        else await listenOn(e.target, isTcpHandle(h) ? h : { fd: adoptByNumber(h) });
      }
      e.listening = true;
    }
    this.logger.debug('accepting');
    this.emit('accepting');
  }

  private async stopAccepting(): Promise<void> {
    for (const e of this.entries) {
      if (!e.listening) continue;
      e.listening = false;
      try {
        if (isAcceptor(e.target)) await e.target.stop();
        // net.Server's close, not http.Server's: that one also closes idle keep-alive connections at once.
        else if (e.target.listening) net.Server.prototype.close.call(e.target);
      } catch (err) {
        this.logger.warn({ listener: e.name, err: firstLine(err) }, 'closing accept failed');
      }
      if (e.fd !== undefined) this.pool.closed(e.name, e.fd);
      e.fd = undefined;
    }
    this.emit('accept-closed');
  }

  private async runDrain(graceMs: number): Promise<number> {
    try {
      if (this.opts.drain) return (await this.opts.drain(graceMs)) ?? 0;
      const counts = await Promise.all(this.entries.map((e) => e.drainer?.drain(graceMs) ?? Promise.resolve(0)));
      return counts.reduce((a, b) => a + b, 0);
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'drain failed');
      return 0;
    }
  }

  private undrain(): void {
    try {
      if (this.opts.drain) this.opts.undrain?.();
      else for (const e of this.entries) e.drainer?.undrain();
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'undrain failed');
    }
  }

  // ---------------------------------------------------------------- endings

  private async runClose(): Promise<void> {
    try {
      await this.opts.close?.();
    } catch (err) {
      this.logger.error({ err: firstLine(err) }, 'close hook failed');
    }
  }

  private async releaseLock(): Promise<void> {
    try {
      await this.lock?.release();
    } catch (err) {
      this.logger.warn({ err: firstLine(err) }, 'releasing the data-dir lock failed');
    }
  }

  private async flushChannel(): Promise<void> {
    const s = this.channel?.stream;
    if (!s || s.destroyed || s.writableLength === 0) return;
    await Promise.race([new Promise((r) => s.once('drain', r)), sleep(FLUSH_BOUND_MS)]);
  }

  private async fatal(what: string, err: unknown): Promise<void> {
    this.logger.fatal({ err: firstLine(err) }, what);
    return this.exit(1);
  }

  /** Flushes what is owed to S and exits; the lock (if still held) goes with the process. */
  private async exit(code: number): Promise<void> {
    if (this.exiting) return;
    this.exiting = true;
    this.phaseValue = 'exiting';
    this.clearDeadline();
    for (const t of this.timers) clearInterval(t);
    this.timers = [];
    await this.flushChannel();
    this.logger.info({ code }, 'exiting');
    if (!this.opts.exit) process.exit(code);
    // Someone else ends the process: leave nothing behind that process.exit would have taken.
    await this.stopAccepting();
    await this.releaseLock();
    this.channel?.close();
    this.removeSignalHandlers();
    this.opts.exit(code);
  }

  private task(p: Promise<void>): void {
    p.catch((err: unknown) => this.fatal('internal error', err));
  }
}

function listenOn(server: net.Server, where: object): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(err);
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(where);
  });
}

/** Creates the service runtime (attach event listeners, then call start()). */
export function createService(opts: ServiceOptions): HandoffService {
  return new HandoffService(opts);
}

/** Creates and starts; resolves once serving. */
export async function startService(opts: ServiceOptions): Promise<HandoffService> {
  const s = new HandoffService(opts);
  await s.start();
  return s;
}
