/**
 * The options of `handoff run`, from four sources: flags win over `HANDOFF_*` environment variables,
 * which win over the `--config` JSON file, which wins over the defaults. One table drives the flags,
 * their help text (with defaults and variable names), the environment and the config file keys.
 */

import fs from 'node:fs';
import path from 'node:path';
import { ListenerError, parseListens } from '../supervisor/listeners.js';
import { DEFAULT_OPTIONS, type SupervisorOptions } from '../supervisor/types.js';
import { durationLabel, DurationError, parseDuration } from './duration.js';
import { usageError } from './errors.js';
import { LOG_FORMATS, type LogFormat } from '../service/logger.js';
import { checkName, defaultAdminSocket, defaultName, defaultStateDir, resolveCommand, type Host } from './paths.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

type DurationKey = 'helloTimeoutMs' | 'drainGraceMs' | 'deadlineMs' | 'exitTimeoutMs' | 'killAfterMs' | 'heartbeatMs' | 'heartbeatTimeoutMs' | 'restartInitialMs' | 'restartMaxMs';

/** The supervisor's own options (the durations come from there), plus what only `run` has. */
export interface RunSettings extends Pick<SupervisorOptions, 'command' | 'args' | 'listen' | 'stateDir' | 'allowExec' | 'startLimit' | DurationKey> {
  lockPath: string | undefined;
  adminSocket: string;
  adminGroup: string | undefined;
  /** The instance name: the default admin socket and state directory are named by it. */
  name: string;
  logLevel: LogLevel;
  /** `auto`: pretty when S's stderr is a terminal, JSON otherwise. */
  logFormat: LogFormat | 'auto';
  verbose: boolean;
  /** Where each setting came from, for the startup log. */
  sources: Record<string, 'flag' | 'env' | 'config' | 'default'>;
}

type Kind = 'list' | 'string' | 'duration' | 'level' | 'bool' | 'count';

export interface RunOptionSpec {
  /** The long flag without dashes; also the config file key. */
  name: string;
  kind: Kind;
  /** `<value>` placeholder in help. */
  arg?: string;
  help: string;
  /** Default shown in help; computed defaults say where they come from. */
  defaultText: string;
  /** For lists in the environment: how entries are separated. */
  envSeparator?: 'whitespace' | 'colon';
  durationKey?: DurationKey;
}

const d = (ms: number): string => durationLabel(ms);

