/**
 * WatchdogSec=: the real `handoff run` pings WATCHDOG=1 on a real notify socket at half of
 * WATCHDOG_USEC while its event loop turns, stops when it is stopped, resumes when it runs again,
 * and does not care how its children are doing.
 */

import path from 'node:path';
import t from 'tap';
import { loadUnixDgram } from '../../src/supervisor/notify.js';
import { startWatchdog, watchdogSetting } from '../../src/supervisor/watchdog.js';
import { BIN, KV_MAIN, cleanEnv, environOf, isStopped, launch, logLines, notBuilt, notifySocket, tmpDir, until, within, STEP_MS } from './harness.js';

const noUnixDgram = loadUnixDgram() ? false : 'the optional dependency unix-dgram is not built here (it binds the notify socket)';

t.test('WATCHDOG_USEC and WATCHDOG_PID are read as sd_watchdog_enabled(3) reads them', async (t) => {
  const me = 4242;
  t.same(watchdogSetting({}, me), { off: 'unset' });
  t.same(watchdogSetting({ WATCHDOG_USEC: '' }, me), { off: 'unset' });
  t.same(watchdogSetting({ WATCHDOG_USEC: '30000000' }, me), { usec: 30_000_000n }, 'no WATCHDOG_PID: meant for whoever reads it');
  t.same(watchdogSetting({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '4242' }, me), { usec: 30_000_000n });
  t.same(watchdogSetting({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '4243' }, me), { off: 'other-pid' }, 'meant for another process');
  t.same(watchdogSetting({ WATCHDOG_USEC: '0' }, me), { invalid: 'WATCHDOG_USEC=0' });
  t.same(watchdogSetting({ WATCHDOG_USEC: '30s' }, me), { invalid: 'WATCHDOG_USEC=30s' });
  t.same(watchdogSetting({ WATCHDOG_USEC: '-1' }, me), { invalid: 'WATCHDOG_USEC=-1' });
  t.same(watchdogSetting({ WATCHDOG_USEC: '1000', WATCHDOG_PID: 'x' }, me), { invalid: 'WATCHDOG_PID=x' });
});

t.test('startWatchdog: half the interval, a first ping at once, and the variables kept from children', async (t) => {
  let pings = 0;
  const target = { transport: 'unix-dgram', watchdog: () => void pings++ };
  const env: NodeJS.ProcessEnv = { WATCHDOG_USEC: '30000000', WATCHDOG_PID: '77', OTHER: 'x' };
  const w = startWatchdog(env, target, { pid: 77 });
  t.teardown(() => w.stop());
  t.equal(w.intervalMs, 15_000, 'pings at half of WatchdogSec=30s');
  t.equal(pings, 1, 'the first ping goes at once');
  t.same(env, { OTHER: 'x' }, 'WATCHDOG_USEC and WATCHDOG_PID are removed');

  const other: NodeJS.ProcessEnv = { WATCHDOG_USEC: '30000000', WATCHDOG_PID: '78' };
  t.equal(startWatchdog(other, target, { pid: 77 }).intervalMs, null, 'another pid: off');
  t.same(other, {}, '... and still removed');
  const kept: NodeJS.ProcessEnv = { WATCHDOG_USEC: '1000000' };
  const w2 = startWatchdog(kept, target, { pid: 77, unsetEnvironment: false });
  t.teardown(() => w2.stop());
  t.same(kept, { WATCHDOG_USEC: '1000000' });
  t.equal(startWatchdog({ WATCHDOG_USEC: '1000000' }, { transport: 'none', watchdog: () => t.fail('pinged nowhere') }).intervalMs, null, 'no NOTIFY_SOCKET: off');
  t.equal(startWatchdog({ WATCHDOG_USEC: 'nope' }, target).intervalMs, null, 'unparsable: off');
  t.equal(pings, 2, 'only the enabled ones pinged');
});

