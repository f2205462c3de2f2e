/**
 * examples/fastify under a real `handoff run`: a handoff to a new build while keep-alive and
 * new-connection clients send requests; none fails, and the successor serves afterwards. (The
 * example awaits app.ready() before the library accepts: in a successor that accepted earlier, the
 * first request would throw inside Fastify and kill it mid-handoff.)
 */

import t from 'tap';
import { built, httpHandoffUnderLoad } from './harness.js';

t.test('fastify: a handoff under load, no failed request', async (t) => {
  t.ok(built('fastify'), 'dist/examples/fastify is built (npm run build)');
  await httpHandoffUnderLoad(t, 'fastify');
});
