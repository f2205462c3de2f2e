/**
 * Issue 8's findings, each with the behaviour a user sees, against a real Supervisor and real kv
 * processes: a lock held by someone else is never deleted; a hung incumbent at rest is replaced;
 * upgrades stick (cold restarts, plain upgrades, S restarts); setup mistakes end instead of
 * looping; a stalled S blames nobody; the smaller items (journal kept on a failed start, reasons,
 * an immediate restart after a successor dies past Commit).
 */

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { checkLockTrace, lockOwner } from '../../src/shared/lock.js';
import { StartLimitError, Supervisor } from '../../src/supervisor/supervisor.js';
import { ConfigReloadError, isRestartRecord, type HandoffRecord, type RestartRecord, type SupervisorOptions } from '../../src/supervisor/types.js';
import pino from 'pino';
import { procState } from '../lib/proc.js';
import { childPids, cleanup, info, isAlive, kvArgs, lockHolder, makeEnv, nextEvent, phaseEntered, readTrace, request, serving, startSupervisor, supervisorOptions, upgrade, withSupervisor } from './harness.js';

const handoffs = (s: Supervisor): HandoffRecord[] => s.history().filter((r): r is HandoffRecord => !isRestartRecord(r));
const restarts = (s: Supervisor): RestartRecord[] => s.history().filter(isRestartRecord);

/** A process outside S that takes the data-dir lock, as a copy of the service started by hand would. */
async function foreignHolder(lockPath: string): Promise<{ pid: number; stop: () => Promise<void> }> {
  const lockModule = path.resolve('dist/src/shared/lock.js');
  const code = `import('${lockModule}').then(async ({ DataDirLock }) => { const l = new DataDirLock(${JSON.stringify(lockPath)}); await l.acquire(); process.stdout.write('held\\n'); process.stdin.resume(); process.stdin.on('end', () => process.exit(0)); })`;
  const p = spawn(process.execPath, ['-e', code], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });
  await new Promise<void>((resolve, reject) => {
    p.stdout.once('data', () => resolve());
    p.once('exit', (c) => reject(new Error(`foreign holder exited with ${c}`)));
  });
  return {
    pid: p.pid ?? 0,
    stop: async () => {
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGKILL');
      await gone;
    },
  };
}

t.test('item 1: a lock held by a live process that is not S’s child is never deleted', async (t) => {
  const env = makeEnv();
  t.teardown(() => cleanup(env));
  const holder = await foreignHolder(env.lockPath);
  t.teardown(holder.stop);
  const log = pino({ level: 'debug' }, pino.destination({ dest: env.logPath, sync: true }));
  const s = new Supervisor(supervisorOptions(env, { startLimit: 3 }), log);
  const err = await s.start().then(
    () => undefined,
    (e: unknown) => e,
  );
  s.kill();
  t.ok(err instanceof StartLimitError, 'S gives up after the start limit instead of looping');
  t.match((err as Error).message, new RegExp(`lock_held: .*held by pid ${holder.pid}`), 'the reason names the holder');
  t.equal(s.status().last_failure?.reason_kind, 'lock_held');
  t.same(lockOwner(env.lockPath), { pid: holder.pid }, 'the foreign holder still has its lock');
  t.ok(isAlive(holder.pid), 'and still runs');
  t.notOk(readTrace(env).some((l) => l.includes('"clear"')), 'S never cleared it');
  t.equal(restarts(s).length, 2, 'two restarts recorded before the third failure ended it');
  t.match(restarts(s)[0]?.stderr_tail.join('\n') ?? '', /cannot take the data-dir lock/, 'the child’s own words are in the record');
});

