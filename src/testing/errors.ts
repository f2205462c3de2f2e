/** What a step of the fake supervisor throws when the service did not do what S expects. */

import type { ErrorKind, Message } from '../protocol/index.js';

/** The step of a handoff the fake supervisor was at. */
export type HandoffStep = 'hello' | 'drain' | 'seal' | 'begin' | 'commit';

export class HandoffStepError extends Error {
  override name = 'HandoffStepError';
  constructor(
    readonly step: HandoffStep,
    /** What S would call it (the kind of the Abort it sends): `seal_failed`, `successor_unhealthy`, ... */
    readonly kind: ErrorKind,
    /** What happened, in one line. */
    readonly detail: string,
    /** The message from the service that did not fit the step (an Abort, a SealFailed, ...), if any. */
    readonly got?: Message,
  ) {
    super(`${step}: ${kind}: ${detail}`);
  }
}