t.test('handoff run pings while its loop turns, not while it is stopped, and again once it runs', { skip: noUnixDgram }, async (t) => {
  const missing = notBuilt();
  if (missing) return void t.fail(missing);
  const dir = tmpDir(t);
  const notify = notifySocket(t, dir);
  const WATCHDOG_USEC = 400_000;
  const INTERVAL_MS = WATCHDOG_USEC / 2000;
  // `exec` keeps the shell's pid, so WATCHDOG_PID=$$ names S, as systemd's does.
  const s = launch(
    t,
    '/bin/sh',
    [
      '-c', 'WATCHDOG_PID=$$ exec "$@"', 'sh',
      process.execPath, BIN, 'run', '--state-dir', path.join(dir, 'state'), '--admin-socket', path.join(dir, 'admin.sock'),
      '--lock', path.join(dir, 'lock'), '--listen', 'http=tcp://127.0.0.1:0', '--heartbeat-timeout', '120s',
      '--', process.execPath, KV_MAIN, '--data', path.join(dir, 'data'),
    ],
    { cwd: dir, env: cleanEnv({ NOTIFY_SOCKET: notify.path, WATCHDOG_USEC: String(WATCHDOG_USEC) }) },
  );
  const pings = (from: number, to = notify.list.length): number => notify.list.slice(from, to).filter((d) => d === 'WATCHDOG=1').length;

  await notify.wait((l) => l.some((d) => d.startsWith('READY=1')), 'READY=1');
  const ready = notify.list.findIndex((d) => d.startsWith('READY=1'));
  await notify.wait((l) => pings(ready, l.length) >= 3, 'three pings after READY=1');
  t.pass('WATCHDOG=1 keeps coming while S serves');
  const enabled = logLines(s.err()).find((l) => l['msg'] === 'systemd watchdog: pinging');
  t.equal(enabled?.['interval_ms'], INTERVAL_MS, `pings every ${INTERVAL_MS} ms, half of WATCHDOG_USEC`);
  t.ok(pings(0, ready) >= 1, 'S pings from its own start, before the incumbent serves');

  // The incumbent inherits none of it: it is S's watchdog.
  const incumbent = Number(/incumbent pid ([0-9]+)/.exec(notify.list[ready] ?? '')?.[1]);
  t.ok(incumbent > 0, `incumbent pid ${incumbent}`);
  const childEnv = environOf(incumbent);
  t.same(['NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID'].filter((k) => k in childEnv), [], 'the children do not see NOTIFY_SOCKET, WATCHDOG_USEC or WATCHDOG_PID');

  // A stopped child is the heartbeats' business, not the watchdog's: S goes on pinging.
  process.kill(incumbent, 'SIGSTOP');
  await until('the incumbent to stop', () => isStopped(incumbent));
  const childStopped = await notify.mark();
  await notify.wait((l) => pings(childStopped, l.length) >= 3, 'three pings while the incumbent is stopped');
  process.kill(incumbent, 'SIGCONT');

  // S stopped: nothing. The marks bracket what S sent while it was stopped (the queue is FIFO):
  // what it sent before it stopped is read before the first mark.
  process.kill(s.pid, 'SIGSTOP');
  await until('S to stop', () => isStopped(s.pid));
  const stoppedAt = await notify.mark();
  // Absence needs a bounded wait: six intervals, in which a running S would have pinged six times.
  await new Promise((r) => setTimeout(r, 6 * INTERVAL_MS));
  const stillStopped = isStopped(s.pid);
  const endAt = await notify.mark();
  t.ok(stillStopped, 'S was stopped the whole time');
  t.equal(pings(stoppedAt, endAt), 0, `no WATCHDOG=1 while S was stopped (${6 * INTERVAL_MS} ms)`);

  process.kill(s.pid, 'SIGCONT');
  const resumedAt = await notify.mark();
  await notify.wait((l) => pings(resumedAt, l.length) >= 2, 'pings again once S runs');
  t.pass('WATCHDOG=1 resumes after SIGCONT');

  process.kill(s.pid, 'SIGTERM');
  const exit = await within(STEP_MS, 'S to exit on SIGTERM', s.exit);
  t.same(exit, { code: 0, signal: null }, 'S stopped cleanly');
  t.ok(notify.list.some((d) => d.startsWith('STOPPING=1')), 'STOPPING=1 was sent');
});
