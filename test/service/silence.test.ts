/**
 * Issue 8, item 3 (the library's part): a supervisor that is silent (paused: SIGSTOP, a stalled
 * VM) on a channel that stays open is not a lost supervisor. The scripted S stops its heartbeats,
 * keeps its socket open, and later speaks again; what the service does is checked phase by phase.
 */

import t, { type Test } from 'tap';
import { idEquals, newHandoffId, type HandoffId, type MessageOf } from '../../src/protocol/index.js';
import { DataDirLock, isLockHeld } from '../../src/shared/lock.js';
import { request, within } from './harness.js';
import { HOLDING_THE_LOCK, drained, incumbent, sealed, spawnSvc, world, type Log, type Proc } from './inproc.js';

/** Short timings: S's 50 ms heartbeats, silence judged after 300 ms. */
const FAST = { heartbeatTimeoutMs: 300 };

/** S goes quiet; resolves with the service's warning (which names the phase it was in). */
async function pause(p: Proc): Promise<Log> {
  p.s.silence();
  return p.app.waitLog('the supervisor is silent');
}

/** `n` heartbeats from the service (it goes on speaking to a silent S). */
async function heartbeats(p: Proc, n: number): Promise<void> {
  for (let i = 0; i < n; ) {
    const m = await within(p.s.ch.receive(), 5_000, 'a heartbeat from the service');
    if (m.type === 'Heartbeat') i++;
    else throw new Error(`unexpected ${m.type}`);
  }
}

function isHeartbeatAbort(t: Test, a: MessageOf<'Abort'>, id: HandoffId): void {
  t.ok(idEquals(a.handoff_id, id), 'the Abort names the handoff');
  t.match(a.reason, /^heartbeat_timeout: /);
}

/** S is back: speaks again, and the service says so; the channel was never closed. */
async function back(t: Test, p: Proc): Promise<void> {
  p.s.speak();
  await p.app.waitLog('the supervisor is back');
  t.notOk(p.s.ch.closed, 'the channel stayed open');
  t.notOk(
    p.events.some((e) => e.startsWith('supervisor-lost')),
    'never taken for lost',
  );
}

/** The channel is in order: a new handoff drains, and its Abort makes the incumbent serve again. */
async function nextHandoffWorks(t: Test, p: Proc): Promise<void> {
  const id = newHandoffId();
  await drained(p, id);
  p.s.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: test' });
  await p.app.waitLog('serving again', 10_000, p.app.messages.filter((m) => m === 'serving again').length + 1);
  t.equal(p.svc.phase, 'serving', 'the next handoff went through the same channel');
}

t.test('at rest: a warning once, serving on, the channel kept; then back', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, {}, FAST);
  const l = await pause(o);
  t.equal(l.phase, 'serving');
  // Longer than two more timeouts: heartbeats still go out, nothing else happens.
  await heartbeats(o, 15);
  t.equal(o.app.messages.filter((m) => m === 'the supervisor is silent').length, 1, 'warned once');
  t.equal((await request(w.listener.port, 'PUT', '/a', '')).status, 200, 'serving and writing');
  t.ok(o.svc.lockHeld);
  await back(t, o);
  await nextHandoffWorks(t, o);
});

t.test('our own stall is nobody’s silence', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, {}, FAST);
  await heartbeats(o, 2);
  // The whole process (S included) does not run for three heartbeat timeouts.
  const until = performance.now() + 900;
  while (performance.now() < until) {
    // busy: a stalled event loop
  }
  await heartbeats(o, 15);
  t.notOk(o.app.messages.includes('the supervisor is silent'));
  t.notOk(o.s.ch.closed);
});

t.test('a successor before Begin leaves (it holds nothing)', async (t) => {
  const w = await world(t);
  const n = await spawnSvc(t, w, 'successor', {}, FAST);
  await n.s.handshake(newHandoffId());
  n.s.silence();
  t.equal(await n.app.waitExit(), 1);
  t.ok(n.events.includes('supervisor-lost:awaiting-begin'));
  t.notOk(isLockHeld(w.lockPath));
});

t.test('incumbent holding the lock mid-handoff: Abort(heartbeat_timeout) to S, serve again, channel kept', async (t) => {
  const cases = HOLDING_THE_LOCK;
  for (const [phase, reach, calls] of cases) {
    t.test(phase, async (t) => {
      const w = await world(t);
      // A drain that lasts its whole grace unless called off, so 'draining' stays put.
      let endDrain: () => void = () => undefined;
      const slow =
        phase === 'draining'
          ? {
              drain: (grace: number) =>
                new Promise<number>((r) => {
                  endDrain = () => r(0);
                  setTimeout(() => r(0), grace).unref();
                }),
              undrain: () => endDrain(),
              stopGraceMs: 50,
            }
          : {};
      const o = await incumbent(t, w, slow, FAST);
      const id = newHandoffId();
      await reach(o, id);
      t.equal(o.svc.phase, phase);
      const pending = request(w.listener.port, 'GET', '/q');
      t.equal((await pause(o)).phase, phase);
      isHeartbeatAbort(t, await o.s.expect('Abort'), id);
      await o.app.waitLog('serving again');
      t.equal((await pending).status, 404, 'a client queued meanwhile is served');
      t.ok(o.svc.lockHeld, 'the lock was never let go');
      t.same(o.app.calls, calls);
      t.ok(o.events.includes(`aborted:${phase}`));
      await back(t, o);
      // S, running again, may still act on what it read before our Abort: harmless.
      o.s.send({ type: 'SealRequest', handoff_id: id });
      o.s.send({ type: 'Abort', handoff_id: id, reason: 'heartbeat_timeout: echo' });
      await nextHandoffWorks(t, o);
    });
  }
  t.end();
});

