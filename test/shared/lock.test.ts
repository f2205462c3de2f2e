import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DataDirLock,
  LockHeldError,
  checkLockTrace,
  clearLock,
  defaultStaleMs,
  isLockHeld,
  lockIntervals,
  lockOwner,
  parseLockTrace,
  readLockTrace,
  traceLockEvent,
} from '../../src/shared/lock.js';
import { within } from '../service/harness.js';

function tmp(t: Test): { dir: string; lockPath: string; trace: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-lock-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { dir, lockPath: path.join(dir, 'data.lock'), trace: path.join(dir, 'trace.jsonl') };
}

const ev = (pid: number, event: 'acquire' | 'release' | 'clear', t_ns: number, holder?: number): string =>
  JSON.stringify({ pid, event, t_ns: String(t_ns), ...(holder === undefined ? {} : { holder }) });

t.test('stale threshold stays well above the heartbeat timeout', (t) => {
  t.equal(defaultStaleMs(), 20_000);
  t.equal(defaultStaleMs(5_000), 20_000);
  t.equal(defaultStaleMs(10_000), 40_000);
  const l = new DataDirLock('/nonexistent/x.lock', { heartbeatTimeoutMs: 10_000 });
  t.equal(l.staleMs, 40_000);
  t.equal(l.updateMs, 10_000);
  t.end();
});

t.test('acquire, held elsewhere, release, and the trace', async (t) => {
  const p = tmp(t);
  const prev = process.env.HANDOFF_LOCK_TRACE;
  process.env.HANDOFF_LOCK_TRACE = p.trace;
  t.teardown(() => {
    if (prev === undefined) delete process.env.HANDOFF_LOCK_TRACE;
    else process.env.HANDOFF_LOCK_TRACE = prev;
  });
  const a = new DataDirLock(p.lockPath);
  const b = new DataDirLock(p.lockPath);
  t.notOk(isLockHeld(p.lockPath));
  await a.acquire();
  t.ok(a.held);
  t.ok(isLockHeld(p.lockPath), 'the lock directory exists');
  await t.rejects(a.acquire(), /already held by this process/);
  await t.rejects(b.acquire(), LockHeldError);
  t.equal(await b.acquireWithin(150, 50), false, 'bounded retry gives up');
  const retry = b.acquireWithin(5_000, 20);
  await a.release();
  t.notOk(a.held);
  t.equal(await retry, true, 'taken once released');
  await a.release(); // not held: a no-op
  await b.release();
  t.notOk(isLockHeld(p.lockPath));
  const events = readLockTrace(p.trace);
  t.same(
    events.map((e) => e.event),
    ['acquire', 'release', 'acquire', 'release'],
  );
  t.ok(events.every((e) => e.pid === process.pid));
  t.same(checkLockTrace(events), []);
});

t.test('clearLock removes a dead holder’s lock and records whose it was', (t) => {
  const p = tmp(t);
  fs.mkdirSync(p.lockPath);
  fs.writeFileSync(path.join(p.lockPath, 'owner'), JSON.stringify({ pid: 4242 }));
  traceLockEvent('acquire', undefined, { HANDOFF_LOCK_TRACE: p.trace });
  t.same(clearLock(p.lockPath, 4242, { HANDOFF_LOCK_TRACE: p.trace }), { cleared: true });
  t.notOk(isLockHeld(p.lockPath));
  const events = readLockTrace(p.trace);
  t.same(events[1], { pid: process.pid, event: 'clear', holder: 4242, t_ns: events[1]!.t_ns });
  t.same(clearLock(p.lockPath, 4242, {}), { cleared: false, why: 'free' }, 'already gone, and not traced: fine');
  t.equal(readLockTrace(p.trace).length, 2);
  t.end();
});

t.test('clearLock never removes a lock whose owner record names another process', async (t) => {
  const p = tmp(t);
  const l = new DataDirLock(p.lockPath);
  await l.acquire();
  t.same(lockOwner(p.lockPath), { pid: process.pid }, 'the holder recorded itself');
  t.same(clearLock(p.lockPath, 4242, { HANDOFF_LOCK_TRACE: p.trace }), { cleared: false, why: 'not-owner', holderPid: process.pid });
  t.ok(isLockHeld(p.lockPath), 'the live holder keeps its lock');
  t.same(readLockTrace(p.trace), [], 'nothing was cleared');
  const other = new DataDirLock(p.lockPath);
  const err = await other.acquire().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(err instanceof LockHeldError && err.holderPid === process.pid, 'a second taker is told who holds it');
  fs.rmSync(path.join(p.lockPath, 'owner'));
  t.same(clearLock(p.lockPath, 4242, {}), { cleared: false, why: 'not-owner', holderPid: undefined }, 'no record: not provably dead');
  fs.writeFileSync(path.join(p.lockPath, 'owner'), JSON.stringify({ pid: process.pid }));
  await l.release();
  t.notOk(isLockHeld(p.lockPath), 'release removes the directory with its owner record');
});

