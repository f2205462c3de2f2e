/**
 * The admin socket's file: a stale one (nothing answers a connect) is removed at start, a live one
 * makes the start fail; and the group that may use it, resolved to a gid.
 */

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import type { Logger } from 'pino';
import { AdminStartError } from './errors.js';

/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;

/** True when something accepts a connection on `p`; false when nothing does (a stale file). */
function probe(p: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(p);
    const timer = setTimeout(() => {
      sock.destroy();
      // A socket that neither accepts nor refuses is held by a live (if stuck) process.
      resolve(true);
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(new AdminStartError(`cannot check whether ${p} is in use: ${err.code ?? err.message}`));
    });
  });
}

export async function clearStaleSocket(p: string, log: Logger): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AdminStartError(`cannot use admin socket ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!st.isSocket()) throw new AdminStartError(`admin socket path ${p} exists and is not a socket: refusing to replace it`);
  if (await probe(p)) throw new AdminStartError(`another supervisor is listening on ${p}`);
  log.warn({ socket: p }, 'removing a stale admin socket (nothing answers on it)');
  try {
    fs.unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new AdminStartError(`cannot remove stale admin socket ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** A group name or numeric gid to a gid, through NSS (getent) and then /etc/group. */
export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(group)) throw new AdminStartError(`invalid group name '${group}'`);
  const fromLine = (line: string): number | undefined => {
    const [name, , gid] = line.split(':');
    return name === group && gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined;
  };
  try {
    const out = execFileSync('getent', ['group', group], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    const gid = fromLine(out.trim().split('\n')[0] ?? '');
    if (gid !== undefined) return gid;
  } catch {
    // No getent, or no such group in NSS: try the file.
  }
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const gid = fromLine(line);
      if (gid !== undefined) return gid;
    }
  } catch {
    // No /etc/group.
  }
  throw new AdminStartError(`unknown group '${group}' (--admin-group)`);
}
