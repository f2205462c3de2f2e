/**
 * Where `handoff` keeps its admin socket and state directory by default. Never the current
 * directory: a supervisor started from another directory, and every client command, find the same
 * socket. Under systemd, RuntimeDirectory= and StateDirectory= (already one per unit instance);
 * otherwise per-user (or, for root, system) directories with one entry per instance name:
 *
 *   admin socket   $RUNTIME_DIRECTORY/handoff.sock, else <runtime>/<name>.sock where <runtime> is
 *                  /run/handoff (root), $XDG_RUNTIME_DIR/handoff, /run/user/<uid>/handoff, or
 *                  <tmpdir>/handoff-<uid>
 *   state dir      $STATE_DIRECTORY, else <state>/<name> where <state> is /var/lib/handoff (root),
 *                  $XDG_STATE_HOME/handoff, or ~/.local/state/handoff
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { usageError } from './errors.js';

/**
 * The first directory of a systemd `*_DIRECTORY` variable: systemd joins several with `:`.
 * Empty means unset.
 */
export function firstDirectory(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const first = value.split(':')[0];
  return first === undefined || first === '' ? undefined : first;
}

/** What the defaults depend on besides the environment (tests pass their own). */
export interface Host {
  uid: number;
  home: string;
  tmpdir: string;
  exists(p: string): boolean;
}

export function realHost(): Host {
  return { uid: process.getuid?.() ?? 0, home: os.homedir(), tmpdir: os.tmpdir(), exists: (p) => fs.existsSync(p) };
}

/** An instance name: a file name, short enough for the socket path. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export function checkName(name: string, where = '--name'): string {
  if (!NAME.test(name)) throw usageError(`${where}: '${name}' is not an instance name (letters, digits, '.', '_', '-'; at most 64; not starting with '.' or '-')`);
  return name;
}

/** The default instance name: the command's basename (`/usr/bin/kv-server` → `kv-server`). */
export function defaultName(command: string): string {
  const base = path
    .basename(command)
    .replace(/[^A-Za-z0-9._-]/g, '-')
    .replace(/^[.-]+/, '')
    .slice(0, 64);
  return base === '' ? 'handoff' : base;
}

/** The directory holding every instance's admin socket. */
export function runtimeBase(env: NodeJS.ProcessEnv, host: Host = realHost()): string {
  if (host.uid === 0) return '/run/handoff';
  const xdg = env['XDG_RUNTIME_DIR'];
  if (xdg !== undefined && xdg !== '') return path.join(xdg, 'handoff');
  const perUser = `/run/user/${host.uid}`;
  if (host.exists(perUser)) return path.join(perUser, 'handoff');
  return path.join(host.tmpdir, `handoff-${host.uid}`);
}

/** The directory holding every instance's state directory. */
export function stateBase(env: NodeJS.ProcessEnv, host: Host = realHost()): string {
  if (host.uid === 0) return '/var/lib/handoff';
  const xdg = env['XDG_STATE_HOME'];
  if (xdg !== undefined && xdg !== '' && path.isAbsolute(xdg)) return path.join(xdg, 'handoff');
  return path.join(host.home, '.local', 'state', 'handoff');
}

/** `$RUNTIME_DIRECTORY/handoff.sock` under systemd, else `<runtime>/<name>.sock`. */
export function defaultAdminSocket(env: NodeJS.ProcessEnv, name: string, host?: Host): string {
  const dir = firstDirectory(env['RUNTIME_DIRECTORY']);
  return dir !== undefined ? path.join(dir, 'handoff.sock') : path.join(runtimeBase(env, host), `${name}.sock`);
}

/** `$STATE_DIRECTORY` under systemd, else `<state>/<name>`. */
export function defaultStateDir(env: NodeJS.ProcessEnv, name: string, host?: Host): string {
  return firstDirectory(env['STATE_DIRECTORY']) ?? path.join(stateBase(env, host), name);
}

/**
 * Creates the directory of a default admin socket. The fallback under the shared tmpdir must be
 * this user's own and closed to others: anyone could have created it first.
 */
export function prepareSocketDir(dir: string, host: Host = realHost()): void {
  const shared = path.dirname(dir) === host.tmpdir;
  fs.mkdirSync(dir, { recursive: true, mode: shared ? 0o700 : 0o755 });
  if (!shared) return;
  const st = fs.lstatSync(dir);
  if (!st.isDirectory() || st.uid !== host.uid || (st.mode & 0o077) !== 0) {
    throw usageError(`${dir} is not a private directory of this user: pass --admin-socket, or set XDG_RUNTIME_DIR`);
  }
}

/**
 * The socket a client command talks to: `--admin-socket`, else HANDOFF_ADMIN_SOCKET, else
 * `$RUNTIME_DIRECTORY/handoff.sock` (systemd's ExecReload=), else the instance `--name` (or
 * HANDOFF_NAME) names, else the only instance running for this user.
 */
export function clientAdminSocket(flag: string | undefined, env: NodeJS.ProcessEnv, name?: string, host?: Host): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env['HANDOFF_ADMIN_SOCKET'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const runtimeDir = firstDirectory(env['RUNTIME_DIRECTORY']);
  if (runtimeDir !== undefined) return path.join(runtimeDir, 'handoff.sock');
  const named = name !== undefined && name !== '' ? name : env['HANDOFF_NAME'] !== undefined && env['HANDOFF_NAME'] !== '' ? env['HANDOFF_NAME'] : undefined;
  const base = runtimeBase(env, host);
  if (named !== undefined) return path.join(base, `${checkName(named)}.sock`);
  const running = instances(base);
  if (running.length === 1) return path.join(base, `${running[0] ?? ''}.sock`);
  if (running.length === 0) throw usageError(`no supervisor running (no admin socket in ${base}): is 'handoff run' running? pass --name or --admin-socket`);
  throw usageError(`several supervisors run (${running.join(', ')}): pass --name`);
}

/** The instance names with a socket in `base`, sorted. */
export function instances(base: string): string[] {
  let entries: fs.Dirent[];
  try {
    entries = fs.readdirSync(base, { withFileTypes: true });
  } catch {
    return [];
  }
  return entries
    .filter((e) => e.isSocket() && e.name.endsWith('.sock'))
    .map((e) => e.name.slice(0, -'.sock'.length))
    .sort();
}

function isExecutableFile(p: string): boolean {
  try {
    if (!fs.statSync(p).isFile()) return false;
    fs.accessSync(p, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * A command as an absolute path: a bare name is looked up in PATH (as the shell and spawn do), a
 * path is resolved against `cwd`. Undefined when no executable file is found.
 */
export function resolveCommand(command: string, env: NodeJS.ProcessEnv, cwd: string): string | undefined {
  if (command.includes('/')) {
    const p = path.resolve(cwd, command);
    return isExecutableFile(p) ? p : undefined;
  }
  for (const dir of (env['PATH'] ?? '').split(':')) {
    if (dir === '') continue;
    const p = path.resolve(cwd, dir, command);
    if (isExecutableFile(p)) return p;
  }
  return undefined;
}
