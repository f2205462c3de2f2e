/**
 * One program, three ways to run it: the service library decides at start, from its environment,
 * where its listener comes from.
 *
 * - Under `handoff run` (HANDOFF_SOCK_FD is set): the supervisor's socket, and handoffs.
 * - Socket-activated without a supervisor (LISTEN_FDS, from systemd or systemd-socket-activate):
 *   the inherited socket. No handoffs; SIGTERM drains and exits.
 * - Alone (neither): `standaloneListen`, here from `--listen`. No handoffs; SIGTERM drains and exits.
 *
 * Nothing in the code below changes between the three.
 *
 *   node dist/examples/standalone/main.js --listen 127.0.0.1:8080
 *   systemd-socket-activate -l 127.0.0.1:8080 node dist/examples/standalone/main.js
 *   handoff run --listen http=tcp://127.0.0.1:8080 -- node dist/examples/standalone/main.js
 */

import http from 'node:http';
import { parseArgs } from 'node:util';
// In your own service: import { createService } from 'handoff-supervisor/service';
import { createService } from '../../src/service/index.js';

const { values } = parseArgs({
  options: {
    'build-id': { type: 'string', default: 'standalone-dev' },
    listen: { type: 'string' },
  },
});
const buildId = values['build-id'];

const server = http.createServer((req, res) => {
  // Who answered and how it was started: the example's test reads it.
  const body = JSON.stringify({ pid: process.pid, build: buildId, role, path: req.url });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

const service = createService({
  buildId,
  servers: { http: server }, // `handoff run --listen http=...`; under systemd, FileDescriptorName=http
  // No data, so no open or seal hook: stateless (no lock; the successor accepts once healthy).
  // Used only when there is neither a supervisor nor LISTEN_FDS.
  standaloneListen: values.listen ? { http: hostPort(values.listen) } : undefined,
});

const role = service.supervised ? `supervised (${service.contract.role})` : service.listenerFds.size > 0 ? 'socket-activated' : 'standalone';

await service.start();
// Where it listens (with --listen HOST:0, the port the kernel chose).
const address = server.address();
service.logger.info({ build_id: buildId, role, port: typeof address === 'object' && address ? address.port : undefined }, 'serving');

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}
