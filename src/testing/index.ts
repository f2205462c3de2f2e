/**
 * `handoff-supervisor/testing`: a fake supervisor to run your service's own code in your own tests
 * (any test runner), through a handoff and its failure paths, and to assert what your hooks did.
 * README.md ("Testing your service") has a complete example; a test pins this list
 * (test/package/exports.test.ts).
 */

export { FakeSupervisor, type FakeSupervisorOptions } from './fake-supervisor.js';
export type { DrainedHandoff, SealedHandoff, ReadyHandoff } from './handoff.js';
export { HandoffStepError, type HandoffStep } from './errors.js';
export type { EventDetail, Frame, HookCall, HookName, ServiceEventRecord, ServiceUnderTest } from './service-under-test.js';
