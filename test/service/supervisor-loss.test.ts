/**
 * The S-loss rules, with the test playing S and then vanishing (closing its end of the channel, or
 * going silent with its socket open, which is not the same): never two writers, and whoever may
 * write keeps serving.
 */

import t from 'tap';
import http from 'node:http';
import { NIL_ID, idEquals, newHandoffId, type HandoffId } from '../../src/protocol/index.js';
import { checkLockTrace } from '../../src/shared/lock.js';
import { Child, prepare, setup, type Ctx, info, lockHolder, readTrace, request, within } from './harness.js';

type Over = Partial<ConstructorParameters<typeof Child>[0]>;

function spawnKv(c: Ctx, role: 'cold-start' | 'successor', args: string[] = [], over: Over = {}): Child {
  const ch = new Child({ role, listener: c.listener, layout: c.layout, args, heartbeatTimeoutMs: 1_000, ...over });
  c.children.push(ch);
  return ch;
}

async function incumbent(c: Ctx, args: string[] = [], over: Over = {}): Promise<Child> {
  const o = spawnKv(c, 'cold-start', args, over);
  await o.handshake(NIL_ID);
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v1')).status, 201);
  return o;
}

async function sealed(o: Child, id: HandoffId): Promise<void> {
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 1_000n });
  await o.expect('Drained');
  const m = await o.seal(id);
  if (m.type !== 'SealComplete') throw new Error(`expected SealComplete, got ${m.type}`);
}

const lost = (o: Child): Promise<unknown> => o.waitLog((l) => l.msg === 'supervisor lost');

t.test('the incumbent at rest: keeps serving with its lock', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  o.channel.close();
  await lost(o);
  t.equal((await info(c.listener.port)).pid, o.pid);
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200, 'still writing: it holds the lock');
  t.equal(lockHolder(c.layout), o.pid);
});

t.test('the incumbent draining: reopens accept and serves', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c, ['--fault', 'slow-drain']);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  await request(c.listener.port, 'GET', '/kv/k', undefined, agent);
  const id = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 60_000n });
  await o.waitLog((l) => l.msg === 'preparing: accept closed, draining');
  const queued = request(c.listener.port, 'GET', '/kv/k');
  o.channel.close();
  await lost(o);
  t.equal((await queued).body, 'v1', 'the connection queued during the drain is served');
  t.equal((await request(c.listener.port, 'GET', '/kv/k', undefined, agent)).headers.connection, 'keep-alive', 'the drain is over');
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200);
  t.equal(lockHolder(c.layout), o.pid);
});

t.test('the incumbent drained: reopens accept and serves', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  const id = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 1_000n });
  await o.expect('Drained');
  const queued = request(c.listener.port, 'GET', '/kv/k');
  o.channel.close();
  t.equal((await queued).body, 'v1');
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200);
});

t.test('the incumbent sealed, lock free: retakes it and serves', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  await sealed(o, newHandoffId());
  t.equal(lockHolder(c.layout), null);
  const queued = request(c.listener.port, 'GET', '/kv/k');
  o.channel.close();
  t.equal((await queued).body, 'v1', 'served after the lock was retaken');
  t.equal(lockHolder(c.layout), o.pid);
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200);
  t.same(checkLockTrace(readTrace(c.layout)), []);
});

t.test('the incumbent sealed, the successor holds the lock: the incumbent exits, the successor serves', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  const id = newHandoffId();
  const n = spawnKv(c, 'successor');
  await n.handshake(id);
  await sealed(o, id);
  n.send({ type: 'Begin', handoff_id: id });
  await n.expect('Ready');
  o.channel.close();
  n.channel.close();
  const exit = await o.waitExit();
  t.equal(exit.code, 1, 'the incumbent gives up after its bounded retry');
  await o.waitLog((l) => l.msg === 'cannot retake the data-dir lock (another process holds it); exiting');
  await lost(n);
  t.equal((await info(c.listener.port)).pid, n.pid);
  t.equal((await request(c.listener.port, 'GET', '/kv/k')).body, 'v1');
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200);
  t.equal(lockHolder(c.layout), n.pid);
  t.same(checkLockTrace(readTrace(c.layout)), []);
});

t.test('the successor before Begin: exits', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  const n = spawnKv(c, 'successor');
  await n.handshake(newHandoffId());
  n.channel.close();
  t.equal((await n.waitExit()).code, 1);
  t.equal((await info(c.listener.port)).pid, o.pid);
  t.equal(lockHolder(c.layout), o.pid);
});

