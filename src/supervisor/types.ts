/** The supervisor's public shapes: what the admin API, the CLI and embedders see. */

import type { ErrorKind } from '../protocol/errors.js';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS } from '../shared/contract.js';

/** Phases of one handoff, in order; `rollback` is entered from any phase before `committed`. */
export const HANDOFF_PHASES = ['spawn', 'hello', 'drain', 'seal', 'begin', 'commit', 'rollback', 'done'] as const;
export type HandoffPhase = (typeof HANDOFF_PHASES)[number];

export type HandoffOutcome = 'committed' | 'aborted' | 'interrupted';

/** One listening socket S holds for its whole life. */
export interface ListenerInfo {
  name: string;
  /** `tcp://HOST:PORT` (the real port when 0 was asked) or `unix:/PATH`, or `fd:N` when inherited from systemd without an address. */
  address: string;
}

export interface UpgradeRequest {
  /** Another command for the successor; must be in the allowlist when it differs from the configured one. */
  command?: string;
  args?: string[];
  deadlineMs?: number;
  drainGraceMs?: number;
  /** How long this handoff's successor has to say Hello (default: the supervisor's helloTimeoutMs). */
  helloTimeoutMs?: number;
}

/** A progress event of the in-flight handoff, streamed to whoever asked for it. */
export interface HandoffEvent {
  handoff_id: string;
  /** The phase entered (or `done` with the outcome). */
  phase: HandoffPhase;
  /** Wall-clock ISO time. */
  at: string;
  /** Milliseconds since the handoff started. */
  elapsed_ms: number;
  /** Duration of the phase just left, when one was left. */
  previous?: { phase: HandoffPhase; ms: number };
  /** SealProgress, relayed. */
  progress?: { shards_sealed: number; shards_total: number; last_revision: string };
  /** On `done`. */
  outcome?: HandoffOutcome;
  reason?: string;
  detail?: string;
}

export interface HandoffRecord {
  handoff_id: string;
  outcome: HandoffOutcome;
  /** `<kind>: <detail>` for aborted and interrupted handoffs. */
  reason?: string;
  reason_kind?: ErrorKind;
  started_at: string;
  ended_at: string;
  incumbent_pid: number | null;
  successor_pid: number | null;
  command: string[];
  /** Milliseconds spent in each phase, in the order entered. */
  phases: Array<{ phase: HandoffPhase; ms: number }>;
  total_ms: number;
  /** True when the incumbent died mid-handoff and S rolled forward (the revision check was skipped). */
  rolled_forward: boolean;
  revisions_checked: boolean;
  /** The successor's build id, from its Hello (absent when it never said Hello). */
  build_id?: string;
  /** How the successor ended, when it died before the handoff did (e.g. `exited with code 2`). */
  successor_exit?: string;
  /** The last lines of that successor's stderr (stack frames left out). */
  successor_stderr?: string[];
  /** Something that went wrong on the way that did not change the outcome (e.g. the incumbent died during begin). */
  note?: string;
}

/** A cold start of the incumbent after the serving one died, hung or could not start: in the history beside handoffs. */
export interface RestartRecord {
  kind: 'restart';
  at: string;
  /** `<kind>: <detail>` of why the previous incumbent is gone. */
  reason: string;
  reason_kind: ErrorKind;
  /** The process that failed, and how it ended. */
  pid: number;
  exit: string;
  command: string[];
  stderr_tail: string[];
  /** The consecutive failure this is, and the delay before the next cold start. */
  attempt: number;
  delay_ms: number;
}

/** The last time an incumbent failed (could not start, died, hung), for status. */
export interface FailureInfo {
  at: string;
  reason: string;
  reason_kind: ErrorKind;
  pid: number;
  exit: string;
  stderr_tail: string[];
  /** Failures in a row without an incumbent serving in between. */
  consecutive: number;
}

/** What serves: the command that last committed (or cold-started), kept in the state directory. */
export interface ServingCommand {
  command: string[];
  /** The configured command when this was recorded: a changed configuration takes over from it. */
  configured: string[];
  build_id: string;
  at: string;
}

export type HistoryEntry = HandoffRecord | RestartRecord;

export function isRestartRecord(e: HistoryEntry): e is RestartRecord {
  return (e as RestartRecord).kind === 'restart';
}

export interface IncumbentInfo {
  pid: number;
  build_id: string;
  /** The command line it runs (program and arguments). */
  command: string[];
  started_at: string;
  uptime_ms: number;
}

export interface SupervisorStatus {
  pid: number;
  state: SupervisorState;
  incumbent: IncumbentInfo | null;
  listeners: ListenerInfo[];
  inflight: { handoff_id: string; phase: HandoffPhase; started_at: string; successor_pid: number | null; elapsed_ms: number } | null;
  last: HandoffRecord | null;
  incumbent_restarts: number;
  /** The last incumbent failure (null until one happens); kept after a successful restart. */
  last_failure: FailureInfo | null;
  /** Set when S started and found a journaled handoff that a previous S never finished. */
  recovered: HandoffRecord | null;
}

