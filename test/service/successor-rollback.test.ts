/**
 * Issue 8, item 2: a rejected successor never serves, and a successor rolled back after it
 * accepted drains its clients instead of resetting them. In this process (the runtime under the
 * test's hooks) and with real kv processes under keep-alive load.
 */

import t, { type Test } from 'tap';
import http from 'node:http';
import { NIL_ID, newHandoffId, type HandoffId } from '../../src/protocol/index.js';
import { checkLockTrace, isLockHeld } from '../../src/shared/lock.js';
import { Child, Hammer, info, lockHolder, prepare, readTrace, request, setup, within, type Ctx } from './harness.js';
import { incumbent, sealed, spawnSvc, world } from './inproc.js';

t.test('in this process', async (t) => {
  t.test('a successor asks health before it accepts, and accepts before Ready', async (t) => {
    const w = await world(t);
    const n = await spawnSvc(t, w, 'successor');
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    n.svc.on('accepting', () => n.app.calls.push('accepting'));
    t.equal((await n.s.expect('Ready')).healthz_ok, true);
    t.same(n.app.calls, ['begin', 'open', 'health', 'accepting']);
    t.same(n.events, ['hello', 'begin', 'accepting', 'ready']);
    t.equal((await request(w.listener.port, 'GET', '/n')).status, 404, 'the healthy successor serves');
  });

  t.test('an unhealthy successor never accepts: a client waiting meanwhile is answered by the incumbent', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w);
    const n = await spawnSvc(t, w, 'successor');
    const served = { o: 0, n: 0 };
    o.app.server.on('request', () => served.o++);
    n.app.server.on('request', () => served.n++);
    n.app.server.on('connection', () => t.fail('a connection reached the unhealthy successor'));
    const id = newHandoffId();
    await n.s.handshake(id);
    await sealed(o, id);
    n.app.healthy = false;
    n.s.send({ type: 'Begin', handoff_id: id });
    t.equal((await n.s.expect('Ready')).healthz_ok, false);
    t.equal(n.svc.phase, 'unhealthy');
    t.ok(n.svc.lockHeld, 'it holds the lock until S calls the handoff off');
    // Nobody accepts now: the connection waits in the kernel queue.
    const pending = request(w.listener.port, 'GET', '/waiting');
    n.s.send({ type: 'Abort', handoff_id: id, reason: 'successor_unhealthy: test' });
    t.equal(await n.app.waitExit(), 0, 'a quiet exit');
    t.notOk(isLockHeld(w.lockPath), 'the lock is let go');
    t.same(n.app.calls, ['begin', 'open', 'health', 'close'], 'the state is closed');
    t.same(
      n.events.filter((e) => e !== 'accept-closed'),
      ['hello', 'begin', 'ready', 'aborted:unhealthy'],
      'never accepting',
    );
    o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
    t.equal((await pending).status, 404);
    t.same(served, { o: 1, n: 0 }, 'the incumbent answered; the rejected build answered nothing');
  });

  t.test('rolled back after Ready: drains with S’s drain grace, then closes, lets the lock go, exits 0', async (t) => {
    const w = await world(t);
    const order: string[] = [];
    const n = await spawnSvc(
      t,
      w,
      'successor',
      {
        drain: async (grace) => void order.push(`drain ${grace}`),
        undrain: () => undefined,
      },
      { drainGraceMs: 1234 },
    );
    n.svc.on('accept-closed', () => order.push('accept-closed'));
    const id = newHandoffId();
    await n.s.handshake(id);
    n.s.send({ type: 'Begin', handoff_id: id });
    await n.s.expect('Ready');
    n.app.calls.length = 0;
    n.s.send({ type: 'Abort', handoff_id: id, reason: 'revision_mismatch: test' });
    t.equal(await n.app.waitExit(), 0);
    t.same(order.slice(0, 2), ['accept-closed', 'drain 1234'], 'accept closed, then the drain with S’s grace');
    t.same(n.app.calls, ['close']);
    t.notOk(isLockHeld(w.lockPath));
    t.ok(n.events.includes('aborted:serving'));
  });

  t.test('rolled back after Ready with keep-alive clients: every request is answered, none reset', async (t) => {
    const w = await world(t);
    const o = await incumbent(t, w);
    const n = await spawnSvc(t, w, 'successor', {}, { drainGraceMs: 5_000 });
    const id = newHandoffId();
    await n.s.handshake(id);
    await sealed(o, id);
    n.s.send({ type: 'Begin', handoff_id: id });
    await n.s.expect('Ready');
    const agents = Array.from({ length: 4 }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    t.teardown(() => agents.forEach((a) => a.destroy()));
    let running = true;
    const answered = new Counter();
    const byN = new Counter();
    n.app.server.on('request', () => byN.bump());
    const failures: string[] = [];
    const loops = agents.map(async (agent, c) => {
      for (let i = 0; running && i < 100_000; i++) {
        try {
          const r = await request(w.listener.port, 'GET', `/c${c}`, undefined, agent);
          if (r.status !== 404) failures.push(`status ${r.status}`);
          answered.bump();
        } catch (err) {
          failures.push((err as Error).message);
        }
      }
    });
    await byN.reach(50);
    n.s.send({ type: 'Abort', handoff_id: id, reason: 'revision_mismatch: test' });
    t.equal(await n.app.waitExit(), 0);
    o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
    await o.app.waitLog('serving again');
    await answered.reach(answered.n + 50);
    running = false;
    await within(Promise.all(loops), 20_000, 'the clients to stop');
    t.ok(byN.n >= 50, `${byN.n} requests answered by the successor before its rollback`);
    t.same(failures, [], `no failed request out of ${answered.n}`);
  });
  t.end();
});

