/**
 * Stateless services (no open, no seal): no lock, an empty seal, and a successor that accepts as
 * soon as it is healthy, before its Hello, so that accept never has a gap; one that is not healthy
 * never accepts, and one called off after it accepted drains its clients. In this process (the
 * runtime under the test's hooks, real sockets); examples/stateless runs it under `handoff run`.
 */

import http from 'node:http';
import t, { type Test } from 'tap';
import { newHandoffId } from '../../src/protocol/index.js';
import { createService, type ServiceOptions } from '../../src/service/index.js';
import { isLockHeld } from '../../src/shared/lock.js';
import { request } from './harness.js';
import { App, incumbent, sealed, spawnSvc, world, type World } from './inproc.js';

/** No data: neither hook. */
const STATELESS: Partial<ServiceOptions> = { open: undefined, seal: undefined };

/** The health of a successor, settable before it starts (it asks at once). */
class Health {
  constructor(public healthy: boolean) {}
  readonly asked: boolean[] = [];
  readonly hook = (): boolean => (this.asked.push(this.healthy), this.healthy);
}

/** A stateless successor whose requests are counted; `health` answers its health hook. */
async function successor(
  t: Test,
  w: World,
  over: Partial<ServiceOptions> = {},
  contract: ServiceOptions['contract'] = {},
  health = new Health(true),
): Promise<Awaited<ReturnType<typeof spawnSvc>> & { served: () => number; health: Health }> {
  const n = await spawnSvc(t, w, 'successor', { ...STATELESS, health: health.hook, ...over }, { lockPath: undefined, ...contract });
  let served = 0;
  n.app.server.on('request', () => served++);
  return { ...n, served: () => served, health };
}

t.test('a stateless incumbent takes no lock (HANDOFF_LOCK_PATH is ignored) and seals no revisions', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, STATELESS); // the contract names w.lockPath, as `--lock` would
  t.notOk(o.svc.lockHeld, 'no lock held');
  t.notOk(isLockHeld(w.lockPath), 'no lock taken');
  t.ok(o.app.messages.includes('stateless (no open, no seal): HANDOFF_LOCK_PATH is not taken'), 'the ignored lock path is reported');
  t.equal((await request(w.listener.port, 'GET', '/x')).status, 404, 'it serves');
  const id = newHandoffId();
  const sc = await sealed(o, id);
  t.same(sc.last_revision_per_shard, [], 'no revisions');
  t.same([...sc.data_dir_fingerprint], new Array<number>(32).fill(0), 'a 32-byte zero fingerprint');
  o.s.send({ type: 'Commit', handoff_id: id });
  t.equal(await o.app.waitExit(), 0);
  t.same(o.app.calls, ['close'], 'only the close hook ran');
});

t.test('a stateless successor accepts before its Hello is acknowledged, and says Ready on Begin', async (t) => {
  const w = await world(t);
  const n = await successor(t, w);
  await n.s.expect('Hello');
  t.equal(n.svc.phase, 'overlapping');
  // Nobody else accepts here: the answer can only come from the successor, before HelloAck.
  t.equal((await request(w.listener.port, 'GET', '/early')).status, 404, 'answered before HelloAck');
  t.equal(n.served(), 1);
  const id = newHandoffId();
  n.s.send({ type: 'HelloAck', proto_version_chosen: 1, handoff_id: id });
  n.s.ch.version = 1;
  n.s.send({ type: 'Begin', handoff_id: id });
  const ready = await n.s.expect('Ready');
  t.equal(ready.healthz_ok, true);
  t.same(ready.advertised_revision_per_shard, [], 'no revisions, as the incumbent sealed');
  t.same(n.health.asked, [true], 'health asked once, before accepting');
  t.same(n.app.calls, ['begin']);
  t.same(n.events, ['accepting', 'hello', 'begin', 'ready'], 'accepting first, and only once');
  t.equal(n.svc.phase, 'serving');
  t.notOk(n.svc.lockHeld);
});

t.test('a stateless successor that is not healthy never accepts; Begin asks again; rolled back it answered nothing', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, STATELESS, { lockPath: undefined });
  const n = await successor(t, w, {}, { drainGraceMs: 5_000 }, new Health(false));
  n.app.server.on('connection', () => t.fail('a connection reached the unhealthy successor'));
  const id = newHandoffId();
  await n.s.handshake(id);
  await n.app.waitLog('hello acknowledged');
  t.equal(n.svc.phase, 'awaiting-begin', 'not overlapping: it did not accept');
  t.equal((await request(w.listener.port, 'GET', '/meanwhile')).status, 404, 'the incumbent answers meanwhile');
  await sealed(o, id);
  n.s.send({ type: 'Begin', handoff_id: id });
  t.equal((await n.s.expect('Ready')).healthz_ok, false);
  t.equal(n.svc.phase, 'unhealthy');
  n.s.send({ type: 'Abort', handoff_id: id, reason: 'successor_unhealthy: test' });
  t.equal(await n.app.waitExit(), 0, 'a quiet exit');
  t.same(n.health.asked, [false, false], 'asked before its Hello, and again on Begin');
  t.same(n.app.calls, ['begin', 'close']);
  t.notOk(n.events.includes('accepting'), 'never accepting');
  o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
  await o.app.waitLog('serving again');
  t.equal((await request(w.listener.port, 'GET', '/after')).status, 404, 'the incumbent serves again');
  t.equal(n.served(), 0, 'the rejected build answered nothing');
});

