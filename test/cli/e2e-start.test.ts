/**
 * `handoff run` starting and stopping: stale sockets, a second supervisor, --allow-exec, --config,
 * --admin-group, the second SIGINT.
 */

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { BIN, CHILD_ENV, cli, KV, pidAlive, Proc, runArgs, startRun, status, tmpdir } from './harness.js';

t.test('a stale socket file does not block a start; a live supervisor does', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'admin.sock');
  // A dead supervisor's socket: bound, never removed, nobody answers.
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.exit(0))`]);
  t.equal(r.status, 0);
  t.ok(fs.statSync(sock).isSocket());

  const first = await startRun(t, { socket: sock }, dir);
  const logged = first.p.logs().find((l) => l.msg === 'removing a stale admin socket (nothing answers on it)');
  t.ok(logged, 'the stale socket was noticed');
  t.equal((await status(first.env)).state, 'serving');

  t.test('a second supervisor on the same socket refuses with a clear message', async (t) => {
    const other = tmpdir(t);
    const second = new Proc(runArgs(other, { socket: sock }).args, CHILD_ENV);
    const { code } = await second.exit();
    t.equal(code, 1);
    t.match(second.stderr, `handoff: another supervisor is listening on ${sock}\n`);
    t.equal((await status(first.env)).state, 'serving', 'the first one is untouched');
    t.ok(fs.statSync(sock).isSocket(), 'its socket is still there');
  });

  t.test('a second supervisor on the same state dir refuses with a clear message', async (t) => {
    const other = tmpdir(t);
    const second = new Proc(runArgs(other, { stateDir: first.stateDir }).args, CHILD_ENV);
    const { code } = await second.exit();
    t.equal(code, 1);
    t.match(second.stderr, new RegExp(`handoff: state dir .* is in use by supervisor pid ${first.p.pid}`));
    t.notOk(fs.existsSync(path.join(other, 'admin.sock')), 'it removed its own socket');
    t.equal((await status(first.env)).state, 'serving');
  });
});

t.test('--allow-exec lets a handoff name another program', async (t) => {
  const run = await startRun(t, { extra: ['--allow-exec', '/bin/sh'] });
  const before = (await status(run.env)).incumbent?.pid;
  // sh execs the kv: the same process, so its Hello names the pid S spawned.
  const r = await cli(['upgrade', '--exec', '/bin/sh', '--', '-c', `exec "${process.execPath}" "${KV}" --data "${run.dataDir}" --build-id via-sh`], run.env);
  t.equal(r.code, 0, r.stderr + r.stdout);
  const s = await status(run.env);
  t.not(s.incumbent?.pid, before);
  t.equal(s.incumbent?.build_id, 'via-sh');
  t.match(s.last?.command, ['/bin/sh', '-c']);
});

t.test('options from --config and HANDOFF_*; --admin-group gives a 0660 socket', async (t) => {
  const dir = tmpdir(t);
  const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  const cfg = path.join(dir, 'handoff.json');
  fs.mkdirSync(path.join(dir, 'data'));
  fs.writeFileSync(
    cfg,
    JSON.stringify({
      listen: 'http=tcp://127.0.0.1:0',
      lock: path.join(dir, 'data.lock'),
      'state-dir': path.join(dir, 'state'),
      'admin-group': group,
      heartbeat: '200ms',
      'heartbeat-timeout': '1500ms',
      command: [process.execPath, KV, '--data', path.join(dir, 'data'), '--build-id', 'from-config'],
    }),
  );
  const sock = path.join(dir, 'a.sock');
  const p = new Proc([BIN, 'run', '--config', cfg], { ...CHILD_ENV, HANDOFF_ADMIN_SOCKET: sock, HANDOFF_DRAIN_GRACE: '3s' });
  t.teardown(async () => {
    p.signal('SIGTERM');
    await p.exit().catch(() => p.signal('SIGKILL'));
  });
  const start = await p.waitLog('handoff run starting');
  t.match(start, { admin_socket: sock, sources: { 'drain-grace': 'env', heartbeat: 'config', deadline: 'default', command: 'config' } });
  await p.waitLog('ready');
  const s = await status({ ...CHILD_ENV, HANDOFF_ADMIN_SOCKET: sock });
  t.equal(s.incumbent?.build_id, 'from-config');
  const st = fs.statSync(sock);
  t.equal(st.mode & 0o777, 0o660);
  t.equal(st.gid, process.getgid?.());
});

t.test('SIGINT stops; a second SIGINT kills at once (exit 130, no child left)', async (t) => {
  // An incumbent that ignores SIGTERM (and never says Hello) keeps the first stop waiting.
  const stubborn = `process.on('SIGTERM', () => process.stdout.write('ignoring SIGTERM\\n')); setInterval(() => {}, 1000); process.stdout.write('stubborn up ' + process.pid + '\\n');`;
  const run = await startRun(t, { command: [process.execPath, '-e', stubborn], waitReady: false, extra: ['--hello-timeout', '60s'] });
  const up = await run.p.waitStdout(/^stubborn up \d+$/);
  const pid = Number(up.split(' ')[2]);
  run.p.signal('SIGINT');
  await run.p.waitStdout(/^ignoring SIGTERM$/);
  run.p.signal('SIGINT');
  const { code } = await run.p.exit(5_000);
  t.equal(code, 130);
  t.notOk(pidAlive(pid), 'the child was killed');
  t.notOk(fs.existsSync(run.sock), 'the admin socket is removed');
});

t.test('SIGTERM during a cold start that never serves still exits 0', async (t) => {
  const run = await startRun(t, { command: [process.execPath, '-e', "process.stdout.write('never hello\\n'); setInterval(() => {}, 1000)"], waitReady: false });
  await run.p.waitStdout(/^never hello$/);
  const s = await status(run.env);
  t.equal(s.incumbent, null);
  const up = await cli(['upgrade'], run.env);
  t.equal(up.code, 1, 'no incumbent serves: no handoff');
  t.match(up.stderr, /incumbent_failed/);
  run.p.signal('SIGTERM');
  const { code } = await run.p.exit();
  t.equal(code, 0);
});

t.test('usage errors of run exit 2 before anything starts', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'a.sock');
  const noCmd = await cli(['run', '--admin-socket', sock], CHILD_ENV);
  t.equal(noCmd.code, 2);
  t.match(noCmd.stderr, /^handoff: no command to supervise/);
  const bad = await cli(['run', '--admin-socket', sock, '--heartbeat', 'often', '--', 'x'], CHILD_ENV);
  t.equal(bad.code, 2);
  t.equal(bad.stderr, "handoff: --heartbeat: invalid duration 'often' (use a number with a unit: 250ms, 5s, 2m, 1h)\n");
  const flag = await cli(['run', '--no-such-flag', '--', 'x'], CHILD_ENV);
  t.equal(flag.code, 2);
  t.equal(flag.stderr.split('\n').filter(Boolean).length, 1);
  t.notOk(fs.existsSync(sock));
  const help = await cli(['run', '--help'], CHILD_ENV);
  t.equal(help.code, 0);
  t.match(help.stdout.replace(/\s+/g, ' '), '(default: 25s; env: HANDOFF_DRAIN_GRACE)');
});

t.test('SIGTERM during a handoff: it rolls back, the waiting client hears why, S exits 0', async (t) => {
  const run = await startRun(t);
  const inc = (await status(run.env)).incumbent?.pid ?? 0;
  const up = new Proc([BIN, 'upgrade', '--deadline', '60s', '--exec', process.execPath, '--', KV, '--data', run.dataDir, '--fault', 'hang-on-begin'], run.env);
  t.teardown(() => up.signal('SIGKILL'));
  await up.waitStdout(/phase begin/);
  run.p.signal('SIGTERM');
  const { code } = await up.exit();
  t.equal(code, 1);
  t.match(up.stdout, /aborted after .*: supervisor_stopping: the supervisor is stopping/);
  t.equal((await run.p.exit()).code, 0);
  t.notOk(pidAlive(inc), 'the incumbent drained and exited');
  t.notOk(fs.existsSync(run.sock));
});
