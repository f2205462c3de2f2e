/**
 * Every row of the failure table, with real processes: who serves afterwards, who holds the lock,
 * the recorded outcome, and that no child is left unreaped.
 */

import t, { type Test } from 'tap';
import path from 'node:path';
import { checkLockTrace } from '../../src/shared/lock.js';
import type { Supervisor } from '../../src/supervisor/supervisor.js';
import { childPids, info, isAlive, logLine, lockAcquirers, lockHolder, phaseEntered, readTrace, request, serving, upgrade, withSupervisor, ROOT, type Env } from './harness.js';

const RAW_PEER = path.join(ROOT, 'test/fixtures/raw-peer.mjs');

interface Ctx {
  env: Env;
  s: Supervisor;
  port: number;
  incumbentPid: number;
}

async function setup(t: Test, over: Parameters<typeof withSupervisor>[1] = {}, incumbentFault: string[] = []): Promise<Ctx> {
  const { env, s, port } = await withSupervisor(t, over, incumbentFault);
  const put = await request(port, 'PUT', '/kv/before', 'v-before');
  t.equal(put.status < 300, true, 'a write before the handoff is acknowledged');
  const { pid } = await info(port);
  return { env, s, port, incumbentPid: pid };
}

/** After a rollback: the incumbent serves with its lock, the write survived, nothing else runs, no overlap. */
async function assertRolledBack(t: Test, c: Ctx, successorPid: number | null): Promise<void> {
  await serving(c.s);
  t.equal((await info(c.port)).pid, c.incumbentPid, 'the incumbent still serves');
  t.equal((await request(c.port, 'GET', '/kv/before')).body, 'v-before', 'the acknowledged write is readable');
  t.equal((await request(c.port, 'PUT', '/kv/after', 'v-after')).status < 300, true, 'the incumbent accepts writes again');
  t.same(childPids(), [c.incumbentPid], 'no child left but the incumbent');
  if (successorPid) t.notOk(isAlive(successorPid), 'the successor was reaped');
  t.equal(lockHolder(c.env), c.incumbentPid, 'the incumbent holds the lock');
  t.same(checkLockTrace(readTrace(c.env)), [], 'the lock was never held by two processes');
}

async function assertRolledForward(t: Test, c: Ctx, successorPid: number): Promise<void> {
  await serving(c.s);
  t.equal((await info(c.port)).pid, successorPid, 'the successor serves');
  t.equal((await request(c.port, 'GET', '/kv/before')).body, 'v-before', 'the acknowledged write is readable');
  t.same(childPids(), [successorPid], 'the incumbent was reaped');
  t.notOk(isAlive(c.incumbentPid), 'the incumbent is gone');
  t.equal(lockHolder(c.env), successorPid, 'the successor holds the lock');
  t.same(checkLockTrace(readTrace(c.env)), [], 'the lock was never held by two processes');
}

t.test('before Begin', async (t) => {
  for (const [name, cmd, kind] of [
    ['the successor crashes before Hello', ['--fault', 'crash-before-hello'], 'successor_failed'],
    ['the successor sends Hello with a pid that is not its own', null, 'pid_mismatch'],
    ['the successor says Abort before Begin', null, 'successor_failed'],
    ['the successor sends a malformed frame', null, 'malformed_message'],
    ['the successor sends Ready before Begin', null, 'unexpected_message'],
    ['the successor names another handoff id', null, 'handoff_id_mismatch'],
    ['the successor never says Hello (deadline)', null, 'deadline_exceeded'],
  ] as const) {
    t.test(name, async (t) => {
      // A Ready "before Begin" must arrive before Begin: the incumbent is held in its drain so that
      // a fast seal on a busy machine cannot get S to Begin before the successor's Ready is read.
      const early = name === 'the successor sends Ready before Begin';
      const c = await setup(t, { helloTimeoutMs: 4_000, ...(early ? { drainGraceMs: 10_000 } : {}) }, early ? ['--fault', 'slow-drain'] : []);
      const script = { 'the successor sends Hello with a pid that is not its own': 'wrong-pid', 'the successor says Abort before Begin': 'abort-before-begin', 'the successor sends a malformed frame': 'garbage', 'the successor sends Ready before Begin': 'ready-before-begin', 'the successor names another handoff id': 'wrong-id', 'the successor never says Hello (deadline)': 'silent' }[name as string];
      const rec = cmd ? await upgrade(c.s, c.env, [...cmd]) : await c.s.upgrade({ command: process.execPath, args: [RAW_PEER, script ?? 'silent'] });
      t.equal(rec.outcome, 'aborted');
      t.equal(rec.reason_kind, kind, `reason ${rec.reason}`);
      t.same([...new Set(lockAcquirers(c.env))], [c.incumbentPid], 'the lock never moved to the successor (the incumbent may have released and retaken it)');
      await assertRolledBack(t, c, rec.successor_pid);
    });
  }
  t.end();
});

t.test('SealFailed: the incumbent keeps the lock and serves', async (t) => {
  const c = await setup(t, {}, ['--fault', 'seal-fail']);
  const rec = await upgrade(c.s, c.env);
  t.equal(rec.outcome, 'aborted');
  t.equal(rec.reason_kind, 'seal_failed');
  t.same([...new Set(lockAcquirers(c.env))], [c.incumbentPid], 'the lock never moved to the successor (the incumbent may have released and retaken it)');
  await assertRolledBack(t, c, rec.successor_pid);
});

t.test('the incumbent crashes before SealComplete: roll forward, revision check skipped', async (t) => {
  const c = await setup(t, {}, ['--fault', 'crash-in-seal']);
  const rec = await upgrade(c.s, c.env);
  t.equal(rec.outcome, 'committed', `reason ${rec.reason}`);
  t.equal(rec.rolled_forward, true);
  t.equal(rec.revisions_checked, false);
  await assertRolledForward(t, c, rec.successor_pid!);
});

