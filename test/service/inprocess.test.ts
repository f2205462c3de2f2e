/**
 * The service runtime in this process (so its code is covered), with hooks under the test's
 * control: the control channel is a Unix socket connection whose far end the test speaks through,
 * the listener a socket bound by a helper, and `exit` is caught instead of ending the process.
 */

import t from 'tap';
import fs from 'node:fs';
import net from 'node:net';
import { NIL_ID, idEquals, newHandoffId } from '../../src/protocol/index.js';
import { DataDirLock, checkLockTrace, isLockHeld } from '../../src/shared/lock.js';
import { SealError, createService, startService, type Acceptor, type ServiceOptions } from '../../src/service/index.js';
import { HandoffService } from '../../src/service/service.js';
import { request } from './harness.js';
import { App, controlPair, drained, incumbent, inherited, sealed, spawnSvc, world } from './inproc.js';

t.test('a full handoff between two services in this process', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  t.equal(o.svc.phase, 'serving');
  t.ok(o.svc.supervised);
  t.ok(o.svc.lockHeld);
  t.equal(o.svc.listenerFds.size, 1);
  t.equal((await request(w.listener.port, 'PUT', '/a', '')).body, '1');
  const id = newHandoffId();
  const n = await spawnSvc(t, w, 'successor');
  const events: string[] = [];
  for (const e of ['begin', 'ready'] as const) n.svc.on(e, () => events.push(e));
  for (const e of ['prepare', 'drained', 'seal', 'sealed', 'committed', 'accept-closed'] as const) o.svc.on(e, () => events.push(e));
  const hello = await n.s.handshake(id);
  t.equal(hello.role, 'Successor');
  await drained(o, id);
  await n.app.waitLog('hello acknowledged');
  t.equal(o.svc.handoffId, n.svc.handoffId, 'both know the handoff');
  o.s.send({ type: 'SealRequest', handoff_id: id });
  const p1 = await o.s.expect('SealProgress');
  t.same([p1.shards_sealed, p1.shards_total, p1.last_revision], [1, 2, 1n]);
  const sc = await o.s.expect('SealComplete');
  t.same(sc.last_revision_per_shard, [1n, 0n]);
  t.notOk(o.svc.lockHeld);
  n.app.rev = o.app.rev;
  for (const [k, v] of o.app.data) n.app.data.set(k, v);
  n.s.send({ type: 'Begin', handoff_id: id });
  const ready = await n.s.expect('Ready');
  t.same(ready.advertised_revision_per_shard, sc.last_revision_per_shard);
  t.same(ready.listening_on, ['http']);
  t.ok(n.svc.lockHeld);
  o.s.send({ type: 'Commit', handoff_id: id });
  t.equal(await o.app.waitExit(), 0);
  t.same(o.app.calls, ['open', 'seal', 'close']);
  t.equal((await request(w.listener.port, 'GET', '/a')).body, '1', 'the successor serves');
  t.same(events, ['accept-closed', 'prepare', 'drained', 'seal', 'sealed', 'begin', 'ready', 'committed', 'accept-closed']);
});

t.test('SealFailed keeps the lock; Abort resumes', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  o.app.fail.seal = new SealError('disk on fire\nstack line', 'shard 1 of 2 sealed');
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'SealRequest', handoff_id: id });
  const f = await o.s.expect('SealFailed');
  t.equal(f.error, 'disk on fire');
  t.equal(f.partial_state, 'shard 1 of 2 sealed');
  t.ok(o.svc.lockHeld);
  t.equal(o.svc.phase, 'seal-failed');
  o.s.send({ type: 'Abort', handoff_id: id, reason: 'seal_failed: x' });
  await o.app.waitLog('serving again');
  t.equal(o.svc.phase, 'serving');
  t.same(o.app.calls, ['open', 'seal', 'resume']);
  t.equal((await request(w.listener.port, 'PUT', '/b', '')).status, 200);
});

t.test('a seal that returns a malformed result is a SealFailed too', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  o.app.badFingerprint = true;
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'SealRequest', handoff_id: id });
  t.equal((await o.s.expect('SealFailed')).partial_state, 'unknown');
});

t.test('Abort while sealing waits for the seal, then resumes; ResumeAfterAbort after the lock was retaken', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  const release = o.app.gate('seal');
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'SealRequest', handoff_id: id });
  await o.s.expect('SealProgress');
  o.s.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: x' });
  await o.app.waitLog('handoff called off');
  release();
  await o.app.waitLog('serving again');
  t.ok(o.svc.lockHeld, 'the lock was never let go');
  t.same(o.app.calls, ['open', 'seal', 'resume']);
});

