/**
 * `handoff run`: the supervisor process. Wires the Supervisor, the admin API, sd_notify and signals:
 *   SIGHUP          a handoff with the configured command (the outcome is logged); one that
 *                   cannot start is still answered over sd_notify (Type=notify-reload)
 *   SIGTERM/SIGINT  stop: the incumbent drains and exits within its grace, then exit 0
 *   second SIGINT   kill every child at once, exit 130
 * Logs are pino on stderr: readable lines on a terminal, JSON otherwise (--log-format overrides);
 * children inherit stdout, their stderr is passed on whole lines at a time, and their library
 * logger gets S's level and format (HANDOFF_LOG_LEVEL, HANDOFF_LOG_FORMAT).
 */

import fs from 'node:fs';
import path from 'node:path';
import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.js';
import { AdminStartError, startAdminServer, type AdminServer } from '../supervisor/admin.js';
import { ListenerError } from '../supervisor/listeners.js';
import { createNotifier } from '../supervisor/notify.js';
import { attachNotifier } from '../supervisor/notify-events.js';
import { StateDirBusyError } from '../supervisor/state-dir.js';
import { StartLimitError, Supervisor } from '../supervisor/supervisor.js';
import { ConfigReloadError, type HandoffRecord, type ReloadableOptions, type SupervisorOptions } from '../supervisor/types.js';
import { startWatchdog } from '../supervisor/watchdog.js';
import { createLogger as createServiceLogger, type LogFormat } from '../service/logger.js';
import { childEnvironment, type RunSettings } from './config.js';
import { CliError, EXIT } from './errors.js';
import { prepareSocketDir } from './paths.js';

/** The format `auto` means: pretty when S's stderr is a terminal. */
export function resolveLogFormat(format: RunSettings['logFormat'], isTTY: boolean): LogFormat {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}

/** S's logger on stderr. `pid` is S's own; records about a child name it `child_pid`. */
export function createLogger(level: string, format: LogFormat = 'json', env: NodeJS.ProcessEnv = process.env): Logger {
  return createServiceLogger({ name: 'handoff', level, format, color: format === 'pretty' && process.stderr.isTTY === true && env['NO_COLOR'] === undefined });
}

/**
 * Runs the supervisor until a signal stops it; resolves with the process exit code. `reread`
 * resolves the settings again from the same sources (SIGHUP, or a handoff request naming no
 * command, picks up an edited --config file); it throws a one-line error when they are invalid.
 */
