/**
 * examples/standalone: one program run three ways, unchanged. Alone (`--listen`), it serves and
 * stops cleanly on SIGTERM. Socket-activated without a supervisor (systemd-socket-activate passes
 * LISTEN_FDS), it serves the connection that activated it on the inherited socket. Under a real
 * `handoff run`, a handoff under load loses no request.
 */

import t from 'tap';
import { httpGet } from '../cli/harness.js';
import { CHILD_ENV, Proc, ROOT, built, freePort, hasSocketActivate, httpHandoffUnderLoad, launch, mainOf, within } from './harness.js';

interface Who {
  pid: number;
  build: string;
  role: string;
}

t.test('standalone: alone, with --listen', async (t) => {
  t.ok(built('standalone'), 'dist/examples/standalone is built (npm run build)');
  const p = new Proc([mainOf('standalone'), '--listen', '127.0.0.1:0', '--build-id', 'alone'], CHILD_ENV);
  t.teardown(() => p.signal('SIGKILL'));
  const serving = await p.waitLog('serving', 30_000);
  t.equal(serving['role'], 'standalone');
  const port = Number(serving['port']);
  const r = await httpGet(port, '/hello');
  t.equal(r.status, 200);
  t.same(JSON.parse(r.body) as Who, { pid: p.pid, build: 'alone', role: 'standalone', path: '/hello' }, 'served by itself, no supervisor');
  p.signal('SIGTERM');
  const { code, signal } = await p.exit(30_000);
  t.equal(code, 0, 'SIGTERM: drained and exited 0');
  t.equal(signal, null);
});

t.test('standalone: socket-activated, no supervisor', { skip: hasSocketActivate ? false : 'systemd-socket-activate is not installed (.ci/run installs systemd)' }, async (t) => {
  const port = await freePort();
  // systemd-socket-activate passes on only PATH, TERM, USER, HOME and its -E variables: no test loaders.
  const act = launch(t, 'systemd-socket-activate', ['-l', `127.0.0.1:${port}`, process.execPath, mainOf('standalone'), '--build-id', 'activated'], { cwd: ROOT, env: CHILD_ENV });
  await act.untilErr((err) => err.includes(`Listening on 127.0.0.1:${port}`), 'systemd-socket-activate to listen');

  // This request is what makes systemd-socket-activate exec the example: it waits in the socket's
  // queue until the example accepts it on the inherited descriptor.
  const first = await within(30_000, 'the first answer', httpGet(port, '/first'));
  t.equal(first.status, 200);
  const who = JSON.parse(first.body) as Who;
  t.same(who, { pid: act.pid, build: 'activated', role: 'socket-activated', path: '/first' }, 'the exec()ed example answered the connection that activated it');
  t.equal((await httpGet(port, '/second')).status, 200, 'and goes on serving on the inherited socket');

  process.kill(act.pid, 'SIGTERM');
  t.same(await within(30_000, 'the exit on SIGTERM', act.exit), { code: 0, signal: null }, 'SIGTERM: drained and exited 0');
});

t.test('standalone: the same program under handoff run, a handoff under load', async (t) => {
  await httpHandoffUnderLoad(t, 'standalone');
});
