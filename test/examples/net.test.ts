/**
 * examples/net under a real `handoff run`: a plain net.Server with a line protocol, handed over to
 * a new build while persistent and new-connection line clients talk to it. No line fails: each
 * persistent client gets BYE from the draining incumbent, sends what was unanswered again on a new
 * connection, and is answered by the successor.
 */

import t from 'tap';
import { built, runExample, stopRun, upgrade } from './harness.js';
import { LineConn, LineLoad } from './line-load.js';

t.test('net: a handoff under load, no failed line', async (t) => {
  t.ok(built('net'), 'dist/examples/net is built (npm run build)');
  const run = await runExample(t, 'net', { listener: 'line' });

  const load = new LineLoad({ port: run.port, persistentClients: 4, newConnectionClients: 4, intervalMs: 20, maxLines: 40_000, maxMs: 180_000 });
  t.teardown(() => load.stop());
  load.start();
  await load.until(() => load.clients.every((c) => (c.byPid.get(run.pid) ?? 0) > 0), 'every client answered by the incumbent');

  const successor = await upgrade(t, run, 'net', 'v2');
  await load.until(() => load.clients.every((c) => (c.byPid.get(successor) ?? 0) > 0), 'every client answered by the successor');
  const r = await load.stop();

  t.same(r.failures, [], 'no line failed');
  t.notOk(r.capped, 'the load ran until stopped, not until its cap');
  t.ok(r.answered > 0, `${r.answered} lines answered`);
  for (const c of load.clients.filter((x) => x.persistent)) {
    t.ok(c.byes >= 1 && c.connections >= 2, `${c.name}: told BYE by the incumbent (${c.byes}), went on over a new connection (${c.connections} connections)`);
  }

  // A new client after the handoff: the successor, by its build.
  const conn = new LineConn(run.port, (e) => t.fail(`connection lost: ${e.message}`));
  t.equal(await conn.ask('/who', 10_000), `pid ${successor} build v2`, 'the successor answers a new client');
  t.equal(await conn.ask('still here', 10_000), 'STILL HERE');
  conn.close();
  await stopRun(t, run);
});
