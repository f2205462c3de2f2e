/**
 * The embeddable service library: what a service links to be handed over by the supervisor.
 * See README.md ("Embedding a service") and examples/kv.
 */

export { HandoffService, createService, startService } from './service.js';
export {
  SealError,
  type Acceptor,
  type OpenResult,
  type Revisions,
  type SealProgressInfo,
  type SealResult,
  type ServiceEvents,
  type ServiceOptions,
  type ServicePhase,
} from './types.js';
export { HttpDrain, ConnectionTracker, type HttpDrainOptions } from './http-drain.js';
export {
  DataDirLock,
  LockHeldError,
  checkLockTrace,
  clearLock,
  defaultStaleMs,
  isLockHeld,
  lockIntervals,
  parseLockTrace,
  readLockTrace,
  traceLockEvent,
  type DataDirLockOptions,
  type LockInterval,
  type LockOverlap,
  type LockTraceEvent,
  type LockTraceEventName,
} from '../shared/lock.js';
export {
  ContractError,
  DEFAULT_HEARTBEAT_MS,
  DEFAULT_HEARTBEAT_TIMEOUT_MS,
  LISTEN_FDS_START,
  inheritedListeners,
  readContract,
  type InheritedListener,
  type ServiceContract,
  type StartRole,
} from '../shared/contract.js';
export { ListenerPool, duplicateFds, type RawHandle } from './fd-dup.js';
export { defaultLogger, type Logger } from './logger.js';