/** A count that can be waited on. */
class Counter {
  n = 0;
  private waiters: Array<{ at: number; resolve: () => void }> = [];
  bump(): void {
    this.n++;
    this.waiters = this.waiters.filter((w) => (this.n >= w.at ? (w.resolve(), false) : true));
  }
  reach(at: number, ms = 15_000): Promise<void> {
    if (this.n >= at) return Promise.resolve();
    return within(new Promise<void>((resolve) => this.waiters.push({ at, resolve })), ms, `count ${at}`);
  }
}

function spawnKv(c: Ctx, role: 'cold-start' | 'successor', args: string[] = [], env: NodeJS.ProcessEnv = {}): Child {
  const ch = new Child({ role, listener: c.listener, layout: c.layout, args, env });
  c.children.push(ch);
  return ch;
}

/** A kv incumbent serving 8 keep-alive clients, and the id of the handoff about to start. */
async function servingUnderLoad(t: Test): Promise<{ c: Ctx; o: Child; load: Hammer; id: HandoffId }> {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start', ['--build-id', 'kv-old']);
  await o.handshake(NIL_ID);
  const load = new Hammer(c.listener.port, 8);
  t.teardown(() => load.stop());
  await load.progress(100);
  const id = newHandoffId();
  return { c, o, load, id };
}

t.test('kv processes under keep-alive load', async (t) => {
  t.test('a successor rolled back after Ready drains: no failed request, no lost write', async (t) => {
    const { c, o, load, id } = await servingUnderLoad(t);
    const n = spawnKv(c, 'successor', ['--build-id', 'kv-new'], { HANDOFF_DRAIN_GRACE_MS: '5000' });
    await n.handshake(id);
    await prepare(o, id, n.pid);
    const m = await o.seal(id);
    t.equal(m.type, 'SealComplete');
    n.send({ type: 'Begin', handoff_id: id });
    t.equal((await n.expect('Ready')).healthz_ok, true);
    await load.progress(200);
    t.equal((await info(c.listener.port)).pid, n.pid, 'the successor serves');
    n.send({ type: 'Abort', handoff_id: id, reason: 'revision_mismatch: test' });
    t.same(await n.waitExit(), { code: 0, signal: null }, 'it drains and exits 0 on its own');
    o.send({ type: 'ResumeAfterAbort', handoff_id: id });
    await load.progress(200);
    await load.stop();
    t.same(load.failures, [], `no failed request out of ${load.requests}`);
    t.equal((await info(c.listener.port)).pid, o.pid, 'the incumbent serves again');
    let checked = 0;
    for (const [key, value] of load.acked) {
      const r = await request(c.listener.port, 'GET', `/kv/${key}`);
      if (r.body !== value) t.fail(`${key}: ${r.status} ${r.body}, wanted ${value}`);
      checked++;
    }
    t.ok(checked >= 8, `${checked} acknowledged keys read back, writes taken by the successor included`);
    t.same(checkLockTrace(readTrace(c.layout)), [], 'never two lock holders');
    t.equal(lockHolder(c.layout), o.pid);
  });

  t.test('an unhealthy successor answers nothing; its rollback costs no request', async (t) => {
    const { c, o, load, id } = await servingUnderLoad(t);
    const n = spawnKv(c, 'successor', ['--build-id', 'kv-bad', '--fault', 'unhealthy']);
    await n.handshake(id);
    await prepare(o, id, n.pid);
    t.equal((await o.seal(id)).type, 'SealComplete');
    n.send({ type: 'Begin', handoff_id: id });
    t.equal((await n.expect('Ready')).healthz_ok, false);
    // A request now would be the rejected build's to answer if it accepted.
    const pending = info(c.listener.port);
    n.send({ type: 'Abort', handoff_id: id, reason: 'successor_unhealthy: test' });
    t.same(await n.waitExit(), { code: 0, signal: null });
    o.send({ type: 'ResumeAfterAbort', handoff_id: id });
    t.equal((await pending).pid, o.pid, 'answered by the incumbent once it resumed');
    await load.progress(200);
    await load.stop();
    t.same(load.failures, [], `no failed request out of ${load.requests}`);
    t.same(checkLockTrace(readTrace(c.layout)), []);
    t.equal(lockHolder(c.layout), o.pid);
  });
  t.end();
});
