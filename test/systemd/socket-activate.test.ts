/**
 * Socket activation without PID 1: systemd-socket-activate binds, waits for the first connection,
 * then execs the command with LISTEN_FDS/LISTEN_FDNAMES/LISTEN_PID, as systemd does for a .socket.
 */

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import t from 'tap';
import { freePort } from '../lib/free-port.js';
import { loadUnixDgram } from '../../src/supervisor/notify.js';
import { BIN, KV_MAIN, ROOT, STEP_MS, launch, notifySocket, tmpDir, within } from './harness.js';

const DIST_LISTENERS = path.join(ROOT, 'dist/src/supervisor/listeners.js');

const hasActivate = spawnSync('sh', ['-c', 'command -v systemd-socket-activate'], { stdio: 'ignore' }).status === 0;
const skip = hasActivate ? false : 'systemd-socket-activate is not installed (.ci/run installs systemd)';

function exchange(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`${line}\n`));
    c.on('data', (d: string) => (buf += d));
    c.on('end', () => resolve(buf));
    c.on('error', reject);
  });
}

function httpGet(port: number, urlPath: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const c = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    c.setEncoding('utf8');
    c.on('connect', () => c.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
    c.on('data', (d: string) => (buf += d));
    c.on('end', () => {
      const m = /^HTTP\/1\.[01] ([0-9]{3})/.exec(buf);
      if (!m?.[1]) return reject(new Error(`not an HTTP response: ${JSON.stringify(buf.slice(0, 200))}`));
      resolve({ status: Number(m[1]), body: buf.slice(buf.indexOf('\r\n\r\n') + 4) });
    });
    c.on('error', reject);
  });
}

t.test('inheritedListeners under systemd-socket-activate: names, real addresses, and a served first connection', { skip }, async (t) => {
  t.ok(fs.existsSync(DIST_LISTENERS), 'dist/ is built (npm test builds it first)');
  const dir = tmpDir(t);
  const port = await freePort();
  const sock = path.join(dir, 'admin.sock');
  // The program systemd would start: take the listeners, report them, and let a child (as S would)
  // serve the connection that caused the activation.
  const script = `
    import { spawn } from 'node:child_process';
    const { inheritedListeners } = await import(process.argv[1]);
    const got = inheritedListeners(process.env);
    const left = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'].filter((k) => k in process.env);
    process.stdout.write(JSON.stringify({ got: got.map(({ name, fd, address }) => ({ name, fd, address })), left }) + '\\n');
    const serve = "const s = require('node:net').createServer((c) => { c.setEncoding('utf8'); c.on('data', (d) => { c.end('pong ' + d.trim() + ' from ' + process.pid); s.close(); }); }); s.listen({ fd: 3 });";
    const child = spawn(process.execPath, ['-e', serve], { stdio: ['ignore', 'inherit', 'inherit', got[0].fd] });
    child.on('exit', (code) => { for (const l of got) l.close(); process.exit(code ?? 1); });`;
  const act = launch(t, 'systemd-socket-activate', [
    '-l', `127.0.0.1:${port}`, '-l', sock, '--fdname=web:admin',
    process.execPath, '--input-type=module', '-e', script, DIST_LISTENERS,
  ]);
  await act.untilErr((err) => err.includes(`Listening on ${sock}`), 'systemd-socket-activate to listen');
  const reply = await within(STEP_MS, 'the reply', exchange(port, 'ping'));
  t.match(reply, /^pong ping from [0-9]+$/, 'the connection that triggered the activation was served by the child');
  t.same((await act.exit).code, 0);
  const report = JSON.parse(act.out().split('\n')[0] ?? '') as unknown;
  t.same(report, {
    got: [
      { name: 'web', fd: 3, address: `tcp://127.0.0.1:${port}` },
      { name: 'admin', fd: 4, address: `unix:${sock}` },
    ],
    left: [],
  }, 'names from LISTEN_FDNAMES, addresses from /proc/net, and LISTEN_* removed');
});

