/**
 * A plain `net` server handed over by `handoff`: a line protocol, where each line comes back
 * upper-cased and `/who` answers which process serves. The library takes the net.Server as it
 * takes an http.Server (it listens on the supervisor's socket and stops accepting for a handoff);
 * its drain for a plain net.Server waits for the connections to end, and destroys those still open
 * when the grace runs out.
 *
 * A long-lived connection does not end by itself, so the protocol says goodbye: once accept is
 * closed (a handoff or a stop), the server writes `BYE` on each connection, between two lines, and
 * half-closes it. Every line sent before was answered; no line after it is read: the client
 * reconnects (to the successor, whose accept the same socket feeds) and sends there what was not
 * answered. Nothing is lost and no line is answered twice. That is HTTP/2's GOAWAY in one line.
 *
 *   handoff run --listen line=tcp://127.0.0.1:7000 -- node dist/examples/net/main.js
 *   node dist/examples/net/main.js --listen 127.0.0.1:7000      (on its own, no handoffs)
 */

import net from 'node:net';
import { parseArgs } from 'node:util';
// In your own service: import { createService } from 'handoff-supervisor/service';
import { createService } from '../../src/service/index.js';

const { values } = parseArgs({
  options: {
    'build-id': { type: 'string', default: 'net-dev' },
    listen: { type: 'string' },
  },
});
const buildId = values['build-id'];
const MAX_LINE = 64 * 1024;

/** How to say goodbye to each open connection. */
const goodbyes = new Set<() => void>();
let goingAway = false;

function answer(line: string): string {
  if (line === '/who') return `pid ${process.pid} build ${buildId}`;
  return line.toUpperCase();
}

const server = net.createServer((socket) => {
  socket.setEncoding('utf8');
  let pending = '';
  let saidBye = false;
  const bye = (): void => {
    if (saidBye) return;
    saidBye = true;
    // Answers are written as each line arrives, so here we are between two lines.
    socket.end('BYE\n');
  };
  goodbyes.add(bye);
  socket.once('close', () => goodbyes.delete(bye));
  // A client's reset is its own business; the socket closes either way.
  socket.on('error', () => undefined);
  socket.on('data', (chunk: string) => {
    // After BYE lines are read and dropped (not left unread: closing on unread bytes would reset
    // the connection, and the client might lose the BYE).
    if (saidBye) return;
    pending += chunk;
    let nl: number;
    while ((nl = pending.indexOf('\n')) >= 0) {
      socket.write(`${answer(pending.slice(0, nl).replace(/\r$/, ''))}\n`);
      pending = pending.slice(nl + 1);
    }
    if (pending.length > MAX_LINE) socket.end('ERR line too long\n');
  });
  // Accepted just before accept closed: it gets its goodbye too.
  if (goingAway) bye();
});

const service = createService({
  buildId,
  servers: { line: server }, // the name given to `handoff run --listen line=...`
  // No data, so no open or seal hook: stateless (no lock; the successor accepts once healthy).
  // Only used with neither a supervisor nor LISTEN_FDS (development).
  standaloneListen: values.listen ? { line: hostPort(values.listen) } : undefined,
});

// The library's drain follows accept-closed: by the time it counts connections, each has its BYE.
service.on('accept-closed', () => {
  goingAway = true;
  for (const bye of goodbyes) bye();
});
// Accepting again after an aborted handoff: new connections are served as usual.
service.on('accepting', () => {
  goingAway = false;
});

await service.start();
service.logger.info({ build_id: buildId, role: service.supervised ? service.contract.role : 'standalone' }, 'line server serving');

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}
