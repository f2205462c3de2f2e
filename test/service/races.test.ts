/**
 * Races between an Abort, a stop, and the steps already under way: whichever ends the process
 * owns the ending. Never accept again on the way out (a connection taken then would be reset),
 * never keep a lock the stop already let go.
 */

import t from 'tap';
import fs from 'node:fs';
import { newHandoffId } from '../../src/protocol/index.js';
import { DataDirLock, isLockHeld } from '../../src/shared/lock.js';
import type { Acceptor } from '../../src/service/index.js';
import { within } from './harness.js';
import { drained, incumbent, sealed, spawnSvc, world } from './inproc.js';

t.test('a stop while resuming from an Abort: accept is not reopened, the stop ends it', async (t) => {
  const w = await world(t);
  let endDrain: () => void = () => undefined;
  const stopDraining = new Promise<void>((r) => (endDrain = r));
  let stopDrainStarted: () => void = () => undefined;
  const inStopDrain = new Promise<void>((r) => (stopDrainStarted = r));
  let drains = 0;
  const o = await incumbent(t, w, {
    // The handoff's drain ends at once; the stop's waits for the test.
    drain: async () => {
      if (++drains === 1) return 0;
      stopDrainStarted();
      await stopDraining;
      return 0;
    },
    undrain: () => undefined,
  });
  o.app.fail.seal = new Error('nope');
  const id = newHandoffId();
  await drained(o, id);
  o.s.send({ type: 'SealRequest', handoff_id: id });
  await o.s.expect('SealFailed');
  const resumed = o.app.gate('resume');
  o.s.send({ type: 'Abort', handoff_id: id, reason: 'seal_failed: test' });
  await o.app.waitLog('handoff called off');
  t.equal(o.svc.phase, 'resuming');
  const stopped = o.svc.stop();
  await within(inStopDrain, 5_000, 'the stop’s drain');
  const before = o.events.length;
  resumed();
  await o.app.waitLog('a stop came while resuming; not serving again');
  t.equal(o.svc.phase, 'stopping');
  t.same(o.events.slice(before), [], 'no accept reopened, no resumed');
  endDrain();
  await stopped;
  t.equal(o.app.exitCode, 0);
  t.notOk(isLockHeld(w.lockPath));
});

t.test('a stop while retaking the lock after SealComplete: a lock taken late is let go', async (t) => {
  const w = await world(t);
  const o = await incumbent(t, w);
  const id = newHandoffId();
  await sealed(o, id);
  const n = new DataDirLock(w.lockPath);
  await n.acquire();
  o.s.send({ type: 'ResumeAfterAbort', handoff_id: id });
  await o.app.waitLog('handoff called off');
  await o.svc.stop();
  t.equal(o.app.exitCode, 0);
  await n.release();
  await o.app.waitLog('a stop came while resuming; not serving again');
  // The release is asynchronous: wait for its own line, not the decision's.
  await o.app.waitLog('a lock retaken after the stop was let go');
  t.notOk(isLockHeld(w.lockPath), 'not kept by a process that stopped');
  t.same(o.app.calls, ['open', 'seal', 'close'], 'no resume after close');
});

t.test('an Abort while a successor’s accept is opening: the server is stopped once it listens', async (t) => {
  const w = await world(t);
  let open: () => void = () => undefined;
  const opening = new Promise<void>((r) => (open = r));
  let started: () => void = () => undefined;
  const inStart = new Promise<void>((r) => (started = r));
  let stopped: () => void = () => undefined;
  const stop = new Promise<void>((r) => (stopped = r));
  let fd: number | undefined;
  const acceptor: Acceptor = {
    start: async (f) => {
      fd = f;
      started();
      await opening;
    },
    stop: () => {
      if (fd !== undefined) fs.closeSync(fd);
      stopped();
    },
  };
  const n = await spawnSvc(t, w, 'successor', { servers: { http: acceptor } });
  const id = newHandoffId();
  await n.s.handshake(id);
  n.s.send({ type: 'Begin', handoff_id: id });
  await within(inStart, 5_000, 'accept opening');
  n.s.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: test' });
  t.equal(await n.app.waitExit(), 0);
  open();
  await within(stop, 5_000, 'the acceptor stopped');
  t.notOk(n.events.includes('ready'));
});
