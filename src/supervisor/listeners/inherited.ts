/** Listeners passed by systemd socket activation, used instead of binding our own. */

import fs from 'node:fs';
import type { Logger } from 'pino';
import { ListenerError } from './error.js';
import type { HeldListener } from './held.js';
import { SocketTable } from './proc-net.js';
import { isValidListenerName } from './spec.js';

const SD_LISTEN_FDS_START = 3;

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
  if (!/^[0-9]{1,6}$/.test(fdsText)) throw new ListenerError('bad_inherited', `LISTEN_FDS=${JSON.stringify(fdsText.slice(0, 20))} is not a count`);
  const n = Number(fdsText);
  if (n === 0) return null;
  let names: string[];
  if (namesText === undefined) {
    names = Array.from({ length: n }, (_, i) => `fd${SD_LISTEN_FDS_START + i}`);
  } else {
    names = namesText.split(':');
    if (names.length !== n) {
      throw new ListenerError('bad_inherited', `LISTEN_FDNAMES has ${names.length} names for LISTEN_FDS=${n}`);
    }
    names = names.map((name, i) => (isValidListenerName(name) ? name : `fd${SD_LISTEN_FDS_START + i}`));
  }
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new ListenerError('duplicate_name', `LISTEN_FDNAMES names ${JSON.stringify(name)} twice`, name);
    seen.add(name);
  }
  const table = new SocketTable();
  return names.map((name, i) => {
    const fd = SD_LISTEN_FDS_START + i;
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