t.test('ResumeAfterAbort after SealComplete: lock retaken; with the lock elsewhere: exit 1', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  const id = newHandoffId();
  await sealed(o, id);
  o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
  await o.app.waitLog('serving again');
  t.ok(o.svc.lockHeld);
  o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
  o.s.send({ type: 'Abort', handoff_id: id, reason: 'late' });
  const id2 = newHandoffId();
  await sealed(o, id2);
  const thief = new DataDirLock(w.lockPath);
  await thief.acquire();
  t.teardown(() => thief.release());
  o.s.send({ type: 'Abort', handoff_id: id2, reason: 'revision_mismatch: x' });
  t.equal(await o.app.waitExit(), 1);
});

t.test('an aborted drain: accept reopens, keep-alive returns', async (t) => {
  const w = await world(t);
  let undrained = 0;
  let endDrain: () => void = () => undefined;
  const o = await incumbent(t, w, {
    drain: (grace) =>
      new Promise<number>((r) => {
        endDrain = () => r(0);
        setTimeout(() => r(0), grace).unref();
      }),
    stopGraceMs: 50,
    undrain: () => {
      undrained++;
      endDrain();
    },
  });
  const id = newHandoffId();
  o.s.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 60_000n });
  await o.app.waitLog('preparing: accept closed, draining');
  const queued = request(w.listener.port, 'GET', '/x');
  o.s.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: x' });
  t.equal((await queued).status, 404, 'served once accept reopened');
  t.equal(undrained, 1);
  t.equal(o.svc.phase, 'serving');
  t.equal(o.svc.handoffId, undefined);
});

t.test('the successor side: failures become Abort, an Abort rolls back', async (t) => {
  const cases: Array<[string, (app: App) => void, RegExp, number]> = [
    ['begin hook throws', (a) => (a.fail.begin = new Error('no way')), /^successor_failed: no way$/, 1],
    ['open throws', (a) => (a.fail.open = new Error('corrupt\nmore')), /^successor_failed: corrupt$/, 1],
  ];
  for (const [name, arrange, reason, code] of cases) {
    t.test(name, async (t) => {
      const w = await world(t);
      const n = await spawnSvc(t, w, 'successor');
      arrange(n.app);
      const id = newHandoffId();
      await n.s.handshake(id);
      n.s.send({ type: 'Begin', handoff_id: id });
      t.match((await n.s.expect('Abort')).reason, reason);
      t.equal(await n.app.waitExit(), code);
      t.notOk(isLockHeld(w.lockPath), 'nothing left locked');
    });
  }
  t.test('lock held elsewhere: lock_held', async (t) => {
    const w = await world(t);
    const other = new DataDirLock(w.lockPath);
    await other.acquire();
    t.teardown(() => other.release());
    const n = await spawnSvc(t, w, 'successor');
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    t.match((await n.s.expect('Abort')).reason, /^lock_held: /);
    t.equal(await n.app.waitExit(), 1);
  });
  t.test('health throws: healthz_ok false, never accepting; then Abort after Ready rolls back', async (t) => {
    const w = await world(t);
    const n = await spawnSvc(t, w, 'successor');
    n.app.fail.health = new Error('sick');
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    t.equal((await n.s.expect('Ready')).healthz_ok, false);
    t.equal(n.svc.phase, 'unhealthy');
    n.s.send({ type: 'Abort', handoff_id: id, reason: 'successor_unhealthy: x' });
    t.equal(await n.app.waitExit(), 0);
    t.same(n.app.calls, ['begin', 'open', 'health', 'close']);
    t.notOk(n.events.includes('accepting'), 'never accepted');
    t.notOk(isLockHeld(w.lockPath));
  });
  t.test('Abort while beginning: exit 0', async (t) => {
    const w = await world(t);
    const n = await spawnSvc(t, w, 'successor');
    n.app.fail.begin = 'hang';
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    await n.app.waitLog('begin');
    n.s.send({ type: 'Abort', handoff_id: id, reason: 'deadline_exceeded: x' });
    t.equal(await n.app.waitExit(), 0);
  });
  t.test('S lost before Begin: exit 1; after Begin: serve without Ready', async (t) => {
    const w = await world(t);
    const a = await spawnSvc(t, w, 'successor');
    await a.s.handshake(newHandoffId());
    a.s.ch.close();
    t.equal(await a.app.waitExit(), 1);
    const b = await spawnSvc(t, w, 'successor');
    const go = b.app.gate('open');
    const id = newHandoffId();
    await b.s.handshake(id);
    b.s.send({ type: 'Begin', handoff_id: id });
    await b.app.waitLog('data-dir lock taken');
    b.s.ch.close();
    await b.app.waitLog('supervisor lost');
    go();
    await b.app.waitLog('the supervisor was lost after Begin; holding the lock, serving');
    t.equal(b.svc.phase, 'serving');
    t.equal((await request(w.listener.port, 'GET', '/z')).status, 404);
  });
  t.test('nil id, or a version we do not speak', async (t) => {
    const w = await world(t);
    const a = await spawnSvc(t, w, 'successor');
    await a.s.handshake(NIL_ID);
    t.equal(await a.app.waitExit(), 1);
    const b = await spawnSvc(t, w, 'successor');
    await b.s.expect('Hello');
    b.s.send({ type: 'Heartbeat', ts_ms: 1n });
    b.s.send({ type: 'SealRequest', handoff_id: NIL_ID });
    t.equal(await b.app.waitExit(), 1, 'anything but HelloAck first is a protocol error');
  });
  t.end();
});

