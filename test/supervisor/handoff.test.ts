/**
 * The handoff end to end with real processes: under load, with keep-alive clients and with a new
 * connection per request, through several handoffs: zero failed requests, zero refused connections,
 * every acknowledged write readable afterwards, the lock never held twice.
 */

import t from 'tap';
import net from 'node:net';
import { LoadGenerator } from '../../src/load/index.js';
import { checkLockTrace } from '../../src/shared/lock.js';
import { isRestartRecord, type HandoffRecord } from '../../src/supervisor/types.js';
import { childPids, info, isAlive, lockHolder, nextEvent, openFds, readTrace, request, serving, upgrade, withSupervisor } from './harness.js';

t.test('three handoffs under load: no failure, no refusal, no lost write', async (t) => {
  const { env, s, port } = await withSupervisor(t);
  const load = new LoadGenerator({ port, keepAliveClients: 8, newConnectionClients: 4, intervalMs: 2, maxRequests: 40_000, keysPerClient: 20, putRatio: 0.5, timeoutMs: 20_000 });
  load.start();
  const pids = [(await info(port)).pid];
  for (let i = 1; i <= 3; i++) {
    const rec = await upgrade(s, env, ['--build-id', `v${i}`]);
    t.equal(rec.outcome, 'committed', `handoff ${i}: ${rec.reason ?? 'ok'}`);
    t.equal(rec.revisions_checked, true, 'revisions checked');
    const now = await info(port);
    t.equal(now.build_id, `v${i}`, 'the new build serves');
    pids.push(now.pid);
  }
  const result = await load.stop();
  t.ok(result.requests > 100, `${result.requests} requests sent`);
  t.same(result.failures, [], 'no failed request');
  t.equal(result.refused, 0, 'no refused connection');
  const verify = await load.verify();
  t.same(verify.lost, [], `every acknowledged write survived (${verify.survived} keys checked)`);
  t.equal(new Set(pids).size, 4, 'four distinct processes served in turn');
  t.same(childPids(), [pids[3]], 'only the last successor is left running');
  t.equal(lockHolder(env), pids[3], 'the last successor holds the lock');
  t.same(checkLockTrace(readTrace(env)), [], 'the lock was never held by two processes');
  const history = s.history().filter((r): r is HandoffRecord => !isRestartRecord(r));
  t.same(history.map((r) => r.outcome), ['committed', 'committed', 'committed'], 'history records each handoff');
  t.same(history[0]?.phases.map((p) => p.phase), ['hello', 'drain', 'seal', 'begin', 'commit'], 'phases in order, with durations');
});

t.test('a connection made while no child accepts waits and is served', async (t) => {
  const { s, port } = await withSupervisor(t, { restartInitialMs: 500 });
  const first = await info(port);
  const restart = nextEvent(s, 'restart');
  process.kill(first.pid, 'SIGKILL');
  await restart;
  // Nobody accepts now: the incumbent is dead and its successor waits for the backoff.
  t.notOk(isAlive(first.pid), 'the incumbent is gone (reaped)');
  const sock = net.connect(port, '127.0.0.1');
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', resolve);
    sock.once('error', reject);
  });
  t.pass('connect succeeded while no process accepted');
  const reply = await new Promise<string>((resolve, reject) => {
    let buf = '';
    sock.on('data', (d: Buffer) => (buf += d.toString()));
    sock.on('end', () => resolve(buf));
    sock.on('error', reject);
    sock.write('GET /info HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  });
  t.match(reply, /^HTTP\/1\.1 200/, 'the queued connection was answered');
  const servedBy = JSON.parse(reply.slice(reply.indexOf('\r\n\r\n') + 4)) as { pid: number };
  t.not(servedBy.pid, first.pid, 'by the restarted incumbent');
  t.equal(s.status().incumbent_restarts, 1);
});

t.test('a crashed incumbent is restarted with its lock cleared, and the restarts back off', async (t) => {
  const { env, s, port } = await withSupervisor(t, { restartInitialMs: 50, restartMaxMs: 200 });
  t.equal((await request(port, 'PUT', '/kv/a', '1')).status < 300, true);
  const delays: number[] = [];
  for (let i = 0; i < 4; i++) {
    const { pid } = await info(port);
    const restart = nextEvent(s, 'restart');
    process.kill(pid, 'SIGKILL');
    const [ev] = await restart;
    delays.push(ev.delayMs);
    await serving(s);
  }
  t.same(delays, [50, 100, 200, 200], 'exponential backoff, capped');
  t.equal((await request(port, 'GET', '/kv/a')).body, '1', 'the write survived four crashes');
  t.same(checkLockTrace(readTrace(env)), [], 'the lock was never held by two processes');
});

t.test('20 handoffs in a row: fds and children return to baseline', async (t) => {
  const { env, s, port } = await withSupervisor(t);
  // One handoff first, so that lazily opened fds (pino, timers) are part of the baseline.
  t.equal((await upgrade(s, env)).outcome, 'committed');
  const fds = openFds();
  for (let i = 0; i < 20; i++) {
    const rec = await upgrade(s, env, ['--build-id', `b${i}`]);
    if (rec.outcome !== 'committed') t.fail(`handoff ${i}: ${rec.reason}`);
  }
  // Measured at the same point as the baseline: right after a handoff resolved, before any request.
  t.equal(openFds(), fds, `open fds back to ${fds}`);
  const now = await info(port);
  t.equal(now.build_id, 'b19');
  t.same(childPids(), [now.pid], 'one child: the incumbent');
  t.equal(s.history().length, 21);
});
