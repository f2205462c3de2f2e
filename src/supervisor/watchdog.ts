/**
 * systemd's `WatchdogSec=` for S itself. systemd passes the interval in WATCHDOG_USEC (and the pid
 * it is meant for in WATCHDOG_PID); S then sends `WATCHDOG=1` at half that interval for as long as
 * it is healthy, and systemd kills and restarts the unit when the pings stop.
 *
 * Healthy means S's event loop turns. The ping is a timer in that loop, the loop that also accepts
 * on the admin socket (which never closes while S runs), reads the control channels, runs the
 * handoff machine's timers and reaps children: a blocked loop (a busy loop, a deadlock on a sync
 * call) or a stopped S sends nothing, and systemd steps in. What S supervises is not part of it:
 * a handoff in flight, an incumbent restarting with backoff, a hung child (S's own heartbeats
 * judge the children) are S doing its job, and a watchdog restart would kill the incumbent too,
 * turning a slow handoff into downtime.
 */

import type { Logger } from 'pino';
import { TIMER_MAX_MS } from '../shared/constants.js';

export interface Watchdog {
  /** The ping interval, or null when the watchdog is off. */
  readonly intervalMs: number | null;
  /** Stops pinging (S is exiting). */
  stop(): void;
}

export interface WatchdogOptions {
  /** The pid WATCHDOG_PID must name (default: this process). */
  pid?: number;
  logger?: Logger;
  /** Remove WATCHDOG_USEC and WATCHDOG_PID from `env` so children do not inherit them. Default true. */
  unsetEnvironment?: boolean;
}

/** What is pinged: a Notifier fits. `transport: 'none'` means nowhere to ping. */
export interface WatchdogTarget {
  readonly transport: string;
  watchdog(): void;
}

export type WatchdogSetting = { usec: bigint } | { off: 'unset' | 'other-pid' } | { invalid: string };

/** Reads WATCHDOG_USEC/WATCHDOG_PID as sd_watchdog_enabled(3) does. */
export function watchdogSetting(env: NodeJS.ProcessEnv, pid: number): WatchdogSetting {
  const usec = env['WATCHDOG_USEC'];
  if (usec === undefined || usec === '') return { off: 'unset' };
  if (!/^[0-9]{1,19}$/.test(usec) || BigInt(usec) === 0n) return { invalid: `WATCHDOG_USEC=${usec}` };
  const forPid = env['WATCHDOG_PID'];
  if (forPid !== undefined && forPid !== '') {
    if (!/^[1-9][0-9]{0,9}$/.test(forPid)) return { invalid: `WATCHDOG_PID=${forPid}` };
    if (Number(forPid) !== pid) return { off: 'other-pid' };
  }
  return { usec: BigInt(usec) };
}

/** Largest interval a Node timer takes (2^31 - 1 ms); longer ones would fire at once. */
const MAX_TIMER_MS = TIMER_MAX_MS;

/**
 * Starts pinging `target` when systemd asked for it (see the module comment); a no-op watchdog
 * otherwise. Unless told otherwise, removes WATCHDOG_USEC and WATCHDOG_PID from `env`: they are
 * S's, and a child that pinged would be ignored (NotifyAccess=main) or, worse, could keep a stalled
 * S alive (NotifyAccess=all).
 */
export function startWatchdog(env: NodeJS.ProcessEnv, target: WatchdogTarget, opts: WatchdogOptions = {}): Watchdog {
  const setting = watchdogSetting(env, opts.pid ?? process.pid);
  if (opts.unsetEnvironment !== false) {
    delete env['WATCHDOG_USEC'];
    delete env['WATCHDOG_PID'];
  }
  const log = opts.logger;
  const off: Watchdog = { intervalMs: null, stop: () => undefined };
  if ('off' in setting) {
    if (setting.off === 'other-pid') log?.debug('systemd watchdog: WATCHDOG_PID names another process; not pinging');
    return off;
  }
  if ('invalid' in setting) {
    log?.warn({ setting: setting.invalid }, 'systemd watchdog: cannot parse; not pinging');
    return off;
  }
  if (target.transport === 'none') {
    log?.warn('systemd watchdog: WATCHDOG_USEC is set but NOTIFY_SOCKET is not; not pinging');
    return off;
  }
  // Half the interval, as sd_watchdog_enabled(3) recommends: a ping may be late by up to half of it.
  const intervalMs = Math.min(MAX_TIMER_MS, Math.max(1, Number(setting.usec / 2000n)));
  target.watchdog();
  const timer = setInterval(() => target.watchdog(), intervalMs);
  // Never what keeps S alive: S exits when its work is done, pinging or not.
  timer.unref();
  log?.info({ watchdog_usec: setting.usec.toString(), interval_ms: intervalMs }, 'systemd watchdog: pinging');
  return {
    intervalMs,
    stop: () => clearInterval(timer),
  };
}
