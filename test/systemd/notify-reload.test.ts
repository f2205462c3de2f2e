/**
 * Type=notify-reload, S's side of the contract, with the real `handoff run` and a real notify socket
 * (systemd 252 here has no notify-reload: units.test.ts says what verify makes of the drop-in).
 * systemd sends SIGHUP, then waits for RELOADING=1 with a MONOTONIC_USEC= taken after its signal,
 * then READY=1. Every SIGHUP is answered: one that starts a handoff by the handoff's RELOADING=1 and
 * READY=1, one that cannot (a handoff in flight, an invalid configuration) by RELOADING=1 and READY=1
 * with the reason in STATUS=; before S is ready and once it stops, by a STATUS= alone.
 */

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { loadUnixDgram, monotonicUsec } from '../../src/supervisor/notify.js';
import { BIN, KV_MAIN, STEP_MS, cleanEnv, isStopped, launch, logLines, notBuilt, notifySocket, tmpDir, until, within, type NotifySocket } from './harness.js';

const noUnixDgram = loadUnixDgram() ? false : 'the optional dependency unix-dgram is not built here (it binds the notify socket)';

/** The first datagram from index `from` on that starts with `prefix`, once it is there. */
async function next(notify: NotifySocket, from: number, prefix: string, what: string): Promise<{ at: number; text: string }> {
  const find = (l: string[]): number => l.findIndex((d, i) => i >= from && d.startsWith(prefix));
  await notify.wait((l) => find(l) >= 0, what);
  const at = find(notify.list);
  return { at, text: notify.list[at] ?? '' };
}

function usecOf(datagram: string): bigint {
  const m = /\nMONOTONIC_USEC=([0-9]+)(\n|$)/.exec(datagram);
  return m?.[1] ? BigInt(m[1]) : -1n;
}

