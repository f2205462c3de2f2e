/**
 * The listening sockets S holds for its whole life: the module the rest of handoff imports.
 *
 * S binds them through a short-lived helper process so that it never accepts a connection itself
 * (listeners/bind.ts says why), or inherits them from systemd socket activation. The parts live in
 * listeners/, one concept each:
 *   spec.ts       parsing `NAME=tcp://HOST:PORT` / `NAME=unix:/PATH`
 *   bind.ts       binding through the helper; helper.ts is the helper's program and messages
 *   inherited.ts  LISTEN_FDS / LISTEN_FDNAMES / LISTEN_PID
 *   proc-net.ts   a listening socket's address from /proc/net
 *   error.ts, held.ts  the error and listener types they share
 */

export { ListenerError, type ListenerErrorCode } from './listeners/error.js';
export type { HeldListener } from './listeners/held.js';
export { MAX_UNIX_PATH_BYTES, isValidListenerName, parseListen, parseListens, type ListenerSpec } from './listeners/spec.js';
export { LISTEN_BACKLOG, UNIX_SOCKET_MODE, bindListeners, type BindOptions } from './listeners/bind.js';
export { inheritedListeners } from './listeners/inherited.js';
export { parseProcTcpAddress, socketAddress } from './listeners/proc-net.js';
