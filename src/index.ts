/**
 * The package's root entry (`handoff-supervisor`): the supervisor, for an operator script that runs
 * it in-process (what `handoff run` does), with the shapes of its options, events, status and
 * records. A service embeds `handoff-supervisor/service`; its tests use
 * `handoff-supervisor/testing`; the wire protocol is `handoff-supervisor/protocol`. A test pins this
 * list (test/package/exports.test.ts) and README.md ("API") documents each name.
 */

export { Supervisor, StartLimitError, ExecNotAllowedError } from './supervisor/supervisor.js';
export {
  ConfigReloadError,
  DEFAULT_OPTIONS,
  HANDOFF_PHASES,
  isRestartRecord,
  type FailureInfo,
  type HandoffEvent,
  type HandoffOutcome,
  type HandoffPhase,
  type HandoffRecord,
  type HistoryEntry,
  type IncumbentInfo,
  type ListenerInfo,
  type PhaseHistogram,
  type ReloadableOptions,
  type RestartRecord,
  type ServingCommand,
  type SupervisorEvents,
  type SupervisorMetrics,
  type SupervisorOptions,
  type SupervisorState,
  type SupervisorStatus,
  type UpgradeRequest,
} from './supervisor/types.js';
export { ProtocolError, type ErrorKind } from './protocol/index.js';
