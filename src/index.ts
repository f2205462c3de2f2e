/**
 * handoff's public entry: the service library (what a service embeds), the supervisor (for those
 * who run it in-process), and the wire protocol (also at `handoff/protocol`).
 */

export * from './service/index.js';
export { Supervisor, ExecNotAllowedError } from './supervisor/supervisor.js';
export * from './supervisor/types.js';
export * as protocol from './protocol/index.js';
