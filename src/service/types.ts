/**
 * The public shapes of the service library: the options a service passes, what its hooks return,
 * the phases it goes through and the events it emits.
 */

import type net from 'node:net';
import type { Side } from '../protocol/index.js';
import type { ServiceContract } from '../shared/contract.js';
import type { Logger } from './logger.js';

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
  /**
   * The lock is held: open and replay state. Return the revisions reached. Give `open` and `seal`
   * together, or neither: a service without them is stateless (no lock, no revisions, and as
   * successor it accepts beside the incumbent as soon as it is healthy).
   */
  open?(): Promise<OpenResult>;
  /**
   * Stop writes, flush/fsync, compute the revisions and the fingerprint. Throwing (ideally a
   * SealError with a partial state) makes it a SealFailed: the lock is kept and resume() follows.
   * Stateless (no `open`, no `seal`): SealComplete carries no revisions and 32 zero bytes.
   */
  seal?(progress: (p: SealProgressInfo) => void): Promise<SealResult>;
  /** After an aborted handoff that got as far as sealing: reopen writer state (the lock is held again). Re-read state: a successor may have written. */
  resume?(): Promise<void>;
  /**
   * Reported in Ready as healthz_ok; no accept opens before it says healthy. Throwing counts as
   * unhealthy. Default: healthy.
   */
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
  /**
   * The data-dir lock; HANDOFF_LOCK_PATH (set by S) wins when both are set. No path: no lock. A
   * stateless service takes none (this option is then an error; HANDOFF_LOCK_PATH is ignored).
   */
  lockPath?: string;
  /** HttpDrain: how long an idle keep-alive connection may linger while draining (default 250 ms). */
  lingerMs?: number;
  /**
   * Drain grace on SIGTERM/SIGINT, stop(), or a rollback of a successor that had accepted
   * (default HANDOFF_DRAIN_GRACE_MS, S's drain grace, else 10 s).
   */
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
  /**
   * Stateless successor: healthy, accepting beside the incumbent before its Hello (there is no lock
   * to wait for); Begin and Ready follow as for any successor.
   */
  | 'overlapping'
  | 'beginning'
  /** Successor: said Ready with healthz_ok false; never accepts; waits for S's Abort. */
  | 'unhealthy'
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
  /** Successor: Ready was written to S (accepting when healthy; an unhealthy one never accepts). */
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
