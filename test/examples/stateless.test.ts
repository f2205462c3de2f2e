/**
 * examples/stateless under a real `handoff run` without `--lock`: a handoff under keep-alive and
 * new-connection load with no failed request, in which the successor accepts before the incumbent
 * closes accept (the overlap: S's stderr carries both processes' log lines, in causal order); and
 * an unhealthy build that S rolls back, which answers no request at all.
 */

import t from 'tap';
import { built, cli, httpHandoffUnderLoad, mainOf, runExample, startHttpLoad, status, stopRun, type Supervised } from './harness.js';

/** The service's log lines are the test's signal: keep them at info whatever the default. */
const LOG_ENV = { HANDOFF_LOG_LEVEL: 'info' };

interface LogLine {
  pid?: number;
  msg?: string;
}

/** The JSON log lines the children wrote, in the order S passed them on. */
function childLogs(run: Supervised): LogLine[] {
  return run.p.err.flatMap((l) => {
    try {
      return [JSON.parse(l) as LogLine];
    } catch {
      return [];
    }
  });
}

function indexOfLog(logs: LogLine[], pid: number, msg: string): number {
  return logs.findIndex((l) => l.pid === pid && l.msg === msg);
}

t.test('stateless: a handoff under load without --lock, accept overlapping, no failed request', async (t) => {
  t.ok(built('stateless'), 'dist/examples/stateless is built (npm run build)');
  // The handoff under load, as for every HTTP example; then what is stateless's own, in S's output.
  const { run, successor } = await httpHandoffUnderLoad(t, 'stateless', { path: '/', env: LOG_ENV });

  // The overlap: the successor accepted before the incumbent closed accept (S sends PrepareHandoff
  // only after the successor's Hello, which follows its accept), and long before the drain ended.
  const logs = childLogs(run);
  const accepting = indexOfLog(logs, successor, 'stateless: healthy, accepting beside the incumbent');
  const closing = indexOfLog(logs, run.pid, 'preparing: accept closed, draining');
  const drained = indexOfLog(logs, run.pid, 'drained');
  t.ok(accepting >= 0, 'the successor logged its early accept');
  t.ok(closing >= 0 && drained >= 0, 'the incumbent logged its drain');
  t.ok(accepting < closing, 'the successor accepted before the incumbent closed accept');
  t.ok(closing < drained);
  t.notOk(logs.some((l) => l.msg === 'data-dir lock taken'), 'no process took a lock');
});

t.test('stateless: an unhealthy build is rolled back and answers no request', async (t) => {
  const run = await runExample(t, 'stateless', { env: LOG_ENV });
  const load = startHttpLoad(t, run, '/');
  await load.until(() => load.clients.every((c) => (c.byPid.get(run.pid) ?? 0) > 0), 'every client served by the incumbent');

  const r = await cli(['upgrade', '--', mainOf('stateless'), '--build-id', 'bad', '--unhealthy'], run.env, 120_000);
  t.not(r.code, 0, 'handoff upgrade fails (aborted)');
  t.match(r.stdout + r.stderr, /successor_unhealthy/, 'because the successor is not healthy');
  const s = await status(run.env);
  t.equal(s.incumbent?.pid, run.pid, 'the incumbent serves on');

  // Served again after the rollback, by the incumbent only.
  const before = new Map(load.clients.map((c) => [c.name, c.byPid.get(run.pid) ?? 0]));
  await load.until(() => load.clients.every((c) => (c.byPid.get(run.pid) ?? 0) > (before.get(c.name) ?? 0)), 'every client served again');
  const res = await load.stop();
  t.same(res.failures, [], 'no request failed');
  const pids = new Set(load.clients.flatMap((c) => [...c.byPid.keys()]));
  t.same([...pids], [run.pid], 'only the incumbent answered: the unhealthy build answered nothing');

  const logs = childLogs(run);
  const bad = logs.find((l) => l.msg === 'not healthy yet: not accepting before Begin');
  t.ok(bad && bad.pid !== run.pid, 'the unhealthy successor ran, and did not accept');
  await stopRun(t, run);
});
