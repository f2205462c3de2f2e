/**
 * The child's environment, the contract between S and a service process (ARCHITECTURE.md, "The
 * child's environment"): the listeners at fds 3..3+n-1, the control channel at 3+n, the role, the
 * lock path, the heartbeat timing, S's drain grace. Both sides live here: S writes it (contractEnv)
 * and the library reads it (readContract), so a variable cannot be renamed on one side only.
 * Parsed strictly: a malformed contract is a configuration error, reported at start.
 */

import { TIMER_MAX_MS } from './constants.js';

export type StartRole = 'cold-start' | 'successor';

export interface InheritedListener {
  name: string;
  fd: number;
}

export interface ServiceContract {
  /** False when no control channel is set: the service runs on its own (no supervisor). */
  supervised: boolean;
  role: StartRole;
  sockFd: number | undefined;
  listeners: InheritedListener[];
  lockPath: string | undefined;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  /**
   * S's drain grace (HANDOFF_DRAIN_GRACE_MS): S escalates against a stopping child after it (+ DRAIN_SLACK_MS), so it is
   * the default drain grace of a stop. Unset when S does not say.
   */
  drainGraceMs: number | undefined;
}

export const DEFAULT_HEARTBEAT_MS = 1_000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5_000;
/** SD_LISTEN_FDS_START: the first inherited listener (systemd's, and S's to its children). */
export const LISTEN_FDS_START = 3;

/** The variables of the contract. The three LISTEN_* ones are systemd's (sd_listen_fds(3)). */
export const CONTRACT_ENV = {
  listenFds: 'LISTEN_FDS',
  listenFdNames: 'LISTEN_FDNAMES',
  listenPid: 'LISTEN_PID',
  sockFd: 'HANDOFF_SOCK_FD',
  role: 'HANDOFF_ROLE',
  lockPath: 'HANDOFF_LOCK_PATH',
  heartbeatMs: 'HANDOFF_HEARTBEAT_MS',
  heartbeatTimeoutMs: 'HANDOFF_HEARTBEAT_TIMEOUT_MS',
  drainGraceMs: 'HANDOFF_DRAIN_GRACE_MS',
} as const;

/** Variables S owns; a stale copy from S's own environment must not reach a child. */
export const CONTRACT_VARS: readonly string[] = Object.values(CONTRACT_ENV);

/** The fd of the control channel when `listenerCount` listeners come first. */
export function controlFd(listenerCount: number): number {
  return LISTEN_FDS_START + listenerCount;
}

export class ContractError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ContractError';
  }
}

function intVar(env: NodeJS.ProcessEnv, name: string, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  if (!/^\d+$/.test(raw)) throw new ContractError(`${name} is not a non-negative integer`);
  const n = Number(raw);
  if (n < min || n > max) throw new ContractError(`${name} must be between ${min} and ${max}`);
  return n;
}

/**
 * LISTEN_FDS and LISTEN_FDNAMES, read the same way whoever passed them (S to its child, systemd to
 * S): one entry per fd from LISTEN_FDS_START, each with its name, or undefined when LISTEN_FDNAMES
 * is unset or empty. LISTEN_PID is the caller's business (S never sets it). Throws ContractError.
 */
export function listenFds(env: NodeJS.ProcessEnv): Array<{ fd: number; name: string | undefined }> {
  const fdsText = env[CONTRACT_ENV.listenFds];
  if (fdsText === undefined || fdsText === '') return [];
  if (!/^[0-9]{1,6}$/.test(fdsText)) throw new ContractError(`LISTEN_FDS=${JSON.stringify(fdsText.slice(0, 20))} is not a count`);
  const n = Number(fdsText);
  const namesText = env[CONTRACT_ENV.listenFdNames];
  const names = namesText ? namesText.split(':') : undefined;
  if (names !== undefined && names.length !== n) throw new ContractError(`LISTEN_FDNAMES has ${names.length} names for LISTEN_FDS=${n}`);
  return Array.from({ length: n }, (_, i) => ({ fd: LISTEN_FDS_START + i, name: names?.[i] }));
}

/** The listeners passed as LISTEN_FDS/LISTEN_FDNAMES (names default to systemd's `unknown`). */
export function inheritedListeners(env: NodeJS.ProcessEnv = process.env): InheritedListener[] {
  return listenFds(env).map(({ fd, name }) => ({ name: name || 'unknown', fd }));
}

export function readContract(env: NodeJS.ProcessEnv = process.env): ServiceContract {
  const listeners = inheritedListeners(env);
  const sockFd = intVar(env, CONTRACT_ENV.sockFd, LISTEN_FDS_START, 65_535);
  const roleRaw = env[CONTRACT_ENV.role] ?? 'cold-start';
  if (roleRaw !== 'cold-start' && roleRaw !== 'successor') throw new ContractError('HANDOFF_ROLE must be cold-start or successor');
  if (sockFd === undefined && roleRaw === 'successor') throw new ContractError('HANDOFF_ROLE=successor needs HANDOFF_SOCK_FD');
  if (sockFd !== undefined && listeners.some((l) => l.fd === sockFd)) throw new ContractError('HANDOFF_SOCK_FD is one of the listener fds');
  const heartbeatMs = intVar(env, CONTRACT_ENV.heartbeatMs, 1, TIMER_MAX_MS) ?? DEFAULT_HEARTBEAT_MS;
  const heartbeatTimeoutMs = intVar(env, CONTRACT_ENV.heartbeatTimeoutMs, 1, TIMER_MAX_MS) ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  const drainGraceMs = intVar(env, CONTRACT_ENV.drainGraceMs, 0, TIMER_MAX_MS);
  return {
    supervised: sockFd !== undefined,
    role: roleRaw,
    sockFd,
    listeners,
    lockPath: env[CONTRACT_ENV.lockPath] || undefined,
    heartbeatMs,
    heartbeatTimeoutMs,
    drainGraceMs,
  };
}

/** What S tells a child through the contract. */
export interface ContractValues {
  role: StartRole;
  /** The listeners' names, in fd order from LISTEN_FDS_START; the control channel follows them. */
  listenerNames: readonly string[];
  lockPath?: string | undefined;
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  drainGraceMs: number;
}

/** S's side: `base` (the environment children inherit) without any stale contract variable, plus the contract. */
export function contractEnv(base: NodeJS.ProcessEnv, v: ContractValues): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  for (const k of CONTRACT_VARS) delete env[k];
  env[CONTRACT_ENV.listenFds] = String(v.listenerNames.length);
  env[CONTRACT_ENV.listenFdNames] = v.listenerNames.join(':');
  env[CONTRACT_ENV.sockFd] = String(controlFd(v.listenerNames.length));
  env[CONTRACT_ENV.role] = v.role;
  env[CONTRACT_ENV.heartbeatMs] = String(v.heartbeatMs);
  env[CONTRACT_ENV.heartbeatTimeoutMs] = String(v.heartbeatTimeoutMs);
  env[CONTRACT_ENV.drainGraceMs] = String(v.drainGraceMs);
  if (v.lockPath !== undefined) env[CONTRACT_ENV.lockPath] = v.lockPath;
  return env;
}