t.test('S lost: every rule', async (t) => {
  t.test('draining: serve again', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w, { drain: (grace) => new Promise<number>((r) => setTimeout(() => r(0), grace).unref()), undrain: () => undefined, stopGraceMs: 50 });
    const lost: string[] = [];
    o.svc.on('supervisor-lost', (e) => lost.push(e.phase));
    o.s.send({ type: 'PrepareHandoff', handoff_id: newHandoffId(), successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 60_000n });
    await o.app.waitLog('preparing: accept closed, draining');
    o.s.ch.close();
    await o.app.waitLog('serving again');
    t.same(lost, ['draining']);
  });
  t.test('sealed, lock free: retake and serve', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w);
    await sealed(o, newHandoffId());
    o.s.ch.close();
    await o.app.waitLog('serving again');
    t.ok(o.svc.lockHeld);
  });
  t.test('sealed, lock taken: exit after the bounded retry', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w, {}, { heartbeatTimeoutMs: 300 });
    await sealed(o, newHandoffId());
    const n = new DataDirLock(w.lockPath);
    await n.acquire();
    t.teardown(() => n.release());
    o.s.ch.close();
    t.equal(await o.app.waitExit(), 1);
  });
  t.test('while sealing: the seal finishes, then serve again with the lock', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w);
    const go = o.app.gate('seal');
    const id = newHandoffId();
    await drained(o, id);
    o.s.send({ type: 'SealRequest', handoff_id: id });
    await o.s.expect('SealProgress');
    o.s.ch.close();
    await o.app.waitLog('supervisor lost');
    go();
    await o.app.waitLog('serving again');
    t.ok(o.svc.lockHeld);
    t.same(o.app.calls, ['open', 'seal', 'resume']);
  });
  t.test('seal failed: resume with the lock', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w);
    o.app.fail.seal = new Error('nope');
    const id = newHandoffId();
    await drained(o, id);
    o.s.send({ type: 'SealRequest', handoff_id: id });
    await o.s.expect('SealFailed');
    o.s.ch.close();
    await o.app.waitLog('serving again');
  });
  t.end();
});

t.test('protocol violations by S', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  o.s.send({ type: 'Abort', handoff_id: newHandoffId(), reason: 'not ours' });
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'Commit', handoff_id: newHandoffId() });
  const a = await o.s.expect('Abort');
  t.ok(idEquals(a.handoff_id, id));
  t.match(a.reason, /^handoff_id_mismatch/);
  await o.app.waitLog('serving again');
  t.equal(o.svc.phase, 'serving', 'the unsealed incumbent serves on without S');
});

t.test('deadline: the incumbent gives up waiting and tells S', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, {}, { heartbeatTimeoutMs: 200 });
  const id = newHandoffId();
  o.s.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 100n, drain_grace_ms: 10n });
  await o.s.expect('Drained');
  t.match((await o.s.expect('Abort')).reason, /^deadline_exceeded/);
  await o.app.waitLog('serving again');
});

t.test('stop(): drain, close, release, exit 0', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  await o.svc.stop();
  t.equal(o.app.exitCode, 0);
  t.notOk(isLockHeld(w.lockPath));
  t.same(o.app.calls, ['open', 'close']);
  await o.svc.stop(); // already gone: nothing
});

t.test('stop(): the drain grace is stopGraceMs, else HANDOFF_DRAIN_GRACE_MS (from S), else 10 s', async (t) => {
  const cases: Array<[string, Partial<ServiceOptions>, number]> = [
    ['from S', { env: { HANDOFF_DRAIN_GRACE_MS: '1234' } }, 1234],
    ['the option wins', { env: { HANDOFF_DRAIN_GRACE_MS: '1234' }, stopGraceMs: 50 }, 50],
    ['neither', {}, 10_000],
  ];
  for (const [name, over, want] of cases) {
    const w = await world(t);
    const graces: number[] = [];
    const o = await incumbent(t, w, { ...over, drain: async (grace) => void graces.push(grace), undrain: () => undefined });
    await o.svc.stop();
    t.equal(o.app.exitCode, 0, name);
    t.same(graces, [want], name);
  }
});

