/**
 * The service library inside the kv example, driven by a scripted supervisor: cold start, a full
 * handoff between two kv processes under keep-alive load, and the abort paths (SealFailed, Abort
 * before sealing, ResumeAfterAbort after it).
 */

import t from 'tap';
import { NIL_ID, PROTO_MAX, PROTO_MIN, idEquals, newHandoffId } from '../../src/protocol/index.js';
import { DataDirLock, checkLockTrace, isLockHeld } from '../../src/shared/lock.js';
import { Child, prepare, setup, type Ctx, Hammer, info, lockHolder, readTrace, request, traceEvents } from './harness.js';

function spawnKv(c: Ctx, role: 'cold-start' | 'successor', args: string[] = [], over: Partial<ConstructorParameters<typeof Child>[0]> = {}): Child {
  const ch = new Child({ role, listener: c.listener, layout: c.layout, args, ...over });
  c.children.push(ch);
  return ch;
}

/** A cold-started incumbent that said Hello and got its HelloAck. */
async function coldIncumbent(c: Ctx, args: string[] = [], over: Partial<ConstructorParameters<typeof Child>[0]> = {}): Promise<Child> {
  const o = spawnKv(c, 'cold-start', ['--build-id', 'kv-old', ...args], over);
  await o.handshake(NIL_ID);
  return o;
}

t.test('cold start: lock, open, accept, then Hello', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start', ['--build-id', 'kv-1.0.0']);
  const hello = await o.expect('Hello');
  t.equal(hello.role, 'Incumbent');
  t.equal(hello.pid, o.pid, 'its own pid');
  t.equal(Buffer.from(hello.build_id).toString(), 'kv-1.0.0');
  t.equal(hello.proto_min, PROTO_MIN);
  t.equal(hello.proto_max, PROTO_MAX);
  t.equal(hello.capabilities.reserved, 0n);
  // Accepting already: Hello comes after the listener is served and the lock is held.
  t.equal(lockHolder(c.layout), o.pid, 'the lock was taken before Hello');
  o.send({ type: 'HelloAck', proto_version_chosen: 1, handoff_id: NIL_ID });
  o.channel.version = 1;
  const me = await info(c.listener.port);
  t.equal(me.pid, o.pid);
  t.equal(me.build_id, 'kv-1.0.0');
  const put = await request(c.listener.port, 'PUT', '/kv/a', 'one');
  t.equal(put.status, 201);
  t.same(JSON.parse(put.body), { rev: 1, shard: (JSON.parse(put.body) as { shard: number }).shard });
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', 'two')).status, 200, 'an overwrite is 200');
  t.equal((await request(c.listener.port, 'GET', '/kv/a')).body, 'two');
  t.equal((await request(c.listener.port, 'GET', '/kv/nope')).status, 404);
  t.equal((await request(c.listener.port, 'GET', '/healthz')).status, 200);
  t.ok(isLockHeld(c.layout.lockPath));
  // Heartbeats flow from the start.
  const hb = await o.channel.receive();
  t.equal(hb.type, 'Heartbeat');
});

t.test('a cold start that cannot take the lock exits non-zero without Hello', async (t) => {
  const c = await setup(t);
  const other = new DataDirLock(c.layout.lockPath);
  await other.acquire();
  t.teardown(() => other.release());
  const o = spawnKv(c, 'cold-start');
  const exit = await o.waitExit();
  t.equal(exit.code, 1);
  await o.waitLog((l) => l.msg === 'cannot take the data-dir lock');
});

