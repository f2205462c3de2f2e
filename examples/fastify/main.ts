/**
 * A Fastify app handed over by `handoff`. As with Express, the app is written as usual and the
 * library takes its server instead of `app.listen()`; Fastify adds one rule: `await app.ready()`
 * before the library starts accepting. Fastify loads its plugins and builds its routes and hooks
 * in ready(); a request that arrives earlier meets a half-built app (with Fastify 5 it throws
 * inside Fastify's hook runner and takes the process down: a successor would die mid-handoff).
 *
 *   handoff run --listen http=tcp://127.0.0.1:8080 -- node dist/examples/fastify/main.js
 *   node dist/examples/fastify/main.js --listen 127.0.0.1:8080      (on its own, no handoffs)
 */

import { parseArgs } from 'node:util';
import Fastify from 'fastify';
// In your own service: import { createService } from 'handoff-supervisor/service';
import { createService } from '../../src/service/index.js';

const { values } = parseArgs({
  options: {
    'build-id': { type: 'string', default: 'fastify-dev' },
    listen: { type: 'string' },
  },
});
const buildId = values['build-id'];

const app = Fastify();
app.get('/', async () => `hello from fastify, build ${buildId}\n`);
// Who answered: the example's test uses it to see the successor take over.
app.get('/who', async () => ({ pid: process.pid, build: buildId }));

// Fastify is complete only once ready() resolves: plugins loaded, routes and hooks built. Only then
// may the library make app.server accept (it does so in start()). Never call app.listen().
await app.ready();

const service = createService({
  buildId,
  servers: { http: app.server }, // the name given to `handoff run --listen http=...`
  // No data, so no open or seal hook: stateless (no lock; the successor accepts once healthy).
  // After the drain (on Commit, or on SIGTERM): Fastify's onClose hooks run (close your pools there).
  // The server has stopped accepting already; Fastify accepts that.
  close: () => app.close(),
  // Only used with neither a supervisor nor LISTEN_FDS (development).
  standaloneListen: values.listen ? { http: hostPort(values.listen) } : undefined,
});

await service.start();
service.logger.info({ build_id: buildId, role: service.supervised ? service.contract.role : 'standalone' }, 'fastify app serving');

function hostPort(s: string): { host: string; port: number } {
  const i = s.lastIndexOf(':');
  return { host: s.slice(0, i) || '127.0.0.1', port: Number(s.slice(i + 1)) };
}
