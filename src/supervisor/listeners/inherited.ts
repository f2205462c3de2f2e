/** Listeners passed by systemd socket activation, used instead of binding our own. */

import fs from 'node:fs';
import type { Logger } from 'pino';
import { ContractError, listenFds } from '../../shared/contract.js';
import { ListenerError } from './error.js';
import type { HeldListener } from './held.js';
import { SocketTable } from './proc-net.js';
import { isValidListenerName } from './spec.js';

/**
 * The listeners systemd passed (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID), at fds 3..3+n-1; null when
 * none were passed to this process. Removes the three variables from `env` in every case, so that
 * children never see stale ones (S sets its own per child). Names default to `fdN` when
 * LISTEN_FDNAMES is missing. The address is read from /proc/net: `fd:N` when not found there, or when
 * the unix path it shows is no longer a socket (a socket S bound itself was bound under a temporary
 * name, see helper.ts).
 */
export function inheritedListeners(env: NodeJS.ProcessEnv = process.env, opts: { logger?: Logger } = {}): HeldListener[] | null {
  const fdsText = env['LISTEN_FDS'];
  const pidText = env['LISTEN_PID'];
  const namesText = env['LISTEN_FDNAMES'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDNAMES'];
  if (fdsText === undefined) return null;
  if (pidText !== undefined && pidText !== String(process.pid)) {
    opts.logger?.warn({ LISTEN_PID: pidText, pid: process.pid }, 'LISTEN_FDS is meant for another process; ignored');
    return null;
  }
  let fds: Array<{ fd: number; name: string | undefined }>;
  try {
    fds = listenFds({ LISTEN_FDS: fdsText, LISTEN_FDNAMES: namesText });
  } catch (e) {
    if (e instanceof ContractError) throw new ListenerError('bad_inherited', e.message);
    throw e;
  }
  if (fds.length === 0) return null;
  const named = fds.map(({ fd, name }) => ({ fd, name: name !== undefined && isValidListenerName(name) ? name : `fd${fd}` }));
  const seen = new Set<string>();
  for (const { name } of named) {
    if (seen.has(name)) throw new ListenerError('duplicate_name', `LISTEN_FDNAMES names ${JSON.stringify(name)} twice`, name);
    seen.add(name);
  }
  const table = new SocketTable();
  return named.map(({ fd, name }) => {
    let isSocket: boolean;
    try {
      isSocket = fs.fstatSync(fd).isSocket();
    } catch (e) {
      throw new ListenerError('bad_inherited', `inherited fd ${fd} (${JSON.stringify(name)}) is not open: ${(e as Error).message}`, name);
    }
    if (!isSocket) throw new ListenerError('bad_inherited', `inherited fd ${fd} (${JSON.stringify(name)}) is not a socket`, name);
    const address = table.addressOf(fd) ?? `fd:${fd}`;
    opts.logger?.debug({ listener: name, fd, address }, 'listener inherited');
    let open = true;
    return {
      name,
      fd,
      address,
      close(): void {
        if (!open) return;
        open = false;
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      },
    };
  });
}