t.test('the owner record does not make the holder look compromised when it refreshes', async (t) => {
  const p = tmp(t);
  let compromised: Error | undefined;
  const l = new DataDirLock(p.lockPath, { staleMs: 2_000, updateMs: 1_000, onCompromised: (e) => (compromised = e) });
  await l.acquire();
  const mtime0 = fs.statSync(p.lockPath).mtimeMs;
  // Wait (on the file itself, not a sleep) until proper-lockfile has refreshed the mtime twice.
  let refreshes = 0;
  let last = mtime0;
  const until = Date.now() + 30_000;
  while (refreshes < 2 && Date.now() < until) {
    await new Promise((r) => setTimeout(r, 100));
    const m = fs.statSync(p.lockPath).mtimeMs;
    if (m !== last) {
      refreshes++;
      last = m;
    }
    if (compromised) break;
  }
  t.equal(refreshes, 2, 'proper-lockfile refreshed the lock twice');
  t.equal(compromised, undefined, 'still held after two refreshes');
  t.ok(l.held);
  await l.release();
});

t.test('a compromised lock calls onCompromised', async (t) => {
  const p = tmp(t);
  let resolve: (e: Error) => void = () => undefined;
  const compromised = new Promise<Error>((r) => (resolve = r));
  const l = new DataDirLock(p.lockPath, { staleMs: 2_000, updateMs: 1_000, onCompromised: (e) => resolve(e) });
  await l.acquire();
  fs.rmSync(p.lockPath, { recursive: true });
  // proper-lockfile's refresh timer is unref'd: keep the test process up while it runs.
  const alive = setInterval(() => undefined, 1_000);
  const err = await within(compromised, 10_000, 'onCompromised').finally(() => clearInterval(alive));
  t.match(err, { code: 'ECOMPROMISED' });
  t.notOk(l.held, 'no longer counted as held');
  await l.release();
});

t.test('checkLockTrace finds overlapping holders', (t) => {
  t.same(checkLockTrace([]), []);
  t.same(checkLockTrace([ev(1, 'acquire', 10), ev(1, 'release', 20), ev(2, 'acquire', 20), ev(2, 'release', 30)]), [], 'back to back is not an overlap');
  const o = checkLockTrace([ev(1, 'acquire', 10), ev(2, 'acquire', 15), ev(1, 'release', 20)]);
  t.equal(o.length, 1);
  t.equal(o[0]!.first.pid, 1);
  t.equal(o[0]!.second.pid, 2);
  // Lines out of file order are sorted by time.
  t.equal(checkLockTrace([ev(2, 'acquire', 15), ev(1, 'release', 20), ev(1, 'acquire', 10)]).length, 1);
  // A dead holder's interval ends at the clear naming it.
  t.same(checkLockTrace([ev(1, 'acquire', 10), ev(9, 'clear', 20, 1), ev(2, 'acquire', 30)]), []);
  t.equal(checkLockTrace([ev(1, 'acquire', 10), ev(9, 'clear', 20, 3), ev(2, 'acquire', 30)]).length, 1, 'a clear naming someone else ends nothing');
  // An interval still open at the end overlaps anything after it.
  const open = lockIntervals([ev(1, 'acquire', 10)]);
  t.same(open, [{ pid: 1, start: 10n, end: undefined, endedBy: 'open' }]);
  t.same(lockIntervals([ev(1, 'acquire', 10), ev(1, 'release', 12)]), [{ pid: 1, start: 10n, end: 12n, endedBy: 'release' }]);
  t.equal(checkLockTrace([ev(1, 'acquire', 10), ev(1, 'acquire', 11)]).length, 1, 'a double acquire is an overlap too');
  t.same(checkLockTrace(['', ev(1, 'acquire', 1), '  ']), [], 'blank lines are skipped');
  t.throws(() => parseLockTrace(['{"pid":1,"event":"steal","t_ns":"1"}']), /line 1 is malformed/);
  t.throws(() => parseLockTrace(['{"pid":1,"event":"clear","t_ns":"1"}']), /malformed/, 'a clear names its holder');
  t.same(readLockTrace('/nonexistent/trace'), [], 'no trace file is an empty trace');
  t.end();
});

t.test('tracing never throws, and is off without HANDOFF_LOCK_TRACE', (t) => {
  traceLockEvent('acquire', undefined, { HANDOFF_LOCK_TRACE: '/nonexistent/dir/trace' });
  traceLockEvent('acquire', undefined, {});
  t.pass();
  t.end();
});