t.test('item 4: an incumbent hung at rest is killed, its lock cleared, and a fresh one serves', async (t) => {
  const { env, s, port } = await withSupervisor(t);
  t.equal((await request(port, 'PUT', '/kv/k', 'v')).status < 300, true);
  const hung = (await info(port)).pid;
  const restarted = nextEvent(s, 'restart');
  process.kill(hung, 'SIGSTOP');
  const [r] = await restarted;
  t.match(r.reason, /^incumbent_hung: /, 'the restart says why');
  await serving(s);
  const fresh = (await info(port)).pid;
  t.not(fresh, hung, 'a fresh incumbent serves');
  t.notOk(isAlive(hung), 'the hung one was killed and reaped');
  t.equal((await request(port, 'GET', '/kv/k')).body, 'v', 'the acknowledged write survived');
  t.equal(lockHolder(env), fresh, 'the fresh incumbent holds the lock');
  t.same(checkLockTrace(readTrace(env)), [], 'never two holders');
  t.equal(s.status().last_failure?.reason_kind, 'incumbent_hung');
  t.equal(s.metrics().incumbentFailures.incumbent_hung, 1);
  t.equal(restarts(s).at(-1)?.reason_kind, 'incumbent_hung', 'the history records it');
  t.equal((await upgrade(s, env)).outcome, 'committed', 'the next handoff commits');
});

t.test('item 5: the command that last committed serves after a crash, a plain upgrade and an S restart', async (t) => {
  const env = makeEnv();
  t.teardown(() => cleanup(env));
  let s = await startSupervisor(env, {}, ['--build-id', 'v1']);
  t.teardown(() => s.stop());
  const port = () => Number(/:(\d+)$/.exec(s.status().listeners[0]?.address ?? '')?.[1]);
  t.equal((await upgrade(s, env, ['--build-id', 'v2'])).build_id, 'v2', 'upgraded to v2');
  t.equal(s.status().incumbent?.build_id, 'v2');
  t.same(s.status().incumbent?.command, [process.execPath, ...kvArgs(env, ['--build-id', 'v2'])], 'status shows the serving command');

  const restarted = nextEvent(s, 'restart');
  process.kill((await info(port())).pid, 'SIGKILL');
  await restarted;
  await serving(s);
  t.equal((await info(port())).build_id, 'v2', 'a cold restart after a crash runs v2, not the configured v1');

  const plain = await s.upgrade({});
  t.equal(plain.outcome, 'committed');
  t.equal(plain.build_id, 'v2', 'a plain upgrade re-runs v2');

  await s.stop();
  s = await startSupervisor(env, {}, ['--build-id', 'v1']);
  t.equal(s.status().incumbent?.build_id, 'v2', 'a restarted S cold-starts v2 from its state directory');
  t.equal((await info(port())).build_id, 'v2');

  // The configuration changed (an operator edited it): that takes over, and sticks in turn.
  s.opts = { ...s.opts, reload: () => ({ command: process.execPath, args: kvArgs(env, ['--build-id', 'v3']), allowExec: [] }) };
  const v3 = await s.upgrade({});
  t.equal(v3.build_id, 'v3', 'a reload with a new configured command upgrades to it');
  s.opts = { ...s.opts, reload: () => { throw new ConfigReloadError('configuration not reloaded: config file x is not valid JSON'); } };
  await t.rejects(s.upgrade({}), ConfigReloadError, 'an invalid configuration refuses the upgrade');
  t.equal(s.status().incumbent?.build_id, 'v3', 'and nothing changed');
  t.equal(s.status().state, 'serving');
});

t.test('item 6: a setup mistake ends the start with the reason instead of looping', async (t) => {
  const cases: Array<[string, Partial<SupervisorOptions>, string[], RegExp]> = [
    ['a missing program', { command: '/nonexistent/program', args: [] }, [], /could not start \(ENOENT\)/],
    ['a bad flag', {}, ['--no-such-flag'], /cold start exited with code 2 before Hello/],
    ['a throwing open()', {}, ['--fault', 'open-fail'], /cold start exited with code 1 before Hello/],
    ['no listener for a service that needs one', { listen: [] }, [], /cold start exited with code 1 before Hello/],
  ];
  for (const [name, over, extra, re] of cases) {
    t.test(name, async (t) => {
      const env = makeEnv();
      t.teardown(() => cleanup(env));
      const log = pino({ level: 'debug' }, pino.destination({ dest: env.logPath, sync: true }));
      const s = new Supervisor(supervisorOptions(env, { startLimit: 3, ...over }, [...extra]), log);
      const err = await s.start().then(
        () => undefined,
        (e: unknown) => e,
      );
      s.kill();
      t.ok(err instanceof StartLimitError, `gives up: ${String(err)}`);
      t.match((err as Error).message, re);
      t.equal(s.status().last_failure?.consecutive, 3);
      if (name !== 'a missing program') t.ok((s.status().last_failure?.stderr_tail.length ?? 0) > 0, 'the child’s stderr tail is kept');
      t.notOk((s.status().last_failure?.stderr_tail ?? []).some((l) => /^\s+at /.test(l)), 'without stack frames');
      t.same(childPids(), [], 'no child left');
    });
  }
  t.end();
});

