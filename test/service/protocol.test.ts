/**
 * How the library answers a supervisor that breaks the protocol: wrong ids and out-of-place
 * messages end the channel (with Abort when a handoff id is known), and then the S-loss rules apply.
 */

import t from 'tap';
import fs from 'node:fs';
import { NIL_ID, encodeFrame, idEquals, newHandoffId } from '../../src/protocol/index.js';
import { Child, prepare, setup, type Ctx, info, lockHolder, request } from './harness.js';

function spawnKv(c: Ctx, role: 'cold-start' | 'successor', args: string[] = []): Child {
  const ch = new Child({ role, listener: c.listener, layout: c.layout, args });
  c.children.push(ch);
  return ch;
}

const closed = (ch: Child): Promise<unknown> => new Promise((resolve) => (ch.channel.closed ? resolve(undefined) : ch.channel.once('close', resolve)));

t.test('a wrong handoff id mid-handoff: Abort(handoff_id_mismatch), then the incumbent serves again', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start');
  await o.handshake(NIL_ID);
  const id = newHandoffId();
  await prepare(o, id, 1, 500);
  o.send({ type: 'SealRequest', handoff_id: newHandoffId() });
  const abort = await o.expect('Abort');
  t.ok(idEquals(abort.handoff_id, id), 'the Abort names the handoff in flight');
  t.match(abort.reason, /^handoff_id_mismatch: /);
  await closed(o);
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '1')).status, 201, 'the unsealed incumbent serves on');
  t.equal(lockHolder(c.layout), o.pid);
});

t.test('a message out of place: unexpected_message', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start');
  await o.handshake(NIL_ID);
  const id = newHandoffId();
  await prepare(o, id, 1, 500);
  o.send({ type: 'Commit', handoff_id: id });
  const abort = await o.expect('Abort');
  t.match(abort.reason, /^unexpected_message: Commit while drained/);
  await closed(o);
  t.equal((await info(c.listener.port)).pid, o.pid);
});

t.test('at rest, a message of the wrong direction closes the channel without Abort', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start');
  await o.handshake(NIL_ID);
  o.send({ type: 'Drained', open_conns_remaining: 0, accept_closed: true });
  await closed(o);
  t.equal((await info(c.listener.port)).pid, o.pid, 'still serving');
});

t.test('an Abort for a handoff the incumbent never heard of is ignored', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start');
  await o.handshake(NIL_ID);
  o.send({ type: 'Abort', handoff_id: newHandoffId(), reason: 'successor_failed: early' });
  const id = newHandoffId();
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 100n });
  t.equal((await o.expect('Drained')).accept_closed, true, 'the channel is still in order');
});

t.test('HelloAck with a version outside our range: version_mismatch', async (t) => {
  const c = await setup(t);
  const n = spawnKv(c, 'successor');
  await n.expect('Hello');
  // Written raw: our own Channel would refuse to frame it with a header that is not 1.
  (n.proc.stdio[4] as import('node:net').Socket).write(encodeFrame({ type: 'HelloAck', proto_version_chosen: 2, handoff_id: newHandoffId() }, 2));
  await closed(n);
  t.equal((await n.waitExit()).code, 1, 'a successor without S exits');
  await n.waitLog((l) => typeof l.reason === 'string' && l.reason.startsWith('version_mismatch: HelloAck chose version 2'));
});

t.test('a successor acknowledged with the nil id fails the channel and exits', async (t) => {
  const c = await setup(t);
  const n = spawnKv(c, 'successor');
  await n.handshake(NIL_ID);
  await closed(n);
  t.equal((await n.waitExit()).code, 1);
});

t.test('a successor told Abort before Begin exits quietly without touching the lock', async (t) => {
  const c = await setup(t);
  const n = spawnKv(c, 'successor');
  const id = newHandoffId();
  await n.handshake(id);
  n.send({ type: 'Abort', handoff_id: id, reason: 'operator_abort: test' });
  t.equal((await n.waitExit()).code, 0);
  t.equal(lockHolder(c.layout), null);
});

t.test('Begin with another id: Abort(handoff_id_mismatch) and exit', async (t) => {
  const c = await setup(t);
  const n = spawnKv(c, 'successor');
  const id = newHandoffId();
  await n.handshake(id);
  n.send({ type: 'Begin', handoff_id: newHandoffId() });
  const abort = await n.expect('Abort');
  t.ok(idEquals(abort.handoff_id, id));
  t.match(abort.reason, /^handoff_id_mismatch: /);
  t.equal((await n.waitExit()).code, 1);
  t.equal(lockHolder(c.layout), null, 'the lock was never taken');
});

