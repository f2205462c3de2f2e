/** Where `handoff` looks for its admin socket and state directory by default. */

import fs from 'node:fs';
import path from 'node:path';

/**
 * The first directory of a systemd `*_DIRECTORY` variable: systemd joins several with `:`.
 * Empty means unset.
 */
export function firstDirectory(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const first = value.split(':')[0];
  return first === undefined || first === '' ? undefined : first;
}

/** `$RUNTIME_DIRECTORY/handoff.sock` when systemd sets RuntimeDirectory=, else `./handoff.sock`. */
export function defaultAdminSocket(env: NodeJS.ProcessEnv): string {
  const dir = firstDirectory(env['RUNTIME_DIRECTORY']);
  return dir === undefined ? './handoff.sock' : path.join(dir, 'handoff.sock');
}

/** `$STATE_DIRECTORY` when systemd sets StateDirectory=, else `./.handoff`. */
export function defaultStateDir(env: NodeJS.ProcessEnv): string {
  return firstDirectory(env['STATE_DIRECTORY']) ?? './.handoff';
}

/** The socket a client command talks to: `--admin-socket`, else HANDOFF_ADMIN_SOCKET, else the default. */
export function clientAdminSocket(flag: string | undefined, env: NodeJS.ProcessEnv): string {
  if (flag !== undefined && flag !== '') return flag;
  const fromEnv = env['HANDOFF_ADMIN_SOCKET'];
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  return defaultAdminSocket(env);
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
