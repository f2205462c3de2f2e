/**
 * An Express app handed over by `handoff`: the smallest honest adoption. The app is written as
 * usual; the only change is who listens. Instead of `app.listen(port)`, the app's http.Server goes
 * to the service library, which listens on the supervisor's socket, drains keep-alive clients
 * without a failed request, and exits once the successor serves.
 *
 *   handoff run --listen http=tcp://127.0.0.1:8080 -- node dist/examples/express/main.js
 *   node dist/examples/express/main.js --listen 127.0.0.1:8080      (on its own, no handoffs)
 */

import http from 'node:http';
import { parseArgs } from 'node:util';
import express from 'express';
// In your own service: import { createService } from 'handoff-supervisor/service';
import { createService } from '../../src/service/index.js';

const { values } = parseArgs({
  options: {
    'build-id': { type: 'string', default: 'express-dev' },
    listen: { type: 'string' },
  },
});
const buildId = values['build-id'];

const app = express();
app.get('/', (_req, res) => {
  res.type('text/plain').send(`hello from express, build ${buildId}\n`);
});
// Who answered: the example's test uses it to see the successor take over.
app.get('/who', (_req, res) => {
  res.json({ pid: process.pid, build: buildId });
});

// Not app.listen(): the library makes this server listen, and stops it, at the right moments.
const server = http.createServer(app);

const service = createService({
  buildId,
  servers: { http: server }, // the name given to `handoff run --listen http=...`
  // No data, so no open or seal hook: stateless (no lock; the successor accepts once healthy).
  // Only used with neither a supervisor nor LISTEN_FDS (development).
  standaloneListen: values.listen ? { http: hostPort(values.listen) } : undefined,
});

await service.start();
service.logger.info({ build_id: buildId, role: service.supervised ? service.contract.role : 'standalone' }, 'express app serving');

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}