t.test('sealing: the seal finishes, then Abort(heartbeat_timeout), serve again; the lock never let go', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, {}, FAST);
  const go = o.app.gate('seal');
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'SealRequest', handoff_id: id });
  await o.s.expect('SealProgress');
  t.equal((await pause(o)).phase, 'sealing');
  go();
  isHeartbeatAbort(t, await o.s.expect('Abort'), id);
  await o.app.waitLog('serving again');
  t.ok(o.svc.lockHeld);
  t.notOk(o.events.includes('sealed'), 'no SealComplete, no release');
  t.same(o.app.calls, ['open', 'seal', 'resume']);
  t.equal((await request(w.listener.port, 'PUT', '/s', '')).status, 200, 'writable again');
  await back(t, o);
  await nextHandoffWorks(t, o);
});

t.test('sealing: S back before the seal ends, the handoff goes on', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, {}, FAST);
  const go = o.app.gate('seal');
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'SealRequest', handoff_id: id });
  await o.s.expect('SealProgress');
  await pause(o);
  await back(t, o);
  go();
  await o.s.expect('SealComplete');
  t.notOk(o.svc.lockHeld);
  o.s.send({ type: 'Commit', handoff_id: id });
  t.equal(await o.app.waitExit(), 0);
});

t.test('sealed, lock free: retaken, then Abort(heartbeat_timeout), serve again', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w, {}, FAST);
  const id = newHandoffId();
  await sealed(o, id);
  t.equal((await pause(o)).phase, 'sealed');
  isHeartbeatAbort(t, await o.s.expect('Abort'), id);
  await o.app.waitLog('serving again');
  t.ok(o.svc.lockHeld);
  t.equal((await request(w.listener.port, 'PUT', '/s', '')).status, 200);
  await back(t, o);
  o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
  await nextHandoffWorks(t, o);
});

/** An incumbent that sealed, the lock taken by a successor, then S silent past the timeout. */
async function sealedSuccessorHoldsLock(t: Test): Promise<{ o: Proc; id: HandoffId; n: DataDirLock }> {
  const w = await world(t);
  const o = await incumbent(t, w, {}, FAST);
  const id = newHandoffId();
  await sealed(o, id);
  const n = new DataDirLock(w.lockPath);
  await n.acquire();
  t.teardown(() => n.release());
  await pause(o);
  return { o, id, n };
}

t.test('sealed, the successor holds the lock: exit, and no Abort to S', async (t) => {
  const { o } = await sealedSuccessorHoldsLock(t);
  t.equal(await o.app.waitExit(), 1);
  await t.rejects(o.s.next(), /end of stream|closed/, 'nothing but heartbeats before the channel closed');
});

t.test('sealed, the successor holds the lock, S comes back with Commit while the lock is retried: commit', async (t) => {
  const { o, id, n } = await sealedSuccessorHoldsLock(t);
  // S read the successor's Ready before anything the incumbent said about the silence.
  o.s.speak();
  o.s.send({ type: 'Commit', handoff_id: id });
  t.equal(await o.app.waitExit(), 0, 'a clean exit, as after any Commit');
  t.ok(o.events.includes('committed'), 'it committed');
  t.ok(n.held, 'the successor kept its lock');
});

t.test('a successor goes on through silence', async (t) => {
  t.test('beginning: Ready all the same, once healthy and accepting', async (t) => {
    const w = await world(t);
    const n = await spawnSvc(t, w, 'successor', {}, FAST);
    const go = n.app.gate('open');
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    await n.app.waitLog('data-dir lock taken');
    t.equal((await pause(n)).phase, 'beginning');
    go();
    t.equal((await n.s.expect('Ready')).healthz_ok, true);
    t.equal(n.svc.phase, 'serving');
    t.equal((await request(w.listener.port, 'GET', '/n')).status, 404);
    await back(t, n);
  });
  t.test('serving after Ready: serves on', async (t) => {
    const w = await world(t);
    const n = await spawnSvc(t, w, 'successor', {}, FAST);
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    await n.s.expect('Ready');
    t.equal((await pause(n)).phase, 'serving');
    await heartbeats(n, 10);
    t.equal((await request(w.listener.port, 'PUT', '/n', '')).status, 200);
    await back(t, n);
  });
  t.test('unhealthy: still waits for the Abort, never accepting', async (t) => {
    const w = await world(t);
    const n = await spawnSvc(t, w, 'successor', {}, FAST);
    n.app.healthy = false;
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    t.equal((await n.s.expect('Ready')).healthz_ok, false);
    t.equal((await pause(n)).phase, 'unhealthy');
    await heartbeats(n, 10);
    await back(t, n);
    n.s.send({ type: 'Abort', handoff_id: id, reason: 'successor_unhealthy: test' });
    t.equal(await n.app.waitExit(), 0);
    t.notOk(n.events.includes('accepting'));
  });
  t.end();
});
