/** What both sources of listeners (bound by the helper, inherited from systemd) hand to S. */

import type { ListenerInfo } from '../types.js';

/** A listening socket S holds: pass `fd` to children; `close()` releases it (and its unix path). */
export interface HeldListener extends ListenerInfo {
  readonly fd: number;
  /** Idempotent. Closes S's fd; for a unix socket S created, also removes its path (if it is still that socket). */
  close(): void;
}
