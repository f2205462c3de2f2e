/**
 * The fault matrix: a lock held by someone who is not S's child (a copy of the service started by
 * hand, a stale orphan of a killed S, a copy that grabs the lock mid-handoff), and an unhealthy
 * successor under load.
 *
 * What the design promises: S removes a lock only with proof that its holder is dead (a child of
 * its own that it reaped, whose lock it is); any other holder keeps its lock, whatever S does, so
 * there are never two writers. A cold start that meets such a lock fails with `lock_held` naming
 * the holder; a first cold start that never served gives up after the start limit (exit 1, one
 * line). A successor that is not healthy never accepts: no request is answered by a rejected build,
 * and none fails.
 */

import fs from 'node:fs';
import t, { type Test } from 'tap';
import { checkLockTrace, readLockTrace } from '../../src/shared/lock.js';
import { lockHolder } from '../supervisor/harness.js';
import {
  Figures,
  KILL_FLAGS,
  Load,
  checkInvariants,
  checkLoad,
  eventually,
  info,
  kvPids,
  killAndWait,
  makeCase,
  monoNs,
  nextHandoffCommits,
  running,
  serveCheck,
  settled,
  setBreaks,
  setup,
  signal,
  spawnS,
  startForeign,
  startS,
  status,
  stopped,
  runCase,
  until,
  upgrade,
  verifyAcks,
  waitKv,
  type Actors,
  type Case,
} from './harness.js';

const fig = new Figures();

/** The holder keeps its lock: it runs, the trace says it holds it, the directory is there, never two holders. */
function holderKeepsLock(t: Test, c: Case, holder: number): void {
  t.ok(running(holder), `the holder (pid ${holder}) still runs`);
  t.equal(lockHolder(c), holder, 'and still holds the lock');
  t.ok(fs.existsSync(c.lockPath), 'its lock directory is still there');
  t.same(
    checkLockTrace(readLockTrace(c.tracePath)).map((o) => `${o.first.pid} and ${o.second.pid}`),
    [],
    'never two holders of the lock',
  );
}

/** S gave up on a first cold start that never served: exit 1, one line naming lock_held and the holder. */
async function givesUpOnLock(t: Test, c: Case, holder: number): Promise<void> {
  const s = c.s;
  // Five cold starts; the bound is for a slow machine (five Node start-ups at load 16 took over 20 s).
  const ex = await s.exit(90_000);
  t.equal(ex?.code, 1, `S exits 1: its first cold start never served (${JSON.stringify(ex ?? 'still running after 90 s')})`);
  if (!ex) {
    s.proc.kill('SIGTERM');
    await s.exit(20_000);
    if (s.alive) s.proc.kill('SIGKILL');
    await s.exited;
  }
  const lines = s.plainLines();
  t.equal(lines.length, 1, `one line for the operator: ${JSON.stringify(lines)}`);
  t.match(lines[0] ?? '', /lock_held/, 'naming lock_held');
  t.match(lines[0] ?? '', new RegExp(`\\b${holder}\\b`), 'and the holder pid');
  const attempts = s.logs().filter((l) => l.msg === 'spawned' && l['role'] === 'cold-start').length;
  t.equal(attempts, 5, 'after 5 cold starts (the default start limit)');
}

await runCase(t, fig, 'a copy of the service started by hand holds the lock before S starts', async (t) => {
  const c = makeCase(t, 'foreign copy before S', KILL_FLAGS);
  const f = await startForeign(c);
  // The copy is used meanwhile: its writes are acknowledged and must survive everything after.
  const load = new Load(f.port, 'hand', { keepAlive: 1, fresh: 1 }).start();
  t.teardown(() => load.stop());
  await load.acked(5);
  spawnS(c, { port: 0 });
  await givesUpOnLock(t, c, f.proc.pid);
  holderKeepsLock(t, c, f.proc.pid);
  t.equal((await info(f.port))?.pid, f.proc.pid, 'the copy still serves');
  await load.stop();
  fig.requests += load.sent;
  checkLoad(t, load, 'no-failures', 'the copy’s load');
  t.same(kvPids(c).filter((p) => running(p) && p !== f.proc.pid), [], 'S left no process behind');

  // The operator stops the copy: now S starts and the copy's writes are all there.
  signal(f.proc.pid, 'SIGTERM');
  t.ok(await killAndWaitGone(f.proc.pid), 'the copy exits on SIGTERM');
  await startS(c, { port: 0 });
  const st = await settled(c);
  const a: Actors = { incumbentPid: 0, successorPid: undefined, handoffId: undefined, record: undefined };
  await serveCheck(t, c, a, { outcome: 'none', serves: 'other', load: 'no-failures' }, st?.incumbent?.pid);
  const bad = await verifyAcks(c.port, load.acks);
  fig.writes += load.acks.size;
  t.same(bad.slice(0, 5), [], `every write the copy acknowledged is there (${load.acks.size} checked, ${bad.length} missing)`);
  await nextHandoffCommits(t, c);
});

