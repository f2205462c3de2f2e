/**
 * The child's environment, as S sets it (ARCHITECTURE.md, "The child's environment"): the
 * listeners at fds 3..3+n-1, the control channel at 3+n, the role, the lock path, the heartbeat
 * timing, S's drain grace. Parsed strictly: a malformed contract is a configuration error, reported at start.
 */

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
   * S's drain grace (HANDOFF_DRAIN_GRACE_MS): S kills a stopping child after it (+1 s), so it is
   * the default drain grace of a stop. Unset when S does not say.
   */
  drainGraceMs: number | undefined;
}

export const DEFAULT_HEARTBEAT_MS = 1_000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 5_000;
/** SD_LISTEN_FDS_START: the first inherited listener. */
export const LISTEN_FDS_START = 3;

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

/** The listeners passed as LISTEN_FDS/LISTEN_FDNAMES (names default to systemd's `unknown`). */
export function inheritedListeners(env: NodeJS.ProcessEnv = process.env): InheritedListener[] {
  const n = intVar(env, 'LISTEN_FDS', 0, 1024) ?? 0;
  const names = env.LISTEN_FDNAMES ? env.LISTEN_FDNAMES.split(':') : [];
  if (names.length > 0 && names.length !== n) throw new ContractError(`LISTEN_FDNAMES names ${names.length} listeners but LISTEN_FDS is ${n}`);
  const out: InheritedListener[] = [];
  for (let i = 0; i < n; i++) out.push({ name: names[i] || 'unknown', fd: LISTEN_FDS_START + i });
  return out;
}

export function readContract(env: NodeJS.ProcessEnv = process.env): ServiceContract {
  const listeners = inheritedListeners(env);
  const sockFd = intVar(env, 'HANDOFF_SOCK_FD', LISTEN_FDS_START, 65_535);
  const roleRaw = env.HANDOFF_ROLE ?? 'cold-start';
  if (roleRaw !== 'cold-start' && roleRaw !== 'successor') throw new ContractError('HANDOFF_ROLE must be cold-start or successor');
  if (sockFd === undefined && roleRaw === 'successor') throw new ContractError('HANDOFF_ROLE=successor needs HANDOFF_SOCK_FD');
  if (sockFd !== undefined && listeners.some((l) => l.fd === sockFd)) throw new ContractError('HANDOFF_SOCK_FD is one of the listener fds');
  const heartbeatMs = intVar(env, 'HANDOFF_HEARTBEAT_MS', 1, 2 ** 31 - 1) ?? DEFAULT_HEARTBEAT_MS;
  const heartbeatTimeoutMs = intVar(env, 'HANDOFF_HEARTBEAT_TIMEOUT_MS', 1, 2 ** 31 - 1) ?? DEFAULT_HEARTBEAT_TIMEOUT_MS;
  const drainGraceMs = intVar(env, 'HANDOFF_DRAIN_GRACE_MS', 0, 2 ** 31 - 1);
  return {
    supervised: sockFd !== undefined,
    role: roleRaw,
    sockFd,
    listeners,
    lockPath: env.HANDOFF_LOCK_PATH || undefined,
    heartbeatMs,
    heartbeatTimeoutMs,
    drainGraceMs,
  };
}