t.test('handoff run answers every SIGHUP as Type=notify-reload expects', { skip: noUnixDgram }, async (t) => {
  const missing = notBuilt();
  if (missing) return void t.fail(missing);
  const dir = tmpDir(t);
  const notify = notifySocket(t, dir);
  const cfgPath = path.join(dir, 'kv.json');
  const breakFile = path.join(dir, 'break');
  const config = {
    command: [process.execPath, KV_MAIN, '--data', path.join(dir, 'data')],
    listen: ['http=tcp://127.0.0.1:0'],
    lock: path.join(dir, 'lock'),
    'state-dir': path.join(dir, 'state'),
    'admin-socket': path.join(dir, 'admin.sock'),
    // Processes stopped at breakpoints must not be timed out by S while the test looks at it.
    'hello-timeout': '120s',
    'heartbeat-timeout': '120s',
  };
  fs.writeFileSync(cfgPath, JSON.stringify(config));
  // Every kv process stops itself at `start` while this line is in the file (examples/kv/README.md).
  const breakAtStart = (on: boolean): void => fs.writeFileSync(breakFile, on ? 'kv-dev start\n' : '');
  breakAtStart(true);

  const s = launch(t, process.execPath, [BIN, 'run', '--config', cfgPath], { cwd: dir, env: cleanEnv({ NOTIFY_SOCKET: notify.path, KV_BREAK: breakFile }) });
  const spawned = (role: string): number[] =>
    logLines(s.err())
      .filter((l) => l['msg'] === 'spawned' && l['role'] === role)
      .map((l) => Number(l['child_pid']));
  const release = async (pid: number, what: string): Promise<void> => {
    await until(`${what} (pid ${pid}) to stop at its breakpoint`, () => isStopped(pid));
    breakAtStart(false);
    process.kill(pid, 'SIGCONT');
  };

  // Before S was ever ready: STATUS only. A READY=1 would tell systemd that S started.
  await s.untilErr(() => spawned('cold-start').length === 1, 'the first incumbent to be spawned');
  let from = await notify.mark();
  process.kill(s.pid, 'SIGHUP');
  const early = await next(notify, from, 'STATUS=reload not started', 'the answer to a SIGHUP before S is ready');
  t.match(early.text, /^STATUS=reload not started: .*no incumbent is serving/, `answered with a STATUS: ${early.text}`);
  await release(spawned('cold-start')[0] ?? 0, 'the first incumbent');
  const ready = await next(notify, from, 'READY=1', 'READY=1 once the incumbent serves');
  t.same(notify.list.slice(0, ready.at).filter((d) => !d.startsWith('STATUS=') && !d.startsWith('MARK=')), [], 'nothing but STATUS= before the first READY=1');

  // A SIGHUP that starts a handoff: its RELOADING=1 (after the signal), then READY=1 when it ends.
  from = await notify.mark();
  let signalled = monotonicUsec();
  process.kill(s.pid, 'SIGHUP');
  let reloading = await next(notify, from, 'RELOADING=1', 'RELOADING=1 for the SIGHUP handoff');
  t.ok(usecOf(reloading.text) >= signalled, `MONOTONIC_USEC ${usecOf(reloading.text)} is after the signal (${signalled}): systemd ignores an older one`);
  t.match(reloading.text, /\nSTATUS=handoff [0-9a-f-]+: spawn$/);
  let done = await next(notify, reloading.at, 'READY=1', 'READY=1 when the handoff ends');
  t.match(done.text, /^READY=1\nSTATUS=serving; handoff [0-9a-f-]+ committed in/, 'the handoff committed');

  // A SIGHUP while a handoff is in flight (its successor held at a breakpoint): answered at once.
  breakAtStart(true);
  from = await notify.mark();
  process.kill(s.pid, 'SIGHUP');
  const inflight = await next(notify, from, 'RELOADING=1', 'RELOADING=1 for the second handoff');
  await s.untilErr(() => spawned('successor').length === 2, 'the second successor to be spawned');
  const held = spawned('successor')[1] ?? 0;
  signalled = monotonicUsec();
  process.kill(s.pid, 'SIGHUP');
  reloading = await next(notify, inflight.at + 1, 'RELOADING=1', 'RELOADING=1 for the SIGHUP that found a handoff in flight');
  t.ok(usecOf(reloading.text) >= signalled, 'with a MONOTONIC_USEC after its own signal, not the handoff in flight’s');
  t.match(reloading.text, /\nSTATUS=reload not started: handoff_in_progress/, `the reason: ${reloading.text}`);
  const answered = await next(notify, reloading.at, 'READY=1', 'READY=1 ending that reload');
  t.match(answered.text, /^READY=1\nSTATUS=reload not started: handoff_in_progress/);
  await release(held, 'the successor');
  done = await next(notify, answered.at + 1, 'READY=1', 'READY=1 when the held handoff ends');
  t.match(done.text, /committed in/, 'the held handoff committed');

  // An invalid configuration: no handoff, the reason, and READY=1.
  fs.writeFileSync(cfgPath, '{ not json');
  from = await notify.mark();
  signalled = monotonicUsec();
  process.kill(s.pid, 'SIGHUP');
  reloading = await next(notify, from, 'RELOADING=1', 'RELOADING=1 for the SIGHUP with a broken config');
  t.ok(usecOf(reloading.text) >= signalled);
  t.match(reloading.text, /\nSTATUS=reload not started: configuration not reloaded: invalid \(the journal says why\)$/, `the reason: ${reloading.text}`);
  const refused = await next(notify, reloading.at, 'READY=1', 'READY=1 ending that reload');
  t.match(refused.text, /^READY=1\nSTATUS=reload not started: configuration not reloaded/);
  t.notMatch(refused.text, /not json/, 'STATUS= (readable by every user) does not quote the file; the journal does');
  await s.untilErr((err) => err.includes('configuration not reloaded: config file'), 'the journal to say why');
  fs.writeFileSync(cfgPath, JSON.stringify(config));

  // Stopping (the incumbent held, so S stays stopping): STOPPING=1 already ended any reload.
  const incumbent = held;
  process.kill(incumbent, 'SIGSTOP');
  await until('the incumbent to stop', () => isStopped(incumbent));
  from = await notify.mark();
  process.kill(s.pid, 'SIGTERM');
  const stopping = await next(notify, from, 'STOPPING=1', 'STOPPING=1');
  process.kill(s.pid, 'SIGHUP');
  await next(notify, stopping.at, 'STATUS=reload not started: the supervisor is stopping', 'the answer to a SIGHUP while stopping');
  process.kill(incumbent, 'SIGCONT');
  const exit = await within(STEP_MS, 'S to exit', s.exit);
  t.same(exit, { code: 0, signal: null }, 'S stopped cleanly');

  const kinds = notify.list.map((d) => d.split('\n')[0] ?? '').filter((k) => !k.startsWith('STATUS=') && !k.startsWith('MARK='));
  t.same(
    kinds,
    ['READY=1', 'RELOADING=1', 'READY=1', 'RELOADING=1', 'RELOADING=1', 'READY=1', 'READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1'],
    'every reload answered once, nothing but STATUS= before READY=1 and after STOPPING=1',
  );
});