export const RUN_OPTIONS: readonly RunOptionSpec[] = [
  { name: 'listen', kind: 'list', arg: 'spec', envSeparator: 'whitespace', help: 'a socket S binds and holds for its whole life: NAME=tcp://HOST:PORT or NAME=unix:/PATH (repeatable; port 0 picks a free port)', defaultText: 'none: the sockets systemd passes in LISTEN_FDS' },
  { name: 'lock', kind: 'string', arg: 'path', help: 'the data-dir lock S arbitrates between old and new (passed to children as HANDOFF_LOCK_PATH)', defaultText: 'none' },
  { name: 'name', kind: 'string', arg: 'name', help: 'the instance name: names the default admin socket and state directory, and client commands find the supervisor by it', defaultText: "the command's basename" },
  { name: 'state-dir', kind: 'string', arg: 'dir', help: 'where the handoff history and the in-flight journal live', defaultText: '$STATE_DIRECTORY when systemd sets it, else $XDG_STATE_HOME/handoff/<name> (~/.local/state/handoff/<name>; root: /var/lib/handoff/<name>)' },
  { name: 'admin-socket', kind: 'string', arg: 'path', help: 'the admin API socket (mode 0600)', defaultText: '$RUNTIME_DIRECTORY/handoff.sock when systemd sets it, else $XDG_RUNTIME_DIR/handoff/<name>.sock (/run/user/<uid>/..., else $TMPDIR/handoff-<uid>/...; root: /run/handoff/<name>.sock)' },
  { name: 'admin-group', kind: 'string', arg: 'name', help: 'a group that may also use the admin socket (mode 0660, chgrp to it)', defaultText: 'none' },
  { name: 'allow-exec', kind: 'list', arg: 'path', envSeparator: 'colon', help: "another program a handoff request may name with 'handoff upgrade --exec' (repeatable)", defaultText: 'none: only the configured command' },
  { name: 'hello-timeout', kind: 'duration', arg: 'duration', durationKey: 'helloTimeoutMs', help: 'how long a new process has to say Hello', defaultText: d(DEFAULT_OPTIONS.helloTimeoutMs) },
  { name: 'drain-grace', kind: 'duration', arg: 'duration', durationKey: 'drainGraceMs', help: 'how long the incumbent may take to drain its connections', defaultText: d(DEFAULT_OPTIONS.drainGraceMs) },
  { name: 'deadline', kind: 'duration', arg: 'duration', durationKey: 'deadlineMs', help: "how long a handoff may take from the successor's Hello to Ready", defaultText: d(DEFAULT_OPTIONS.deadlineMs) },
  { name: 'exit-timeout', kind: 'duration', arg: 'duration', durationKey: 'exitTimeoutMs', help: 'how long the old process has to exit after Commit before SIGTERM', defaultText: d(DEFAULT_OPTIONS.exitTimeoutMs) },
  { name: 'kill-after', kind: 'duration', arg: 'duration', durationKey: 'killAfterMs', help: 'how long after SIGTERM before SIGKILL', defaultText: d(DEFAULT_OPTIONS.killAfterMs) },
  { name: 'heartbeat', kind: 'duration', arg: 'duration', durationKey: 'heartbeatMs', help: 'heartbeat interval, both ways', defaultText: d(DEFAULT_OPTIONS.heartbeatMs) },
  { name: 'heartbeat-timeout', kind: 'duration', arg: 'duration', durationKey: 'heartbeatTimeoutMs', help: 'silence after which a process in a handoff is killed', defaultText: d(DEFAULT_OPTIONS.heartbeatTimeoutMs) },
  { name: 'restart-initial', kind: 'duration', arg: 'duration', durationKey: 'restartInitialMs', help: 'first delay before restarting a dead incumbent (doubles each time)', defaultText: d(DEFAULT_OPTIONS.restartInitialMs) },
  { name: 'restart-max', kind: 'duration', arg: 'duration', durationKey: 'restartMaxMs', help: 'longest delay between restarts', defaultText: d(DEFAULT_OPTIONS.restartMaxMs) },
  { name: 'start-limit', kind: 'count', arg: 'n', help: 'cold starts that may fail in a row before anything served; then handoff run exits 1 with the last reason (systemd: StartLimitBurst)', defaultText: String(DEFAULT_OPTIONS.startLimit) },
  { name: 'log-format', kind: 'string', arg: 'format', help: `log format of S and of the children (HANDOFF_LOG_FORMAT): ${LOG_FORMATS.join(', ')}`, defaultText: 'pretty on a terminal, else json' },
  { name: 'log-level', kind: 'level', arg: 'level', help: `log level of S and of the children (HANDOFF_LOG_LEVEL): ${LOG_LEVELS.join(', ')}`, defaultText: 'info (debug with --verbose)' },
  { name: 'verbose', kind: 'bool', help: 'debug logs, and stack traces with errors', defaultText: 'off' },
];

/** `drain-grace` → `HANDOFF_DRAIN_GRACE`. */
export function envName(name: string): string {
  return `HANDOFF_${name.toUpperCase().replace(/-/g, '_')}`;
}

/** `drain-grace` → `drainGrace`, the key commander gives a flag. */
export function camel(name: string): string {
  return name.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}

/** The environment variables `handoff run` reads; children do not inherit them. */
export const RUN_ENV_VARS: readonly string[] = [...RUN_OPTIONS.map((o) => envName(o.name)), 'HANDOFF_CONFIG'];

export type RunFlags = Partial<Record<string, string | string[] | boolean | undefined>>;

type Raw = string | number | boolean | string[];

function parseBool(v: string, where: string): boolean {
  const s = v.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(s)) return true;
  if (['', '0', 'false', 'no', 'off'].includes(s)) return false;
  throw usageError(`${where}: expected a boolean (1/0, true/false, yes/no, on/off), got '${v}'`);
}

function splitList(v: string, sep: 'whitespace' | 'colon' | undefined): string[] {
  const parts = sep === 'colon' ? v.split(':') : v.split(/\s+/);
  return parts.map((p) => p.trim()).filter((p) => p !== '');
}

