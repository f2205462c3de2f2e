/**
 * Issue 8, item 7 (the library's part): S tells an offender `Abort` and then closes its channel.
 * The service must act on the Abort (roll back, or serve again) and must not take the close that
 * follows for a lost supervisor. Every phase an Abort can reach, each followed at once by EOF.
 */

import t, { type Test } from 'tap';
import { newHandoffId, type HandoffId } from '../../src/protocol/index.js';
import { isLockHeld } from '../../src/shared/lock.js';
import { request } from './harness.js';
import { HOLDING_THE_LOCK, drained, incumbent, sealed, spawnSvc, world, type Proc, type ReachPhase, type World } from './inproc.js';

const REASON = 'unexpected_message: test';

function notLost(t: Test, p: Proc): void {
  t.notOk(
    p.events.some((e) => e.startsWith('supervisor-lost')),
    `no supervisor-lost (${p.events.join(', ')})`,
  );
  t.notOk(p.app.messages.includes('supervisor lost'));
}

t.test('a successor rolls back and exits 0', async (t) => {
  const cases: Array<[string, (w: World, p: Proc, id: HandoffId) => Promise<void>, string[], boolean]> = [
    ['awaiting-begin', async (_w, p) => void (await p.app.waitLog('hello acknowledged')), [], false],
    [
      'beginning',
      async (_w, p, id) => {
        p.app.gate('open');
        p.s.send({ type: 'Begin', handoff_id: id });
        await p.app.waitLog('data-dir lock taken');
      },
      ['begin', 'open'],
      false,
    ],
    [
      'unhealthy',
      async (_w, p, id) => {
        p.app.healthy = false;
        p.s.send({ type: 'Begin', handoff_id: id });
        await p.s.expect('Ready');
      },
      ['begin', 'open', 'health', 'close'],
      false,
    ],
    [
      'serving',
      async (w, p, id) => {
        p.s.send({ type: 'Begin', handoff_id: id });
        await p.s.expect('Ready');
        t.equal((await request(w.listener.port, 'GET', '/x')).status, 404);
      },
      ['begin', 'open', 'health', 'close'],
      true,
    ],
  ];
  for (const [phase, reach, calls, accepted] of cases) {
    t.test(phase, async (t) => {
      const w = await world(t);
      const n = await spawnSvc(t, w, 'successor', { stopGraceMs: 1_000 });
      const id = newHandoffId();
      await n.s.handshake(id);
      await reach(w, n, id);
      t.equal(n.svc.phase, phase);
      n.s.abortAndClose(id, REASON);
      t.equal(await n.app.waitExit(), 0, 'a quiet exit');
      t.ok(n.events.includes(`aborted:${phase}`), 'aborted');
      notLost(t, n);
      t.same(n.app.calls, calls);
      t.equal(n.events.includes('accepting'), accepted);
      t.notOk(isLockHeld(w.lockPath), 'the lock is let go');
    });
  }
  t.end();
});

t.test('an incumbent serves again with its lock', async (t) => {
  const cases: ReachPhase[] = [
    ...HOLDING_THE_LOCK,
    [
      'sealing',
      async (p, id) => {
        const go = p.app.gate('seal');
        await drained(p, id);
        p.s.send({ type: 'SealRequest', handoff_id: id });
        await p.s.expect('SealProgress');
        // The seal ends once the Abort was read.
        void p.app.waitLog('handoff called off').then(go);
      },
      ['open', 'seal', 'resume'],
    ],
    ['sealed', async (p, id) => void (await sealed(p, id)), ['open', 'seal', 'resume']],
  ];
  for (const [phase, reach, calls] of cases) {
    t.test(phase, async (t) => {
      const w = await world(t);
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
      const o = await incumbent(t, w, slow);
      const id = newHandoffId();
      await reach(o, id);
      t.equal(o.svc.phase, phase);
      const pending = request(w.listener.port, 'GET', '/q');
      o.s.abortAndClose(id, REASON);
      await o.app.waitLog('serving again');
      await o.app.waitLog('the supervisor closed the channel after its Abort');
      t.equal((await pending).status, 404, 'a client queued meanwhile is served');
      t.equal(o.svc.phase, 'serving');
      t.ok(o.svc.lockHeld);
      t.ok(o.events.includes(`aborted:${phase}`), 'aborted');
      notLost(t, o);
      t.same(o.app.calls, calls);
      t.equal((await request(w.listener.port, 'PUT', '/w', '')).status, 200, 'writable');
    });
  }
  t.end();
});

t.test('an Abort S sends while the channel is open stays an Abort; an EOF with no Abort is a loss', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  const id = newHandoffId();
  await drained(o, id);
  o.s.ch.close();
  await o.app.waitLog('serving again');
  t.ok(o.events.includes('supervisor-lost:drained'), 'a bare EOF is S lost');
  t.ok(o.events.includes('aborted:drained'));
});