t.test('a full handoff under keep-alive load: every acknowledged write is readable from the successor', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  for (let i = 0; i < 20; i++) t.equal((await request(c.listener.port, 'PUT', `/kv/before-${i}`, `v${i}`)).status, 201);
  const load = new Hammer(c.listener.port, 16);
  await load.progress(200);

  const id = newHandoffId();
  const n = spawnKv(c, 'successor', ['--build-id', 'kv-new']);
  const nHello = await n.handshake(id);
  t.equal(nHello.role, 'Successor');
  t.equal(nHello.pid, n.pid);
  t.equal(lockHolder(c.layout), o.pid, 'the successor does not touch the lock before Begin');

  await prepare(o, id, n.pid);
  const progress: number[] = [];
  o.send({ type: 'SealRequest', handoff_id: id });
  let sealed;
  for (;;) {
    const m = await o.next();
    if (m.type === 'SealProgress') {
      progress.push(m.shards_sealed);
      t.equal(m.shards_total, 4);
      continue;
    }
    if (m.type !== 'SealComplete') throw new Error(`unexpected ${m.type}`);
    sealed = m;
    break;
  }
  t.same(progress, [1, 2, 3, 4], 'one SealProgress per shard');
  t.ok(idEquals(sealed.handoff_id, id));
  t.equal(sealed.data_dir_fingerprint.length, 32);
  t.equal(sealed.last_revision_per_shard.length, 4);
  t.equal(lockHolder(c.layout), null, 'the incumbent released the lock with SealComplete');

  n.send({ type: 'Begin', handoff_id: id });
  const ready = await n.expect('Ready');
  t.ok(idEquals(ready.handoff_id, id));
  t.same(ready.listening_on, ['http']);
  t.equal(ready.healthz_ok, true);
  t.same(ready.advertised_revision_per_shard, sealed.last_revision_per_shard, 'the successor replayed exactly what the incumbent sealed');
  t.equal(lockHolder(c.layout), n.pid);

  o.send({ type: 'Commit', handoff_id: id });
  t.same(await o.waitExit(), { code: 0, signal: null }, 'the incumbent exits 0 on Commit');

  await load.progress(200);
  await load.stop();
  t.same(load.failures, [], `no failed request out of ${load.requests}`);
  t.equal((await info(c.listener.port)).pid, n.pid, 'the successor serves');
  t.equal((await info(c.listener.port)).build_id, 'kv-new');
  for (let i = 0; i < 20; i++) t.equal((await request(c.listener.port, 'GET', `/kv/before-${i}`)).body, `v${i}`);
  let checked = 0;
  for (const [key, value] of load.acked) {
    const r = await request(c.listener.port, 'GET', `/kv/${key}`);
    if (r.body !== value) t.fail(`${key}: ${r.status} ${r.body}, wanted ${value}`);
    checked++;
  }
  t.ok(checked >= 16, `${checked} acknowledged keys read back from the successor`);
  t.same(checkLockTrace(readTrace(c.layout)), [], 'never two lock holders');
  t.same(
    traceEvents(c.layout).map((e) => [e.pid, e.event]),
    [
      [o.pid, 'acquire'],
      [o.pid, 'release'],
      [n.pid, 'acquire'],
    ],
  );
  // The successor is now the incumbent: it drains for the next handoff like any other.
  const id2 = newHandoffId();
  await prepare(n, id2);
  n.send({ type: 'Abort', handoff_id: id2, reason: 'operator_abort: test' });
  await n.waitLog((l) => l.msg === 'serving again');
  t.equal((await request(c.listener.port, 'PUT', '/kv/after', 'x')).status, 201, 'the successor serves again after an aborted drain');
});

t.test('SealFailed: the incumbent keeps the lock, and serves again on Abort', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c, ['--fault', 'seal-fail']);
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '1')).status, 201);
  const id = newHandoffId();
  await prepare(o, id);
  const m = await o.seal(id);
  if (m.type !== 'SealFailed') throw new Error(`expected SealFailed, got ${m.type}`);
  t.ok(idEquals(m.handoff_id, id));
  t.equal(m.error, 'fault injection: seal-fail', 'the first line of the error');
  t.match(m.partial_state, /lock kept/);
  t.equal(lockHolder(c.layout), o.pid, 'the lock was not released');
  t.ok(isLockHeld(c.layout.lockPath));
  const pending = request(c.listener.port, 'GET', '/kv/a');
  o.send({ type: 'Abort', handoff_id: id, reason: 'seal_failed: test' });
  t.equal((await pending).body, '1', 'a connection queued while accept was closed is served after the abort');
  t.equal((await request(c.listener.port, 'PUT', '/kv/b', '2')).status, 201, 'writable again (resume ran)');
  t.same(
    traceEvents(c.layout).map((e) => e.event),
    ['acquire'],
    'one acquire, never released',
  );
  // S may follow the Abort with ResumeAfterAbort: harmless.
  o.send({ type: 'ResumeAfterAbort', handoff_id: id });
  t.equal((await request(c.listener.port, 'GET', '/kv/b')).body, '2');
  t.ok(o.alive);
});

t.test('Abort before sealing reopens accept and ends the drain', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c, ['--fault', 'slow-drain']);
  const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '1', agent)).status, 201);
  const id = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 60_000n });
  await o.waitLog((l) => l.msg === 'preparing: accept closed, draining');
  // The keep-alive connection is still open: its next response says close.
  const during = await request(c.listener.port, 'GET', '/kv/a', undefined, agent);
  t.equal(during.headers.connection, 'close', 'responses during the drain carry Connection: close');
  // A new connection is not accepted now; it waits in the kernel queue.
  const queued = request(c.listener.port, 'GET', '/kv/a');
  o.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: test' });
  t.equal((await queued).body, '1', 'the queued connection is served once accept reopens');
  const after = await request(c.listener.port, 'GET', '/kv/a', undefined, agent);
  t.equal(after.headers.connection, 'keep-alive', 'keep-alive again after the abort');
  t.equal((await request(c.listener.port, 'PUT', '/kv/b', '2')).status, 201);
  t.equal(lockHolder(c.layout), o.pid);
  // No Drained for the called-off drain, and the channel is still in order: a new handoff works.
  const id2 = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id2, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 100n });
  const d = await o.expect('Drained');
  t.equal(d.accept_closed, true);
});