export async function runSupervisor(s: RunSettings, stderr: { write(s: string): unknown }, reread?: () => RunSettings): Promise<number> {
  const logFormat = resolveLogFormat(s.logFormat, process.stderr.isTTY === true);
  const log = createLogger(s.logLevel, logFormat);
  // sd_notify first: it takes NOTIFY_SOCKET (and the watchdog WATCHDOG_USEC, WATCHDOG_PID) out of
  // the environment children inherit.
  const notifier = createNotifier(process.env, { logger: log.child({ component: 'notify' }) });
  const watchdog = startWatchdog(process.env, notifier, { logger: log.child({ component: 'watchdog' }) });
  const opts: SupervisorOptions = {
    command: s.command,
    args: s.args,
    listen: s.listen,
    ...(s.lockPath !== undefined ? { lockPath: s.lockPath } : {}),
    stateDir: s.stateDir,
    env: childEnvironment(process.env, { level: s.logLevel, format: logFormat }),
    helloTimeoutMs: s.helloTimeoutMs,
    drainGraceMs: s.drainGraceMs,
    deadlineMs: s.deadlineMs,
    exitTimeoutMs: s.exitTimeoutMs,
    killAfterMs: s.killAfterMs,
    heartbeatMs: s.heartbeatMs,
    heartbeatTimeoutMs: s.heartbeatTimeoutMs,
    restartInitialMs: s.restartInitialMs,
    restartMaxMs: s.restartMaxMs,
    startLimit: s.startLimit,
    allowExec: s.allowExec,
    ...(reread ? { reload: () => reloadable(s, reread, log) } : {}),
  };
  log.info(
    {
      instance: s.name,
      command: [s.command, ...s.args],
      listen: s.listen,
      lock: s.lockPath,
      state_dir: s.stateDir,
      admin_socket: s.adminSocket,
      allow_exec: s.allowExec,
      sources: s.sources,
    },
    'handoff run starting',
  );
  const sup = new Supervisor(opts, log.child({ component: 'supervisor' }));

  const fail = (msg: string): number => {
    log.error(msg);
    stderr.write(`handoff: ${msg}\n`);
    return EXIT.failed;
  };

  let admin: AdminServer;
  try {
    if (s.sources['admin-socket'] === 'default') prepareSocketDir(path.dirname(s.adminSocket));
  } catch (err) {
    watchdog.stop();
    if (err instanceof CliError) return fail(err.message);
    return fail(`cannot create the admin socket's directory ${path.dirname(s.adminSocket)}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  try {
    admin = await startAdminServer(sup, { socketPath: s.adminSocket, ...(s.adminGroup !== undefined ? { group: s.adminGroup } : {}), logger: log.child({ component: 'admin' }) });
  } catch (err) {
    watchdog.stop();
    if (err instanceof AdminStartError) return fail(err.message);
    throw err;
  }
  const notifierLink = attachNotifier(sup, notifier);

  return new Promise<number>((resolve) => {
    let stopping = false;
    let finished = false;
    const signals: Array<[NodeJS.Signals, () => void]> = [];

    const finish = async (code: number, waitForAdmin = true): Promise<void> => {
      if (finished) return;
      finished = true;
      for (const [sig, h] of signals) process.off(sig, h);
      process.off('uncaughtException', onFatal);
      watchdog.stop();
      notifierLink.detach();
      const closing = admin.close();
      if (waitForAdmin) await closing;
      else await Promise.race([closing, new Promise((r) => setTimeout(r, 100))]);
      await Promise.race([notifier.close(), new Promise((r) => setTimeout(r, 1000))]);
      resolve(code);
    };

    const stop = (signal: string): void => {
      if (stopping) {
        log.warn({ signal }, 'already stopping (a second SIGINT kills at once)');
        return;
      }
      stopping = true;
      log.info({ signal }, 'stopping: the incumbent drains and exits');
      sup.stop().then(
        () => {
          log.info('stopped');
          void finish(EXIT.ok);
        },
        (err: unknown) => {
          log.error({ err }, 'stop failed: killing the children');
          sup.kill();
          void finish(EXIT.failed);
        },
      );
    };

    const onTerm = (): void => stop('SIGTERM');
    const onInt = (): void => {
      if (stopping) {
        log.warn('second SIGINT: killing every child now');
        sup.kill();
        void finish(EXIT.interrupted, false);
        return;
      }
      stop('SIGINT');
    };
    const onHup = (): void => {
      if (stopping) {
        notifierLink.reloadRefused('the supervisor is stopping');
        return;
      }
      log.info({ signal: 'SIGHUP' }, 'SIGHUP: re-reading the configuration, then a handoff to the serving (or newly configured) command');
      let started: Promise<HandoffRecord>;
      try {
        started = sup.upgrade({});
      } catch (err) {
        started = Promise.reject(err instanceof Error ? err : new Error(String(err)));
      }
      started.then(
        (r) => {
          const fields = { handoff_id: r.handoff_id, outcome: r.outcome, reason: r.reason, total_ms: r.total_ms };
          if (r.outcome === 'committed') log.info(fields, 'SIGHUP handoff committed');
          else log.warn(fields, `SIGHUP handoff ${r.outcome}`);
        },
        (err: unknown) => {
          const why = err instanceof ProtocolError ? err.toReason() : err instanceof Error ? err.message : String(err);
          log.warn({ reason: why }, 'SIGHUP handoff not started');
          // STATUS= is readable by every user (systemctl status), and a JSON error quotes the file.
          notifierLink.reloadRefused(err instanceof ConfigReloadError ? 'configuration not reloaded: invalid (the journal says why)' : why);
        },
      );
    };
    const onFatal = (err: unknown): void => {
      // A bug in S: take the children down with it rather than leave them holding the sockets.
      log.fatal({ err }, 'uncaught exception: killing every child');
      try {
        sup.kill();
      } catch {
        // Going down anyway.
      }
      try {
        fs.rmSync(s.adminSocket, { force: true });
      } catch {
        // Going down anyway.
      }
      process.exit(EXIT.failed);
    };
    signals.push(['SIGTERM', onTerm], ['SIGINT', onInt], ['SIGHUP', onHup]);
    for (const [sig, h] of signals) process.on(sig, h);
    process.on('uncaughtException', onFatal);

    sup.start().then(
      () => {
        const st = sup.status();
        log.info({ incumbent: st.incumbent?.pid, listeners: st.listeners }, 'ready');
      },
      (err: unknown) => {
        if (stopping || finished) return;
        const msg =
          err instanceof StateDirBusyError || err instanceof ListenerError || err instanceof CliError || err instanceof StartLimitError
            ? err.message
            : err instanceof Error
              ? `cannot start: ${err.message.split('\n')[0] ?? ''}`
              : 'cannot start';
        fail(msg);
        if (err instanceof Error && !(err instanceof StateDirBusyError) && !(err instanceof ListenerError) && !(err instanceof StartLimitError)) log.debug({ err }, 'start failed');
        sup.kill();
        void finish(EXIT.failed);
      },
    );
  });
}

/** What a reload may change: the command and the allowlist. Anything else that changed is logged as needing a restart. */
function reloadable(first: RunSettings, reread: () => RunSettings, log: Logger): ReloadableOptions {
  let next: RunSettings;
  try {
    next = reread();
  } catch (err) {
    const msg = `configuration not reloaded: ${err instanceof Error ? (err.message.split('\n')[0] ?? '') : 'invalid'}`;
    log.error(msg);
    throw new ConfigReloadError(msg);
  }
  const fixed = ['listen', 'lockPath', 'stateDir', 'adminSocket'] as const;
  const changed = fixed.filter((k) => JSON.stringify(next[k]) !== JSON.stringify(first[k]));
  if (changed.length > 0) log.warn({ settings: changed }, 'these settings changed but take effect only when the supervisor restarts');
  return { command: next.command, args: next.args, allowExec: next.allowExec };
}
