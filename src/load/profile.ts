/** The load the demo runs, which the handoff and stress benches reuse so that their numbers compare. */

import type { LoadOptions } from './generator.js';

/** Per client: one request per interval at most (20 clients: up to 800 requests/s). */
export const INTERVAL_MS = 25;
export const PUT_RATIO = 0.5;

/** Four fifths keep-alive clients, one fifth a new connection per request (at least one of each, from 2). */
export function clientSplit(clients: number): { keepAlive: number; newConnection: number } {
  const n = Math.max(1, Math.floor(clients));
  const newConnection = n === 1 ? 0 : Math.max(1, Math.round(n / 5));
  return { keepAlive: n - newConnection, newConnection };
}

export function loadOptions(port: number, clients: number, runMs: number): LoadOptions {
  const split = clientSplit(clients);
  return {
    port,
    keepAliveClients: split.keepAlive,
    newConnectionClients: split.newConnection,
    intervalMs: INTERVAL_MS,
    // A bound on the request count, well above what the run needs: a runaway loop cannot flood.
    maxRequests: (split.keepAlive + split.newConnection) * Math.ceil(runMs / INTERVAL_MS),
    keysPerClient: 64,
    putRatio: PUT_RATIO,
    timeoutMs: 10_000,
  };
}