t.test('ResumeAfterAbort after SealComplete: the lock is retaken and the incumbent serves', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '1')).status, 201);
  const id = newHandoffId();
  await prepare(o, id);
  const m = await o.seal(id);
  t.equal(m.type, 'SealComplete');
  t.equal(lockHolder(c.layout), null);
  t.notOk(isLockHeld(c.layout.lockPath));
  const queued = request(c.listener.port, 'GET', '/kv/a');
  o.send({ type: 'ResumeAfterAbort', handoff_id: id });
  t.equal((await queued).body, '1');
  t.equal(lockHolder(c.layout), o.pid, 'retaken');
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '2')).status, 200, 'writable again');
  t.same(checkLockTrace(readTrace(c.layout)), []);
});

t.test('ResumeAfterAbort while another process holds the lock: the incumbent exits rather than write', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  const id = newHandoffId();
  await prepare(o, id);
  const m = await o.seal(id);
  t.equal(m.type, 'SealComplete');
  const thief = new DataDirLock(c.layout.lockPath);
  await thief.acquire();
  t.teardown(() => thief.release());
  o.send({ type: 'ResumeAfterAbort', handoff_id: id });
  const exit = await o.waitExit();
  t.equal(exit.code, 1);
  await o.waitLog((l) => l.msg === 'cannot retake the data-dir lock (another process holds it); exiting');
});

t.test('Abort after SealComplete acts as ResumeAfterAbort; the successor rolls back on its Abort', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '1')).status, 201);
  const id = newHandoffId();
  const n = spawnKv(c, 'successor');
  await n.handshake(id);
  await prepare(o, id, n.pid);
  await o.seal(id);
  n.send({ type: 'Begin', handoff_id: id });
  await n.expect('Ready');
  t.equal((await request(c.listener.port, 'PUT', '/kv/by-n', 'n')).status, 201, 'a write accepted by the successor before the rollback');
  // Rollback (say the revisions did not match): the successor first, then the incumbent.
  n.send({ type: 'Abort', handoff_id: id, reason: 'revision_mismatch: test' });
  const successorExit = await n.waitExit();
  t.equal(successorExit.code, 0, 'the successor exits quietly on rollback');
  o.send({ type: 'Abort', handoff_id: id, reason: 'revision_mismatch: test' });
  await o.waitLog((l) => l.msg === 'serving again');
  t.equal((await info(c.listener.port)).pid, o.pid);
  t.equal((await request(c.listener.port, 'GET', '/kv/by-n')).body, 'n', 'the incumbent replayed what the successor wrote while it held the lock');
  t.equal((await request(c.listener.port, 'PUT', '/kv/b', '2')).status, 201);
  t.equal(lockHolder(c.layout), o.pid);
  t.same(checkLockTrace(readTrace(c.layout)), []);
});

t.test('a successor that cannot take the lock aborts with lock_held and exits non-zero', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  const id = newHandoffId();
  const n = spawnKv(c, 'successor');
  await n.handshake(id);
  // S would never send Begin before SealComplete; here it does, and the lock decides.
  n.send({ type: 'Begin', handoff_id: id });
  const abort = await n.expect('Abort');
  t.ok(idEquals(abort.handoff_id, id));
  t.match(abort.reason, /^lock_held: /);
  t.equal((await n.waitExit()).code, 1);
  t.equal(lockHolder(c.layout), o.pid);
  t.equal((await info(c.listener.port)).pid, o.pid, 'only the incumbent serves');
});

t.test('Commit closes the store, releases the lock and exits 0', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  const id = newHandoffId();
  await prepare(o, id);
  await o.seal(id);
  o.send({ type: 'Commit', handoff_id: id });
  t.same(await o.waitExit(), { code: 0, signal: null });
  t.notOk(isLockHeld(c.layout.lockPath));
});

t.test('a PrepareHandoff that arrives while the incumbent is still resuming waits for the resume', async (t) => {
  const c = await setup(t);
  const o = await coldIncumbent(c);
  const id = newHandoffId();
  await prepare(o, id);
  const m = await o.seal(id);
  t.equal(m.type, 'SealComplete');
  // A successor that is slow to go still holds the lock: the incumbent's resume has to wait for it.
  const slow = new DataDirLock(c.layout.lockPath);
  await slow.acquire();
  o.send({ type: 'ResumeAfterAbort', handoff_id: id });
  const id2 = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id2, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 100n });
  await slow.release();
  const d = await o.expect('Drained');
  t.equal(d.accept_closed, true, 'the next handoff went ahead once the incumbent had resumed');
  t.equal(lockHolder(c.layout), o.pid);
  await o.waitLog((l) => l.msg === 'serving again');
  o.send({ type: 'Abort', handoff_id: id2, reason: 'operator_abort: test' });
  await o.waitLog((l) => l.msg === 'serving again' && o.logs.filter((x) => x.msg === 'serving again').length === 2);
  t.equal((await request(c.listener.port, 'PUT', '/kv/z', '1')).status, 201);
});