t.test('the successor lost its supervisor between Begin and Ready: holds the lock and serves without Ready', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  const id = newHandoffId();
  const n = spawnKv(c, 'successor', ['--fault', 'slow-open', '--fault-ms', '1000']);
  await n.handshake(id);
  await sealed(o, id);
  o.send({ type: 'Commit', handoff_id: id });
  await o.waitExit();
  n.send({ type: 'Begin', handoff_id: id });
  await n.waitLog((l) => l.msg === 'begin');
  n.channel.close();
  await n.waitLog((l) => l.msg === 'the supervisor was lost after Begin; holding the lock, serving');
  t.equal((await info(c.listener.port)).pid, n.pid);
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200);
  t.equal(lockHolder(c.layout), n.pid);
});

t.test('the successor after Ready: keeps serving', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c);
  const id = newHandoffId();
  const n = spawnKv(c, 'successor');
  await n.handshake(id);
  await sealed(o, id);
  n.send({ type: 'Begin', handoff_id: id });
  await n.expect('Ready');
  o.send({ type: 'Commit', handoff_id: id });
  await o.waitExit();
  n.channel.close();
  await lost(n);
  t.equal((await info(c.listener.port)).pid, n.pid);
  t.equal((await request(c.listener.port, 'GET', '/kv/k')).body, 'v1');
});

t.test('a silent supervisor (its socket still open) is not a lost one', async (t) => {
  t.test('at rest: serves on, keeps the channel, and hands off once S speaks again', async (t) => {
    const c = await setup(t);
    const o = await incumbent(c, [], { heartbeatTimeoutMs: 600 });
    o.stopHeartbeats();
    const l = await o.waitLog((x) => x.msg === 'the supervisor is silent');
    t.equal(l.phase, 'serving');
    t.equal((await info(c.listener.port)).pid, o.pid);
    t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200, 'writing: it holds the lock');
    // Heartbeats keep coming from the incumbent over the open channel, longer than another timeout.
    for (let i = 0; i < 10; ) if ((await within(o.channel.receive(), 5_000, 'a heartbeat from the incumbent')).type === 'Heartbeat') i++;
    t.notOk(o.channel.closed, 'the channel is open');
    t.notOk(o.logs.some((x) => x.msg === 'supervisor lost'));
    o.startHeartbeats();
    await o.waitLog((x) => x.msg === 'the supervisor is back');
    const id = newHandoffId();
    await prepare(o, id, 1, 100);
    o.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: test' });
    await o.waitLog((x) => x.msg === 'serving again');
    t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v3')).status, 200);
    t.equal(lockHolder(c.layout), o.pid);
  });
  t.test('while drained: Abort(heartbeat_timeout) to S, serves again, and S’s late messages are harmless', async (t) => {
    const c = await setup(t);
    const o = await incumbent(c, [], { heartbeatTimeoutMs: 800 });
    const id = newHandoffId();
    o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 1_000n });
    await o.expect('Drained');
    o.stopHeartbeats();
    const abort = await o.expect('Abort');
    t.ok(idEquals(abort.handoff_id, id));
    t.match(abort.reason, /^heartbeat_timeout: /);
    t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200, 'serving and writing again');
    // S runs again and acts on the Drained it read before our Abort; then on our Abort.
    o.startHeartbeats();
    o.send({ type: 'SealRequest', handoff_id: id });
    o.send({ type: 'Abort', handoff_id: id, reason: 'heartbeat_timeout: the incumbent called it off' });
    await o.waitLog((x) => x.msg === 'the supervisor is back');
    await prepare(o, newHandoffId(), 1, 100);
    t.notOk(o.channel.closed);
    t.equal(lockHolder(c.layout), o.pid, 'never sealed, never released');
  });
  t.end();
});

t.test('the incumbent gives up on a handoff S leaves hanging past its deadline', async (t) => {
  const c = await setup(t);
  const o = await incumbent(c, [], { heartbeatTimeoutMs: 500 });
  const id = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 300n, drain_grace_ms: 100n });
  await o.expect('Drained');
  const abort = await o.expect('Abort');
  t.match(abort.reason, /^deadline_exceeded: /);
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v2')).status, 200);
  // A SealRequest that crossed our Abort is ignored: S reads the Abort next and calls it off.
  o.send({ type: 'SealRequest', handoff_id: id });
  await o.waitLog((l) => l.msg === 'SealRequest for a handoff already called off here; ignored');
  t.equal((await request(c.listener.port, 'PUT', '/kv/k', 'v3')).status, 200, 'still the one writer');
  t.equal(lockHolder(c.layout), o.pid, 'it never sealed');
  await prepare(o, newHandoffId(), 1, 100);
  t.notOk(o.channel.closed, 'the channel is in order');
});