t.test('SIGTERM stops; a second stop does not wait for the first drain', async (t) => {
  const w = await world(t);
  const before = process.listenerCount('SIGTERM');
  let endDrain: () => void = () => undefined;
  const drain = (): Promise<number> => new Promise<number>((r) => (endDrain = () => r(0)));
  const o = await incumbent(t, w, { handleSignals: true, drain, undrain: () => undefined });
  t.equal(process.listenerCount('SIGTERM'), before + 1);
  // Call the service's handler only: process.emit would also run the test runner's own.
  (process.listeners('SIGTERM').at(-1) as (sig: NodeJS.Signals) => void)('SIGTERM');
  await o.app.waitLog('stopping on signal');
  t.equal(o.svc.phase, 'stopping');
  await o.svc.stop();
  t.equal(o.app.exitCode, 1, 'the second request exits at once');
  t.equal(process.listenerCount('SIGTERM'), before, 'the handlers are gone with the service');
  endDrain();
});

t.test('a cold start that cannot lock, or cannot open, exits 1', async (t) => {
  const w = await world(t);
  const other = new DataDirLock(w.lockPath);
  await other.acquire();
  const a = await spawnSvc(t, w, 'cold-start');
  t.equal(await a.app.waitExit(), 1);
  await other.release();
  const app = new App();
  app.fail.open = new Error('cannot replay');
  const { fd } = await controlPair(w);
  const svc = createService(app.options({ contract: { role: 'cold-start', sockFd: fd, listeners: [{ name: 'http', fd: await inherited(w) }], lockPath: w.lockPath } }));
  void svc.start();
  t.equal(await app.waitExit(), 1);
  await t.rejects(svc.start(), /already called/);
});

t.test('without S: standalone listen, Acceptor servers, stop', async (t) => {
  const w = await world(t);
  const app = new App();
  const started: number[] = [];
  const acceptor: Acceptor = {
    start: (fd) => {
      started.push(fd);
    },
    stop: () => undefined,
  };
  t.throws(() => createService(app.options({ servers: { http: app.server }, standaloneListen: undefined })), /no standaloneListen/);
  const svc = await startService(app.options({ standaloneListen: { http: { host: '127.0.0.1', port: 0 } }, lockPath: w.lockPath }));
  t.notOk(svc.supervised);
  const port = (app.server.address() as net.AddressInfo).port;
  t.equal((await request(port, 'GET', '/q')).status, 404);
  await svc.stop();
  t.equal(app.exitCode, 0);

  // An Acceptor gets a fresh descriptor of the inherited listener.
  const app2 = new App();
  const rawFd = await inherited(w);
  const svc2 = await startService(app2.options({ servers: { raw: acceptor }, contract: { listeners: [{ name: 'raw', fd: rawFd }] } }));
  t.equal(started.length, 1);
  t.equal(started[0], rawFd, 'the inherited descriptor first');
  await svc2.stop();
  fs.closeSync(started[0]!);
});

t.test('configuration errors are reported at construction', async (t) => {
  const app = new App();
  t.throws(() => new HandoffService(app.options({ buildId: 'x'.repeat(65) })), /longer than 64 bytes/);
  t.throws(() => new HandoffService(app.options({ servers: {} })), /at least one server/);
  t.throws(() => new HandoffService(app.options({ contract: { sockFd: 9, listeners: [{ name: 'web', fd: 3 }] } })), /no inherited listener named "http"/);
  const warned = new HandoffService(app.options({ servers: { http: app.server }, contract: { sockFd: 9, listeners: [{ name: 'http', fd: 3 }, { name: 'admin', fd: 4 }], lockPath: '/a' }, lockPath: '/b' }));
  t.ok(app.logs.some((l) => l.msg === 'an inherited listener has no server; it is not served'));
  t.ok(app.logs.some((l) => typeof l.msg === 'string' && l.msg.startsWith('HANDOFF_LOCK_PATH differs')));
  t.equal(warned.phase, 'idle');
  // Unnamed fds from plain socket activation are taken in the order the servers are given.
  const unnamed = new HandoffService(app.options({ env: { LISTEN_FDS: '1' } }));
  t.same([...unnamed.listenerFds], [['http', 3]]);
  t.same(checkLockTrace([]), []);
});