t.test('not healthy at its Hello, healthy by Begin: accepts then, before Ready', async (t) => {
  const w = await world(t);
  const n = await successor(t, w, {}, {}, new Health(false));
  const id = newHandoffId();
  await n.s.handshake(id);
  n.health.healthy = true;
  n.s.send({ type: 'Begin', handoff_id: id });
  t.equal((await n.s.expect('Ready')).healthz_ok, true);
  t.same(n.events, ['hello', 'begin', 'accepting', 'ready']);
  t.equal((await request(w.listener.port, 'GET', '/n')).status, 404);
  t.equal(n.served(), 1);
});

t.test('called off before Begin after it accepted: drains its clients (none reset), exits 0', async (t) => {
  const w = await world(t);
  const n = await successor(t, w, {}, { drainGraceMs: 5_000 });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  const id = newHandoffId();
  await n.s.handshake(id);
  const first = await request(w.listener.port, 'GET', '/ka', undefined, agent);
  t.equal(first.headers.connection, 'keep-alive', 'a keep-alive connection to the successor');
  n.s.send({ type: 'Abort', handoff_id: id, reason: 'deadline_exceeded: test' });
  t.equal(await n.app.waitExit(), 0);
  t.ok(n.events.includes('aborted:overlapping'));
  const i = n.events.indexOf('aborted:overlapping');
  t.same(n.events.slice(i, i + 2), ['aborted:overlapping', 'accept-closed'], 'accept closes, then the drain');
  const d = await n.app.waitLog('drained for stop');
  t.equal(d.open_conns_remaining, 0, 'the idle keep-alive connection was closed by the drain, none left to reset');
});

t.test('called off before Begin: the drain gets S’s grace', async (t) => {
  const w = await world(t);
  const order: string[] = [];
  const n = await successor(t, w, { drain: async (grace) => void order.push(`drain ${grace}`), undrain: () => undefined }, { drainGraceMs: 1234 });
  const id = newHandoffId();
  await n.s.handshake(id);
  n.s.send({ type: 'Abort', handoff_id: id, reason: 'deadline_exceeded: test' });
  t.equal(await n.app.waitExit(), 0);
  t.same(order, ['drain 1234']);
});

t.test('S lost while overlapping (before HelloAck): drains and exits 1', async (t) => {
  const w = await world(t);
  const order: string[] = [];
  const n = await successor(t, w, { drain: async (grace) => void order.push(`drain ${grace}`), undrain: () => undefined }, { drainGraceMs: 1234 });
  await n.s.expect('Hello');
  n.s.ch.close();
  t.equal(await n.app.waitExit(), 1);
  t.same(order, ['drain 1234'], 'drained, not reset');
  t.ok(n.events.includes('supervisor-lost:overlapping'));
});

t.test('a begin hook that throws while overlapping: Abort to S, then a drain, exit 1', async (t) => {
  const w = await world(t);
  const order: string[] = [];
  const n = await successor(t, w, { drain: async (grace) => void order.push(`drain ${grace}`), undrain: () => undefined }, { drainGraceMs: 1234 });
  n.app.fail.begin = new Error('cannot begin');
  const id = newHandoffId();
  await n.s.handshake(id);
  n.s.send({ type: 'Begin', handoff_id: id });
  t.match((await n.s.expect('Abort')).reason, /^successor_failed: cannot begin/);
  t.equal(await n.app.waitExit(), 1);
  t.same(order, ['drain 1234'], 'drained, not reset');
});

t.test('a stop while overlapping drains and exits 0', async (t) => {
  const w = await world(t);
  const n = await successor(t, w);
  await n.s.handshake(newHandoffId());
  await n.svc.stop();
  t.equal(n.app.exitCode, 0);
  t.ok(n.app.messages.includes('drained for stop'));
});

t.test('options: open and seal go together; a stateless service takes no lockPath', async (t) => {
  const app = new App();
  const base = app.options({ env: {} });
  t.throws(() => createService({ ...base, seal: undefined }), TypeError, 'open without seal');
  t.throws(() => createService({ ...base, open: undefined }), TypeError, 'seal without open');
  t.throws(() => createService({ ...base, open: undefined, seal: undefined, lockPath: '/tmp/x.lock' }), TypeError, 'lockPath without hooks');
  t.doesNotThrow(() => createService({ buildId: 'b', servers: { http: http.createServer() }, standaloneListen: { http: { port: 0 } }, env: {} }), 'servers and a build id are enough');
});