await runCase(t, fig, 'a stale orphan of a killed S holds the lock', async (t) => {
  const { c, load, incumbentPid } = await setup(t, 'stale orphan', KILL_FLAGS);
  const oldPort = c.port;
  t.ok(await killAndWait(c.s.pid), 'S killed at rest: its incumbent is an orphan');
  // A new S on another port (the orphan holds the old one) but the same lock.
  spawnS(c, { port: 0 });
  await givesUpOnLock(t, c, incumbentPid);
  holderKeepsLock(t, c, incumbentPid);
  t.equal((await info(oldPort))?.pid, incumbentPid, 'the orphan still serves');
  await load.stop();
  fig.requests += load.sent;
  checkLoad(t, load, 'no-failures');

  signal(incumbentPid, 'SIGTERM');
  t.ok(await killAndWaitGone(incumbentPid), 'the orphan exits on SIGTERM');
  await startS(c, { port: oldPort });
  const st = await settled(c);
  const a: Actors = { incumbentPid, successorPid: undefined, handoffId: undefined, record: undefined };
  await serveCheck(t, c, a, { outcome: 'none', serves: 'other', load: 'no-failures' }, st?.incumbent?.pid);
  const bad = await verifyAcks(c.port, load.acks);
  fig.writes += load.acks.size;
  t.same(bad.slice(0, 5), [], `every acknowledged write is there (${load.acks.size} checked, ${bad.length} missing)`);
  await nextHandoffCommits(t, c);
});

await runCase(t, fig, 'a copy started by hand takes the lock mid-handoff, after the incumbent let it go', async (t) => {
  const { c, load, incumbentPid } = await setup(t, 'foreign copy mid-handoff', KILL_FLAGS);
  setBreaks(c, ['v2 begin']);
  const up = upgrade(c, 'v2');
  const successorPid = await until('the successor stopped at begin', 60_000, () => {
    const p = kvPids(c).find((x) => x !== incumbentPid);
    return p !== undefined && stopped(p) ? p : undefined;
  });
  setBreaks(c, []);
  const f = await startForeign(c);
  signal(successorPid, 'SIGCONT');
  const rec = await up.result(60_000);
  t.equal(rec?.outcome, 'aborted', `the handoff aborts (${rec?.reason ?? up.error ?? 'no record'})`);
  t.equal(rec?.reason_kind, 'lock_held', 'because the lock is held');
  // The incumbent cannot retake the lock and leaves; S keeps trying cold starts (something has
  // served) and says why.
  const said = await eventually('status names lock_held and the holder', 20_000, async () => {
    const st = await status(c).catch(() => undefined);
    const lf = (st as unknown as { last_failure?: { reason?: string; reason_kind?: string } } | undefined)?.last_failure;
    return lf?.reason_kind === 'lock_held' && (lf.reason ?? '').includes(String(f.proc.pid));
  }, 100);
  t.ok(said, 'status.last_failure says lock_held, naming the holder pid');
  t.ok(c.s.alive, 'S keeps running (something has served)');
  holderKeepsLock(t, c, f.proc.pid);
  t.equal((await info(f.port))?.pid, f.proc.pid, 'the copy still serves on its own port');

  // The operator stops the copy: S's next cold start serves; the load only waited meanwhile.
  const stopAt = monoNs();
  signal(f.proc.pid, 'SIGTERM');
  t.ok(await killAndWaitGone(f.proc.pid), 'the copy exits on SIGTERM');
  const back = await waitKv(c, 'a new incumbent after the copy left', (e) => e.event === 'hello' && e.pid !== incumbentPid && e.pid !== successorPid && e.pid !== f.proc.pid && BigInt(e.t_ns) > stopAt, 30_000).catch(() => undefined);
  t.ok(back, 'S cold-starts an incumbent once the lock is free');
  const a: Actors = { incumbentPid, successorPid, handoffId: up.id, record: rec };
  await checkInvariants(t, c, load, a, { outcome: 'aborted', reasonKind: 'lock_held', serves: 'other', load: 'no-failures' }, fig, [f.proc.pid]);
});

await runCase(t, fig, 'an unhealthy successor under load: never answers, nothing fails', async (t) => {
  const { c, load, incumbentPid } = await setup(t, 'unhealthy successor', KILL_FLAGS, {}, { keepAlive: 4, fresh: 4, paceMs: 5 });
  const up = upgrade(c, 'v2-unhealthy', ['--fault', 'unhealthy']);
  const rec = await up.result(60_000);
  t.equal(rec?.outcome, 'aborted', `aborted (${rec?.reason ?? up.error ?? 'no record'})`);
  t.equal(rec?.reason_kind, 'successor_unhealthy');
  await load.acked(20);
  t.equal(load.byBuild.get('v2-unhealthy') ?? 0, 0, `no request answered by the rejected build (answers by build: ${JSON.stringify(Object.fromEntries(load.byBuild))})`);
  const a: Actors = { incumbentPid, successorPid: rec?.successor_pid ?? undefined, handoffId: up.id, record: rec };
  await checkInvariants(t, c, load, a, { outcome: 'aborted', reasonKind: 'successor_unhealthy', serves: 'incumbent', load: 'no-failures' }, fig);
});

async function killAndWaitGone(pid: number): Promise<boolean> {
  return eventually(`pid ${pid} gone`, 30_000, () => !running(pid), 25);
}
fig.comment(t, 'foreign lock holders and an unhealthy successor');