t.test('item 6: once something served, failures keep restarting and carry their reason', async (t) => {
  const { env, s, port } = await withSupervisor(t);
  const rec = await upgrade(s, env, ['--no-such-flag']);
  t.equal(rec.outcome, 'aborted');
  t.match(rec.successor_exit ?? '', /exited with code 2/, 'a successor that died before Hello: its exit');
  t.match((rec.successor_stderr ?? []).join('\n'), /no-such-flag|unknown option/i, 'and its stderr tail');
  t.equal((await info(port)).build_id, 'kv-dev', 'the incumbent still serves');
});

t.test('item 8: a supervisor start that fails keeps the journal for the next one', async (t) => {
  const env = makeEnv();
  t.teardown(() => cleanup(env));
  fs.mkdirSync(env.stateDir, { recursive: true });
  const journal = { handoff_id: '00000000-0000-4000-8000-000000000001', phase: 'seal', incumbent_pid: 1, successor_pid: 2, started_at: new Date().toISOString(), command: ['x'], supervisor_pid: 999999 };
  fs.writeFileSync(path.join(env.stateDir, 'inflight.json'), JSON.stringify(journal));
  const busy = net.createServer();
  await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
  t.teardown(() => busy.close());
  const { port } = busy.address() as net.AddressInfo;
  const log = pino({ level: 'debug' }, pino.destination({ dest: env.logPath, sync: true }));
  const failing = new Supervisor(supervisorOptions(env, { listen: [`http=tcp://127.0.0.1:${port}`] }), log);
  await t.rejects(failing.start(), /address|EADDRINUSE|in use/i, 'the address is in use');
  failing.kill();
  t.ok(fs.existsSync(path.join(env.stateDir, 'inflight.json')), 'the journal is still there');
  const s = await startSupervisor(env);
  t.teardown(() => s.stop());
  t.equal(s.status().recovered?.handoff_id, journal.handoff_id, 'the next start reports the interrupted handoff');
  t.equal(handoffs(s).at(-1)?.outcome, 'interrupted');
});

t.test('item 8: an incumbent dying during begin is recorded with its reason', async (t) => {
  const { env, s } = await withSupervisor(t);
  const begin = phaseEntered(s, 'begin');
  const p = upgrade(s, env, ['--fault', 'slow-open', '--fault-ms', '1500']);
  await begin;
  // The incumbent is the process that is not the successor among S's children.
  const succ = s.status().inflight?.successor_pid;
  const inc = childPids().find((pid) => pid !== succ);
  if (inc) process.kill(inc, 'SIGKILL');
  const rec = await p;
  t.equal(rec.outcome, 'committed');
  t.match(rec.reason ?? '', /^incumbent_failed: incumbent killed by SIGKILL in phase begin/, 'the record says what happened');
});

t.test('item 8: a successor killed just after Commit is replaced at once', async (t) => {
  const { env, s, port } = await withSupervisor(t);
  t.equal((await request(port, 'PUT', '/kv/k', 'v')).status < 300, true);
  const commit = phaseEntered(s, 'commit');
  const p = upgrade(s, env);
  await commit;
  const succ = s.status().inflight?.successor_pid ?? 0;
  const restarted = nextEvent(s, 'restart');
  process.kill(succ, 'SIGKILL');
  const [r] = await restarted;
  t.equal(r.delayMs, 0, 'no backoff: a fresh incumbent starts at once');
  const rec = await p;
  t.equal(rec.outcome, 'committed');
  await serving(s);
  t.equal((await request(port, 'GET', '/kv/k')).body, 'v', 'the acknowledged write survived');
  t.same(checkLockTrace(readTrace(env)), [], 'never two holders');
});


