/**
 * What serves, and what a cold start or a plain upgrade runs next: the command that last served
 * (recorded in the state directory, so that a restarted S runs what committed), unless the
 * configured command changed since; and the reload of that configuration.
 */

import type { Logger } from 'pino';
import { isAllowedExec } from './allowlist.js';
import type { ServiceChild } from './child.js';
import type { StateDir } from './state-dir.js';
import type { ReloadableOptions, ServingCommand, SupervisorOptions } from './types.js';

function sameCommand(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

function configured(opts: SupervisorOptions): string[] {
  return [opts.command, ...opts.args];
}

export class Serving {
  /** What serves, as recorded in the state directory. */
  private current: ServingCommand | undefined;

  constructor(
    private readonly stateDir: StateDir,
    private readonly log: Logger,
  ) {}

  /** Reads what served before this S started. */
  load(): void {
    this.current = this.stateDir.readServing();
  }

  /** The command a cold start or a plain upgrade runs: what last served, unless the configuration changed since. */
  target(opts: SupervisorOptions): string[] {
    const conf = configured(opts);
    const rec = this.current;
    if (!rec || !sameCommand(rec.configured, conf) || sameCommand(rec.command, conf)) return conf;
    const program = rec.command[0] ?? '';
    if (!isAllowedExec(program, opts.command, opts.allowExec)) {
      this.log.warn({ serving: rec.command }, 'the recorded serving command is no longer allowed (--allow-exec): using the configured one');
      return conf;
    }
    return rec.command;
  }

  /** `child` serves now: recorded (written only when something changed). */
  record(child: ServiceChild, opts: SupervisorOptions): void {
    const rec: ServingCommand = { command: child.command, configured: configured(opts), build_id: child.buildId ?? '', at: new Date().toISOString() };
    const prev = this.current;
    this.current = rec;
    if (prev && sameCommand(prev.command, rec.command) && sameCommand(prev.configured, rec.configured) && prev.build_id === rec.build_id) return;
    try {
      this.stateDir.writeServing(rec);
    } catch (err) {
      this.log.error({ err: (err as Error).message }, 'cannot record the serving command in the state directory');
    }
  }
}

/** Re-reads the configuration (when S was given a way to): a changed command is the next target. Throws what `reload` throws. */
export function reloadOptions(opts: SupervisorOptions, log: Logger): SupervisorOptions {
  if (!opts.reload) return opts;
  const next: ReloadableOptions = opts.reload();
  const before = configured(opts);
  const after = [next.command, ...next.args];
  if (!sameCommand(before, after)) log.info({ previous: before, configured: after }, 'configuration reloaded: the configured command changed');
  return { ...opts, command: next.command, args: next.args, allowExec: next.allowExec };
}
