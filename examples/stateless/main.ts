/**
 * A stateless HTTP service handed over by `handoff`: no data directory, so no lock and no open or
 * seal hooks. Adopting the library is the five lines of `startService` below: its server and a
 * build id. Its successor starts accepting beside it as soon as it is healthy, before the
 * incumbent stops, so a handoff has no moment without an acceptor.
 *
 *   handoff run --listen http=tcp://127.0.0.1:8080 -- node dist/examples/stateless/main.js
 *   handoff upgrade -- dist/examples/stateless/main.js --build-id v2
 *   node dist/examples/stateless/main.js --listen 127.0.0.1:8080      (on its own, no handoffs)
 */

import http from 'node:http';
import { parseArgs } from 'node:util';
// In your own service: import { startService } from 'handoff-supervisor/service';
import { startService } from '../../src/service/index.js';

const { values } = parseArgs({
  options: {
    'build-id': { type: 'string', default: 'stateless-dev' },
    listen: { type: 'string' },
    // A build that reports itself unhealthy: the supervisor rolls it back, and it never answers.
    unhealthy: { type: 'boolean', default: false },
  },
});
const buildId = values['build-id'];

const server = http.createServer((_req, res) => {
  // Who answered: the example's test uses it to see both builds serve.
  const body = JSON.stringify({ pid: process.pid, build: buildId });
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
});

const service = await startService({
  buildId,
  servers: { http: server }, // the name given to `handoff run --listen http=...`
  health: () => !values.unhealthy, // optional (default healthy): no accept opens before it says so
  standaloneListen: values.listen ? { http: hostPort(values.listen) } : undefined, // development only
});
service.logger.info({ build_id: buildId }, 'stateless service serving');

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}
