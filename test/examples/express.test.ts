/**
 * examples/express under a real `handoff run`: a handoff to a new build while keep-alive and
 * new-connection clients send requests; none fails, and the successor serves afterwards.
 */

import t from 'tap';
import { built, httpHandoffUnderLoad } from './harness.js';

t.test('express: a handoff under load, no failed request', async (t) => {
  t.ok(built('express'), 'dist/examples/express is built (npm run build)');
  await httpHandoffUnderLoad(t, 'express');
});