t.test('item 3: a supervisor stall at rest and mid-handoff blames nobody', async (t) => {
  const { env, s, port } = await withSupervisor(t);
  const o = (await info(port)).pid;
  const stall = (ms: number): void => void Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
  stall(3_000);
  // S runs again: whatever it judges, it judges now; a handoff afterwards shows it kept the incumbent.
  const drain = phaseEntered(s, 'drain');
  const p = upgrade(s, env, ['--fault', 'slow-open', '--fault-ms', '500']);
  const early = await Promise.race([drain.then(() => undefined), p]);
  t.equal(early, undefined, `the handoff reached drain (it ended first: ${JSON.stringify(early)})`);
  t.equal(s.status().last_failure, null, 'the incumbent was not taken down at rest');
  t.equal(restarts(s).length, 0, 'no restart');
  stall(3_000); // mid-handoff: the incumbent drains and waits for SealRequest while S is not running
  const rec = await p;
  // The incumbent cannot tell a stopped S from a dead one: past its heartbeat timeout it calls the
  // handoff off itself and serves on. Either way S killed nobody for the time it did not run.
  if (rec.outcome === 'aborted') {
    // Both parties judged S's silence while it was stopped; whose Abort S reads first is the order
    // of two sockets in one poll: either is right, as long as the incumbent serves on.
    t.match(rec.reason ?? '', /^heartbeat_timeout: /, 'called off on S’s silence (by the incumbent or the successor)');
    t.equal((await info(port)).pid, o, 'the incumbent still serves');
  } else {
    t.equal(rec.outcome, 'committed');
    t.equal(rec.reason, undefined, 'with nothing gone wrong on the way');
  }
  t.equal(rec.rolled_forward, false, 'S did not kill the incumbent');
  t.notMatch(rec.reason ?? '', /killed/, 'no process was killed');
  t.equal(s.status().last_failure, null, 'no failure at all');
  await serving(s);
  t.same(checkLockTrace(readTrace(env)), [], 'never two holders');
  const next = await upgrade(s, env);
  t.equal(next.outcome, 'committed', 'the next handoff commits');
});

t.test('a Ready sent just before the successor died counts, even when S ran again only after a heartbeat fell due', async (t) => {
  // The successor sends Ready and kills itself (crash-after-ready) while S's loop is blocked. When S
  // runs again, its heartbeat is due: a Heartbeat written to the dead successor fails with EPIPE, and
  // a failed write destroys the socket with the Ready still unread. S must read first, then write.
  const { env, s, port } = await withSupervisor(t, { heartbeatMs: 100 });
  t.equal((await request(port, 'PUT', '/kv/k', 'v')).status < 300, true);
  const begin = phaseEntered(s, 'begin');
  const p = upgrade(s, env, ['--fault', 'crash-after-ready']);
  await begin;
  const succ = s.status().inflight?.successor_pid ?? 0;
  t.ok(succ > 0, 'the successor is known');
  // Block S's loop (this process) until the successor is dead and a heartbeat is overdue: an event
  // (its death) ends the block, bounded so that a stuck successor cannot hang the test.
  const dead = (): boolean => (procState(succ) ?? 'Z') === 'Z'; // a zombie: S cannot reap it while blocked
  const start = performance.now();
  while ((!dead() || performance.now() - start < 300) && performance.now() - start < 30_000);
  t.ok(dead(), 'the successor died while S was not running');
  const rec = await p;
  t.equal(rec.outcome, 'committed', `the Ready it sent before dying counted (${rec.reason ?? 'no reason'})`);
  await serving(s);
  t.equal((await request(port, 'GET', '/kv/k')).body, 'v', 'the acknowledged write survived');
  t.same(checkLockTrace(readTrace(env)), [], 'never two holders');
});
