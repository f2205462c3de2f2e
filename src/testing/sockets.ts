/**
 * The descriptors a fake supervisor hands a service in this process, as S hands them to a child:
 * listening sockets it holds but never accepts on (bound by S's own helper), and for each service a
 * connected control channel. A service owns and closes what it is given, so it gets duplicates
 * (Node has no dup(2); the service library's helper makes them over SCM_RIGHTS).
 */

import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { duplicateFds, type RawHandle } from '../service/fd-dup.js';
import { bindListeners, parseListen, type HeldListener } from '../supervisor/listeners.js';

/**
 * Descriptors handed to a service by number: the service owns them now, so their wraps here must
 * never be closed (the number may be reused once the service closes it). Kept referenced for that.
 */
const handedOver: RawHandle[] = [];

/** `http` is short for `http=tcp://127.0.0.1:0` (a free port); full specs are as `handoff run --listen`. */
export function bindHeld(listen: readonly string[]): Promise<HeldListener[]> {
  return bindListeners(listen.map((l) => parseListen(l.includes('=') ? l : `${l}=tcp://127.0.0.1:0`)));
}

export interface ServiceFds {
  /** The service's end of the control channel. */
  sockFd: number;
  /** One descriptor per held listener, in order. */
  listenerFds: number[];
  /** The supervisor's end of the control channel. */
  socket: net.Socket;
}

/** A connected control channel and listener duplicates for one service: one helper run for all. */
export async function serviceFds(held: readonly HeldListener[]): Promise<ServiceFds> {
  // An abstract unix socket (Linux): nothing on disk to clean up.
  const name = `\0handoff-testing-${process.pid}-${randomBytes(8).toString('hex')}`;
  const server = net.createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(name, resolve);
  });
  const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
  const client = net.connect(name);
  await new Promise<void>((resolve, reject) => {
    client.once('error', reject);
    client.once('connect', resolve);
  });
  const socket = await accepted;
  server.close();
  const clientFd = (client as unknown as { _handle: { fd: number } })._handle.fd;
  try {
    const got = await duplicateFds([clientFd, ...held.map((h) => h.fd)], [1, ...held.map(() => 1)]);
    const handles = got.map((g) => g[0]!);
    handedOver.push(...handles);
    return { sockFd: handles[0]!.fd, listenerFds: handles.slice(1).map((h) => h.fd), socket };
  } catch (err) {
    socket.destroy();
    throw err;
  } finally {
    // The service's end is the duplicate; this one would read what is meant for the service.
    client.destroy();
  }
}

/** The port of a held TCP listener (its address is `tcp://HOST:PORT`). */
export function portOf(l: HeldListener): number {
  const m = /^tcp:\/\/.*:(\d+)$/.exec(l.address);
  if (!m) throw new Error(`listener ${JSON.stringify(l.name)} is not a TCP socket (${l.address})`);
  return Number(m[1]);
}
