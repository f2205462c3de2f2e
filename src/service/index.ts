/**
 * The embeddable service library (`handoff-supervisor/service`): what a service links to be handed
 * over by the supervisor. Only what a service author uses; a test pins this list
 * (test/package/exports.test.ts) and README.md ("API") documents each name. See examples/kv.
 */

export { createService, startService, type HandoffService } from './service.js';
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
export { HttpDrain, type HttpDrainOptions } from './http-drain.js';
export { ContractError, type InheritedListener, type ServiceContract, type StartRole } from '../shared/contract.js';
export { defaultLogger, type Logger } from './logger.js';
