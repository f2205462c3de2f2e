/**
 * What S tells systemd, and when: a supervisor's events mapped to sd_notify notifications (the
 * transports are in notify.ts). The same mapping serves both unit types:
 *
 * - `Type=notify` (`ExecReload=handoff upgrade`): systemd learns of a handoff from RELOADING=1 and
 *   of its end from READY=1, however it was started (the CLI, the admin API, SIGHUP).
 * - `Type=notify-reload` (systemd 253+): `systemctl reload` sends SIGHUP to S and the unit stays
 *   "reloading" until S answers RELOADING=1 with a MONOTONIC_USEC= taken after the signal (an older
 *   one is ignored: it belongs to a reload already under way), then READY=1. A SIGHUP that starts a
 *   handoff answers with the handoff's own RELOADING=1 and READY=1. One that starts none must be
 *   answered too, or systemd waits out its timeout: see `reloadRefused`.
 */

import type { Notifier } from './notify.js';
import type { HandoffEvent, IncumbentInfo, SupervisorEvents } from './types.js';

/** What attachNotifier needs from a Supervisor (an EventEmitter<SupervisorEvents> fits). */
export interface SupervisorEventSource {
  on<K extends keyof SupervisorEvents>(event: K, listener: (...args: SupervisorEvents[K]) => void): unknown;
  off<K extends keyof SupervisorEvents>(event: K, listener: (...args: SupervisorEvents[K]) => void): unknown;
}

export interface NotifierLink {
  /**
   * A reload request (SIGHUP) that started no handoff: an invalid configuration, a handoff already
   * in flight, no incumbent serving, S stopping. Once S has been ready and until it stops:
   * RELOADING=1 with a fresh MONOTONIC_USEC, then READY=1 with a STATUS= saying why, which ends the
   * reload systemd may be waiting for. Before the first READY=1 only the STATUS= (a READY=1 would
   * tell systemd that S started; systemd sends no reload signal before that anyway); after
   * STOPPING=1 only the STATUS= (STOPPING=1 already ended any reload, and S is not ready).
   */
  reloadRefused(reason: string): void;
  /** Removes the listeners. */
  detach(): void;
}

function handoffStatus(e: HandoffEvent): string {
  const id = e.handoff_id;
  if (e.phase === 'done') {
    const how = e.outcome ?? 'ended';
    return `serving; handoff ${id} ${how} in ${e.elapsed_ms} ms${e.reason ? `: ${e.reason}` : ''}`;
  }
  const p = e.progress ? ` (${e.progress.shards_sealed}/${e.progress.shards_total} shards sealed)` : '';
  return `handoff ${id}: ${e.phase}${p}`;
}

/**
 * Maps a supervisor's events to notifications: `ready` → READY=1; handoff `spawn` → RELOADING=1 with
 * MONOTONIC_USEC; every handoff phase → STATUS=; handoff `done` → READY=1 (the incumbent, old or
 * new, serves again); `restart` → STATUS=; `stopping` → STOPPING=1, after which READY and RELOADING
 * are no longer sent.
 */
export function attachNotifier(source: SupervisorEventSource, notifier: Notifier): NotifierLink {
  let ready = false;
  let stopping = false;
  let detached = false;
  const onReady = (info: IncumbentInfo): void => {
    if (stopping) return;
    ready = true;
    notifier.ready(`serving; incumbent pid ${info.pid}`);
  };
  const onHandoff = (e: HandoffEvent): void => {
    const text = handoffStatus(e);
    if (stopping) notifier.status(text);
    else if (e.phase === 'spawn') notifier.reloading(text);
    else if (e.phase === 'done') notifier.ready(text);
    else notifier.status(text);
  };
  const onRestart = (r: { attempt: number; delayMs: number; reason: string }): void => {
    notifier.status(`restarting the incumbent (attempt ${r.attempt}, in ${r.delayMs} ms): ${r.reason}`);
  };
  const onStopping = (): void => {
    stopping = true;
    notifier.stopping('stopping: draining the incumbent');
  };
  source.on('ready', onReady);
  source.on('handoff', onHandoff);
  source.on('restart', onRestart);
  source.on('stopping', onStopping);
  return {
    reloadRefused(reason: string): void {
      if (detached) return;
      const text = `reload not started: ${reason}`;
      if (!ready || stopping) {
        notifier.status(text);
        return;
      }
      // Two datagrams, in order, as a handoff sends them: RELOADING=1 moves systemd from waiting
      // for an answer to its signal to waiting for READY=1, which ends the reload.
      notifier.reloading(text);
      notifier.ready(text);
    },
    detach(): void {
      detached = true;
      source.off('ready', onReady);
      source.off('handoff', onHandoff);
      source.off('restart', onRestart);
      source.off('stopping', onStopping);
    },
  };
}