/** S's own lifecycle, apart from any handoff. */
export type SupervisorState = 'starting' | 'serving' | 'handoff' | 'restarting' | 'stopping' | 'stopped';

/** One phase's histogram: `buckets[i]` counts observations <= the i-th bound (cumulative, as Prometheus wants). */
export interface PhaseHistogram {
  buckets: number[];
  count: number;
  sumMs: number;
}

/** Counters for /metrics. */
export interface SupervisorMetrics {
  handoffs: Record<HandoffOutcome, number>;
  /** Cumulative histograms of phase durations since S started (bounds: PHASE_BUCKETS_S in metrics.ts). */
  phaseHistograms: Partial<Record<HandoffPhase, PhaseHistogram>>;
  incumbentRestarts: number;
  /** Incumbent failures (could not start, died, hung) by reason kind. */
  incumbentFailures: Partial<Record<ErrorKind, number>>;
  phase: HandoffPhase | null;
}

/** What the admin API and the CLI need from a running supervisor. */
export interface SupervisorApi {
  status(): SupervisorStatus;
  history(limit?: number): HistoryEntry[];
  metrics(): SupervisorMetrics;
  /**
   * Starts a handoff and resolves with its record when it ends (committed or aborted).
   * Rejects at once with a ProtocolError of kind `handoff_in_progress` while one is in flight.
   */
  upgrade(req: UpgradeRequest, onEvent?: (e: HandoffEvent) => void): Promise<HandoffRecord>;
  /** Aborts the in-flight handoff (`operator_abort`); false when none is in flight or it is past the point of no return. */
  abort(reason: string): boolean;
  /** Stops: the incumbent drains and exits within its grace, then S is done. */
  stop(): Promise<void>;
}

/** Everything `handoff run` configures. Durations are in milliseconds. */
export interface SupervisorOptions {
  command: string;
  args: string[];
  /** `NAME=tcp://HOST:PORT` or `NAME=unix:/PATH`; empty means: take LISTEN_FDS from systemd, if any. */
  listen: string[];
  /** The data-dir lock S arbitrates (a proper-lockfile directory); passed to children as HANDOFF_LOCK_PATH. */
  lockPath?: string;
  /** Where the history and the in-flight journal live. */
  stateDir: string;
  cwd?: string;
  /** The environment children inherit (S adds the contract variables). Defaults to process.env. */
  env?: NodeJS.ProcessEnv;
  helloTimeoutMs: number;
  drainGraceMs: number;
  deadlineMs: number;
  exitTimeoutMs: number;
  killAfterMs: number;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  restartInitialMs: number;
  restartMaxMs: number;
  /** Cold starts that may fail in a row before anything served, before S gives up (systemd's StartLimitBurst). */
  startLimit: number;
  /** Canonical paths a handoff request may name as another command. */
  allowExec: string[];
  /**
   * Re-reads the configuration (SIGHUP, or a handoff request that names no command). Throws a
   * one-line error when the configuration is invalid; nothing changes then.
   */
  reload?: () => ReloadableOptions;
}

/** What a reload may change while S runs; listeners, the lock and the state directory need a restart. */
export type ReloadableOptions = Pick<SupervisorOptions, 'command' | 'args' | 'allowExec'>;

/** A reload found the configuration invalid: the handoff is refused, nothing changes. */
export class ConfigReloadError extends Error {
  override name = 'ConfigReloadError';
}

export const DEFAULT_OPTIONS = {
  helloTimeoutMs: 5_000,
  drainGraceMs: 25_000,
  deadlineMs: 60_000,
  exitTimeoutMs: 10_000,
  killAfterMs: 5_000,
  heartbeatMs: DEFAULT_HEARTBEAT_MS,
  heartbeatTimeoutMs: DEFAULT_HEARTBEAT_TIMEOUT_MS,
  restartInitialMs: 250,
  restartMaxMs: 30_000,
  startLimit: 5,
} as const satisfies Partial<SupervisorOptions>;

/** Events a Supervisor emits, for the CLI glue (sd_notify, logs) and embedders. */
export interface SupervisorEvents {
  /** The first incumbent serves (said Hello). */
  ready: [IncumbentInfo];
  /** A progress event of the in-flight handoff; `phase: 'spawn'` starts one, `phase: 'done'` ends it. */
  handoff: [HandoffEvent];
  /** A cold start after the incumbent died. */
  restart: [{ attempt: number; delayMs: number; reason: string }];
  stopping: [];
  stopped: [];
}
