/** Messages between the demo (or the bench) and the supervisor host process, over Node's IPC channel. */

import type { HandoffEvent, HandoffRecord, SupervisorOptions, SupervisorStatus, UpgradeRequest } from '../../supervisor/types.js';

/** SupervisorOptions without what cannot cross IPC (the host passes its own environment on). */
export type HostSupervisorOptions = Omit<SupervisorOptions, 'env'>;

export interface HostMemory {
  rss: number;
  heapUsed: number;
  external: number;
}

export type HostRequest =
  | { id: number; op: 'start'; opts: HostSupervisorOptions }
  | { id: number; op: 'upgrade'; req: UpgradeRequest }
  | { id: number; op: 'status' }
  | { id: number; op: 'memory'; gc: boolean }
  | { id: number; op: 'crash' }
  | { id: number; op: 'stop' };

/** The incumbent the host killed (SIGKILL, as a crash) and the cold start S scheduled after it. */
export interface HostCrash {
  pid: number;
  /** Date.now() right before the kill: the demo puts it on its load clock. */
  killedAtMs: number;
  build_id: string;
  /** From S's `restart` event: the attempt, its backoff, and why S says the incumbent is gone. */
  attempt: number;
  delayMs: number;
  reason: string;
}

export interface HostResults {
  start: SupervisorStatus;
  upgrade: HandoffRecord;
  status: SupervisorStatus;
  memory: HostMemory;
  crash: HostCrash;
  stop: null;
}

export type HostMessage =
  | { id: number; ok: true; result: HostResults[keyof HostResults] }
  | { id: number; ok: false; error: string }
  | { event: HandoffEvent };