function readConfig(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw usageError(`cannot read config file ${file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (err) {
    // V8's message quotes the text around the error, and the file may hold secrets: this message
    // also reaches admin API clients (a reload's invalid_config). Say where, not what.
    const at = /position (\d+)/.exec((err as Error).message)?.[1];
    throw usageError(`config file ${file} is not valid JSON${at === undefined ? '' : ` (at ${lineColumn(text, Number(at))})`}`);
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw usageError(`config file ${file} must hold a JSON object`);
  const obj = v as Record<string, unknown>;
  const known = new Set([...RUN_OPTIONS.map((o) => o.name), 'command']);
  for (const k of Object.keys(obj)) {
    if (!known.has(k)) throw usageError(`config file ${file}: unknown key '${k}' (keys are the long flag names of 'handoff run', and "command")`);
  }
  return obj;
}

function fromConfig(spec: RunOptionSpec, v: unknown, file: string): Raw {
  const where = `config file ${file}: '${spec.name}'`;
  switch (spec.kind) {
    case 'list':
      if (typeof v === 'string') return [v];
      if (Array.isArray(v) && v.every((x) => typeof x === 'string')) return v;
      throw usageError(`${where} must be a string or an array of strings`);
    case 'duration':
      if (typeof v === 'string' || typeof v === 'number') return v;
      throw usageError(`${where} must be a duration string with a unit (e.g. "5s")`);
    case 'bool':
      if (typeof v === 'boolean') return v;
      throw usageError(`${where} must be true or false`);
    case 'count':
      if (typeof v === 'number' || typeof v === 'string') return String(v);
      throw usageError(`${where} must be a whole number`);
    default:
      if (typeof v === 'string') return v;
      throw usageError(`${where} must be a string`);
  }
}

/**
 * Resolves every option of `handoff run`. `flags` are commander's parsed options (undefined when not
 * given), `positional` the command after `--`, `env` the environment, `cwd` for relative paths.
 */
export function resolveRunSettings(flags: RunFlags, positional: readonly string[], env: NodeJS.ProcessEnv, cwd = process.cwd(), host?: Host): RunSettings {
  const configFlag = flags['config'];
  const configFile = typeof configFlag === 'string' ? configFlag : env['HANDOFF_CONFIG'] !== undefined && env['HANDOFF_CONFIG'] !== '' ? env['HANDOFF_CONFIG'] : undefined;
  const config = configFile !== undefined ? readConfig(path.resolve(cwd, configFile)) : {};
  const sources: RunSettings['sources'] = {};

  const pick = (spec: RunOptionSpec): Raw | undefined => {
    const flag = flags[camel(spec.name)];
    if (flag !== undefined && !(Array.isArray(flag) && flag.length === 0)) {
      sources[spec.name] = 'flag';
      return flag;
    }
    const e = env[envName(spec.name)];
    if (e !== undefined && e !== '') {
      sources[spec.name] = 'env';
      if (spec.kind === 'list') return splitList(e, spec.envSeparator);
      if (spec.kind === 'bool') return parseBool(e, envName(spec.name));
      return e;
    }
    if (config[spec.name] !== undefined) {
      sources[spec.name] = 'config';
      return fromConfig(spec, config[spec.name], configFile ?? '');
    }
    sources[spec.name] = 'default';
    return undefined;
  };

  const values = new Map<string, Raw | undefined>(RUN_OPTIONS.map((s) => [s.name, pick(s)]));
  const str = (name: string): string | undefined => {
    const v = values.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  const list = (name: string): string[] => {
    const v = values.get(name);
    return Array.isArray(v) ? v : typeof v === 'string' ? [v] : [];
  };

  const durations = {} as Record<DurationKey, number>;
  for (const spec of RUN_OPTIONS) {
    if (spec.kind !== 'duration' || spec.durationKey === undefined) continue;
    const v = values.get(spec.name);
    if (v === undefined) {
      durations[spec.durationKey] = DEFAULT_OPTIONS[spec.durationKey];
      continue;
    }
    try {
      durations[spec.durationKey] = parseDuration(typeof v === 'number' ? v : String(v));
    } catch (err) {
      const src = sources[spec.name] === 'env' ? envName(spec.name) : sources[spec.name] === 'config' ? `config '${spec.name}'` : `--${spec.name}`;
      throw usageError(`${src}: ${err instanceof DurationError ? err.message : 'invalid duration'}`);
    }
  }
  if (durations.heartbeatTimeoutMs <= durations.heartbeatMs) {
    throw usageError(`--heartbeat-timeout (${durations.heartbeatTimeoutMs} ms) must be longer than --heartbeat (${durations.heartbeatMs} ms)`);
  }
  if (durations.restartMaxMs < durations.restartInitialMs) {
    throw usageError(`--restart-max (${durations.restartMaxMs} ms) must not be shorter than --restart-initial (${durations.restartInitialMs} ms)`);
  }

  let startLimit: number = DEFAULT_OPTIONS.startLimit;
  const limitRaw = values.get('start-limit');
  if (limitRaw !== undefined) {
    const text = String(limitRaw).trim();
    startLimit = /^\d+$/.test(text) ? Number(text) : NaN;
    if (!Number.isSafeInteger(startLimit) || startLimit < 1) throw usageError(`--start-limit: expected a whole number of at least 1, got '${String(limitRaw)}'`);
  }

  const verboseRaw = values.get('verbose');
  const verbose = verboseRaw === true;
  const levelRaw = str('log-level');
  let logLevel: LogLevel = verbose ? 'debug' : 'info';
  if (levelRaw !== undefined) {
    const l = levelRaw.trim().toLowerCase();
    if (!(LOG_LEVELS as readonly string[]).includes(l)) throw usageError(`log level '${levelRaw}' is not one of ${LOG_LEVELS.join(', ')}`);
    logLevel = l as LogLevel;
  }
  const formatRaw = str('log-format');
  let logFormat: RunSettings['logFormat'] = 'auto';
  if (formatRaw !== undefined && formatRaw.trim() !== '') {
    const f = formatRaw.trim().toLowerCase();
    if (!(LOG_FORMATS as readonly string[]).includes(f)) throw usageError(`log format '${formatRaw}' is not one of ${LOG_FORMATS.join(', ')}`);
    logFormat = f as LogFormat;
  }

  let command: string | undefined;
  let args: string[] = [];
  if (positional.length > 0) {
    command = positional[0];
    args = positional.slice(1);
    sources['command'] = 'flag';
  } else if (config['command'] !== undefined) {
    const c = config['command'];
    if (!Array.isArray(c) || c.length === 0 || !c.every((x) => typeof x === 'string') || c[0] === '') {
      throw usageError(`config file ${configFile ?? ''}: 'command' must be a non-empty array of strings ([program, ...args])`);
    }
    command = c[0];
    args = (c).slice(1);
    sources['command'] = 'config';
  }
  if (command === undefined || command === '') throw usageError("no command to supervise: handoff run [options] -- <command> [args...]");
  // Absolute, as systemd wants ExecStart=: a missing program is a usage error now rather than a
  // restart loop later, and `handoff upgrade --exec` can name it by the same path.
  const resolved = resolveCommand(command, env, cwd);
  if (resolved === undefined) throw usageError(`command not found or not executable: ${command}`);
  command = resolved;

  const listen = list('listen');
  try {
    parseListens(listen);
  } catch (err) {
    if (err instanceof ListenerError) throw usageError(`--listen: ${err.message}`);
    throw err;
  }
  const adminGroup = str('admin-group');
  const lock = str('lock');
  const nameRaw = str('name');
  const name = nameRaw !== undefined && nameRaw !== '' ? checkName(nameRaw) : defaultName(command);
  const socketRaw = str('admin-socket');
  return {
    command,
    args,
    listen,
    lockPath: lock === undefined || lock === '' ? undefined : path.resolve(cwd, lock),
    stateDir: path.resolve(cwd, str('state-dir') ?? defaultStateDir(env, name, host)),
    adminSocket: socketRaw !== undefined && socketRaw !== '' ? socketRaw : defaultAdminSocket(env, name, host),
    adminGroup: adminGroup === '' ? undefined : adminGroup,
    name,
    allowExec: list('allow-exec').map((p) => path.resolve(cwd, p)),
    startLimit,
    ...durations,
    logLevel,
    logFormat,
    verbose,
    sources,
  };
}

/**
 * The environment children inherit: S's own, without the variables that configured S, plus S's log
 * level and format for the library's default logger (so `--log-level debug` reaches the services).
 */
export function childEnvironment(env: NodeJS.ProcessEnv, log?: { level: string; format: LogFormat }): NodeJS.ProcessEnv {
  const out: NodeJS.ProcessEnv = { ...env };
  for (const k of RUN_ENV_VARS) delete out[k];
  if (log) {
    out['HANDOFF_LOG_LEVEL'] = log.level;
    out['HANDOFF_LOG_FORMAT'] = log.format;
  }
  return out;
}

/** `line L, column C` (1-based) of a character offset in `text`. */
function lineColumn(text: string, offset: number): string {
  const before = text.slice(0, offset);
  const line = before.split('\n').length;
  return `line ${line}, column ${offset - before.lastIndexOf('\n')}`;
}