t.test('Begin to an incumbent: unexpected_message', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start');
  await o.handshake(NIL_ID);
  const id = newHandoffId();
  await prepare(o, id, 1, 100);
  o.send({ type: 'Begin', handoff_id: id });
  const abort = await o.expect('Abort');
  t.match(abort.reason, /^unexpected_message: Begin while drained/);
});

t.test('successor faults', async (t) => {
  for (const [fault, kind, code] of [
    ['abort-on-begin', /^successor_failed: fault injection: abort-on-begin$/, 1],
    ['open-fail', /^successor_failed: fault injection: open-fail$/, 1],
  ] as const) {
    t.test(fault, async (t) => {
      const c = await setup(t);
      const n = spawnKv(c, 'successor', ['--fault', fault]);
      const id = newHandoffId();
      await n.handshake(id);
      n.send({ type: 'Begin', handoff_id: id });
      const abort = await n.expect('Abort');
      t.match(abort.reason, kind);
      t.equal((await n.waitExit()).code, code);
    });
  }
  t.test('unhealthy and bad-revisions are reported as they are', async (t) => {
    const c = await setup(t);
    const n = spawnKv(c, 'successor', ['--fault', 'unhealthy', '--fault', 'bad-revisions']);
    const id = newHandoffId();
    await n.handshake(id);
    n.send({ type: 'Begin', handoff_id: id });
    const ready = await n.expect('Ready');
    t.equal(ready.healthz_ok, false);
    t.same(ready.advertised_revision_per_shard, [1n, 0n, 0n, 0n]);
  });
  t.test('crash-on-begin', async (t) => {
    const c = await setup(t);
    const n = spawnKv(c, 'successor', ['--fault', 'crash-on-begin']);
    const id = newHandoffId();
    await n.handshake(id);
    n.send({ type: 'Begin', handoff_id: id });
    t.equal((await n.waitExit()).code, 1);
  });
  t.test('crash-before-hello', async (t) => {
    const c = await setup(t);
    const n = spawnKv(c, 'successor', ['--fault', 'crash-before-hello']);
    t.equal((await n.waitExit()).code, 1);
  });
  t.end();
});

t.test('incumbent faults', async (t) => {
  t.test('crash-in-seal leaves the lock behind (SIGKILL)', async (t) => {
    const c = await setup(t);
    const o = spawnKv(c, 'cold-start', ['--fault', 'crash-in-seal']);
    await o.handshake(NIL_ID);
    const id = newHandoffId();
    await prepare(o, id, 1, 100);
    o.send({ type: 'SealRequest', handoff_id: id });
    t.same(await o.waitExit(), { code: null, signal: 'SIGKILL' });
    t.ok(fs.existsSync(c.layout.lockPath), 'the lock directory stays for S to clear');
  });
  t.test('crash-after-seal exits once SealComplete is out', async (t) => {
    const c = await setup(t);
    const o = spawnKv(c, 'cold-start', ['--fault', 'crash-after-seal']);
    await o.handshake(NIL_ID);
    const id = newHandoffId();
    await prepare(o, id, 1, 100);
    const m = await o.seal(id);
    t.equal(m.type, 'SealComplete');
    t.equal((await o.waitExit()).code, 1);
    t.notOk(fs.existsSync(c.layout.lockPath));
  });
  t.test('ignore-commit does not exit on Commit; SIGTERM then SIGKILL does', async (t) => {
    const c = await setup(t);
    const o = spawnKv(c, 'cold-start', ['--fault', 'ignore-commit']);
    await o.handshake(NIL_ID);
    const id = newHandoffId();
    await prepare(o, id, 1, 100);
    await o.seal(id);
    o.send({ type: 'Commit', handoff_id: id });
    await o.waitLog((l) => l.msg === 'committed: closing and exiting');
    t.ok(o.alive, 'still alive after Commit');
    o.proc.kill('SIGKILL');
    t.same(await o.waitExit(), { code: null, signal: 'SIGKILL' });
  });
  t.end();
});

t.test('SIGTERM at rest: drain, close, release, exit 0', async (t) => {
  const c = await setup(t);
  const o = spawnKv(c, 'cold-start');
  await o.handshake(NIL_ID);
  t.equal((await request(c.listener.port, 'PUT', '/kv/a', '1')).status, 201);
  o.proc.kill('SIGTERM');
  t.same(await o.waitExit(), { code: 0, signal: null });
  t.equal(lockHolder(c.layout), null);
  t.notOk(fs.existsSync(c.layout.lockPath));
});