t.test('the incumbent crashes after SealComplete: roll forward, revisions checked', async (t) => {
  const c = await setup(t, {}, ['--fault', 'crash-after-seal']);
  const rec = await upgrade(c.s, c.env);
  t.equal(rec.outcome, 'committed', `reason ${rec.reason}`);
  t.equal(rec.revisions_checked, true);
  await assertRolledForward(t, c, rec.successor_pid!);
});

t.test('after Begin', async (t) => {
  for (const [fault, kind] of [
    ['crash-on-begin', 'successor_failed'],
    ['abort-on-begin', 'successor_failed'],
    ['hang-on-begin', 'deadline_exceeded'],
    ['unhealthy', 'successor_unhealthy'],
    ['bad-revisions', 'revision_mismatch'],
  ] as const) {
    t.test(fault, async (t) => {
      const c = await setup(t, { deadlineMs: 4_000 });
      const rec = await upgrade(c.s, c.env, ['--fault', fault]);
      t.equal(rec.outcome, 'aborted');
      t.equal(rec.reason_kind, kind, `reason ${rec.reason}`);
      await assertRolledBack(t, c, rec.successor_pid);
    });
  }
  t.end();
});

t.test('the incumbent ignores Commit: SIGTERM, then SIGKILL', async (t) => {
  const c = await setup(t, { exitTimeoutMs: 500, killAfterMs: 500 }, ['--fault', 'ignore-commit']);
  const rec = await upgrade(c.s, c.env);
  t.equal(rec.outcome, 'committed');
  await assertRolledForward(t, c, rec.successor_pid!);
});

t.test('a silent peer is killed and handled as a crash', async (t) => {
  t.test('the successor stops (SIGSTOP) after Hello: abort', async (t) => {
    const c = await setup(t, { drainGraceMs: 10_000, deadlineMs: 20_000, heartbeatTimeoutMs: 2_000 }, ['--fault', 'slow-drain']);
    const p = upgrade(c.s, c.env);
    const e = await phaseEntered(c.s, 'drain');
    const successorPid = c.s.status().inflight?.successor_pid;
    t.ok(successorPid, `successor pid known at ${e.phase}`);
    process.kill(successorPid!, 'SIGSTOP');
    const rec = await p;
    t.equal(rec.outcome, 'aborted');
    t.equal(rec.reason_kind, 'heartbeat_timeout', `reason ${rec.reason}`);
    await assertRolledBack(t, c, successorPid!);
  });
  t.test('the incumbent stops (SIGSTOP) while draining: roll forward', async (t) => {
    const c = await setup(t, { drainGraceMs: 10_000, deadlineMs: 20_000, heartbeatTimeoutMs: 2_000 }, ['--fault', 'slow-drain']);
    const p = upgrade(c.s, c.env);
    await phaseEntered(c.s, 'drain');
    process.kill(c.incumbentPid, 'SIGSTOP');
    const rec = await p;
    t.equal(rec.outcome, 'committed', `reason ${rec.reason}`);
    t.equal(rec.rolled_forward, true);
    t.equal(rec.reason_kind, 'heartbeat_timeout');
    await assertRolledForward(t, c, rec.successor_pid!);
  });
  t.end();
});

t.test('after a violation S keeps running: the next handoff commits', async (t) => {
  const c = await setup(t);
  const bad = await c.s.upgrade({ command: process.execPath, args: [RAW_PEER, 'garbage'] });
  t.equal(bad.outcome, 'aborted');
  await serving(c.s);
  const good = await upgrade(c.s, c.env);
  t.equal(good.outcome, 'committed', `reason ${good.reason}`);
  await assertRolledForward(t, c, good.successor_pid!);
});

t.test('only one handoff at a time', async (t) => {
  const c = await setup(t, { deadlineMs: 3_000 });
  const first = upgrade(c.s, c.env, ['--fault', 'hang-on-begin']);
  await phaseEntered(c.s, 'begin');
  const second = await upgrade(c.s, c.env).then(
    () => 'accepted',
    (e: { kind?: string }) => e.kind,
  );
  t.equal(second, 'handoff_in_progress', 'a second request is refused');
  t.equal((await first).outcome, 'aborted');
});

t.test('operator abort during drain', async (t) => {
  const c = await setup(t, { drainGraceMs: 10_000 }, ['--fault', 'slow-drain']);
  const p = upgrade(c.s, c.env);
  await phaseEntered(c.s, 'drain');
  t.equal(c.s.abort('changed my mind'), true);
  const rec = await p;
  t.equal(rec.reason_kind, 'operator_abort');
  await assertRolledBack(t, c, rec.successor_pid);
  t.equal(c.s.abort('nothing in flight'), false);
});

t.test("an incumbent's Drained that crosses S's Abort is not held against it", async (t) => {
  const { env, s } = await withSupervisor(t, { listen: [], args: [path.join(ROOT, 'test/supervisor/fixtures/raw-incumbent.mjs')] });
  const incumbentPid = s.status().incumbent!.pid;
  const rec = await s.upgrade({ command: process.execPath, args: [RAW_PEER, 'abort-before-begin'] });
  t.equal(rec.outcome, 'aborted');
  await logLine(env, /late message of an ended handoff ignored/);
  t.equal(s.status().incumbent?.pid, incumbentPid, 'the same incumbent');
  t.ok(isAlive(incumbentPid), 'still alive');
  t.equal(s.status().incumbent_restarts, 0, 'not restarted');
  t.equal(s.state, 'serving');
});