t.test('handoff run under systemd-socket-activate serves the kv example through the inherited socket', { skip }, async (t) => {
  const missing = [path.join(ROOT, 'dist/src/cli/main.js'), path.join(ROOT, 'dist/src/supervisor/supervisor.js'), KV_MAIN].filter((f) => !fs.existsSync(f));
  if (missing.length > 0) {
    t.fail(`not built: ${missing.map((f) => path.relative(ROOT, f)).join(', ')} (npm test builds dist/ first)`);
    return;
  }
  const dir = tmpDir(t);
  const port = await freePort();
  const notify = loadUnixDgram() ? notifySocket(t, dir) : null;
  const env: NodeJS.ProcessEnv = { ...process.env };
  delete env['NODE_OPTIONS']; // no test loaders in the CLI clients
  // systemd-socket-activate passes on only PATH, TERM, USER, HOME and its -E variables.
  const notifyEnv = notify ? ['-E', `NOTIFY_SOCKET=${notify.path}`] : [];
  const act = launch(
    t,
    'systemd-socket-activate',
    [
      '-l', `127.0.0.1:${port}`, '--fdname=http', ...notifyEnv,
      process.execPath, BIN, 'run', '--state-dir', path.join(dir, 'state'), '--admin-socket', path.join(dir, 'handoff.sock'), '--lock', path.join(dir, 'lock'),
      '--', process.execPath, KV_MAIN, '--data', path.join(dir, 'data'),
    ],
    { cwd: dir, env },
  );
  await act.untilErr((err) => err.includes(`Listening on 127.0.0.1:${port}`), 'systemd-socket-activate to listen');

  // This first request is what makes systemd-socket-activate exec the supervisor: it waits in the
  // socket's queue until the kv child accepts it.
  const first = await within(STEP_MS, 'the first response', httpGet(port, '/healthz')).catch((err: Error) => {
    throw new Error(`${err.message}; supervisor stderr: ${act.err().slice(-3000)}`);
  });
  t.equal(first.status, 200, 'the kv child answered the request that started everything');
  const pid = act.pid;
  const info1 = JSON.parse((await within(STEP_MS, '/info', httpGet(port, '/info'))).body) as { pid: number };
  t.not(info1.pid, pid, `served by the kv child (pid ${info1.pid}), not by the supervisor (pid ${String(pid)})`);

  // S reports the inherited listener, with its name from LISTEN_FDNAMES and its real address.
  const status = spawnSync(process.execPath, [BIN, 'status', '--json', '--admin-socket', path.join(dir, 'handoff.sock')], { encoding: 'utf8', env });
  t.equal(status.status, 0, `handoff status: ${status.stderr}`);
  const st = JSON.parse(status.stdout) as { pid: number; listeners: Array<{ name: string; address: string }> };
  t.equal(st.pid, pid, 'the supervisor is the process systemd-socket-activate exec()ed (LISTEN_PID matched)');
  t.same(st.listeners, [{ name: 'http', address: `tcp://127.0.0.1:${port}` }]);

  // A handoff keeps serving through the same inherited socket.
  const up = spawnSync(process.execPath, [BIN, 'upgrade', '--admin-socket', path.join(dir, 'handoff.sock')], { encoding: 'utf8', env, timeout: 90_000 });
  t.equal(up.status, 0, `handoff upgrade: ${up.stdout}${up.stderr}`);
  const second = await within(STEP_MS, 'a response after the handoff', httpGet(port, '/info'));
  t.equal(second.status, 200);
  const info2 = JSON.parse(second.body) as { pid: number };
  t.not(info2.pid, info1.pid, `after the handoff the successor (pid ${info2.pid}) serves on the same inherited socket`);

  if (notify) {
    await notify.wait((l) => l.filter((d) => d.startsWith('READY=1')).length >= 2, 'READY=1 after start and after the handoff').catch((err: Error) => {
      throw new Error(`${err.message}; got ${JSON.stringify(notify.list)}`);
    });
  }
  if (pid !== undefined) process.kill(pid, 'SIGTERM');
  const exit = await within(STEP_MS, 'the supervisor to stop on SIGTERM', act.exit);
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: the incumbent drained and the supervisor exited 0');

  if (notify) {
    const kinds = notify.list.map((d) => d.split('\n')[0]);
    t.same(
      kinds.filter((k) => k !== undefined && !k.startsWith('STATUS=')),
      ['READY=1', 'RELOADING=1', 'READY=1', 'STOPPING=1'],
      'sd_notify from the real supervisor: ready, a reload around the handoff, stopping',
    );
    const reloading = notify.list.find((d) => d.startsWith('RELOADING=1')) ?? '';
    t.match(reloading, /\nMONOTONIC_USEC=[0-9]+\n/);
  } else {
    t.comment('unix-dgram is not built here: the sd_notify part of this test was not run');
  }
});
