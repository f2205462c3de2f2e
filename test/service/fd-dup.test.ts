import t from 'tap';
import net from 'node:net';
import pino from 'pino';
import { ListenerPool, duplicateFds, isTcpHandle } from '../../src/service/fd-dup.js';
import { bindListener, within } from './harness.js';

const quiet = pino({ level: 'silent' });

function serve(server: net.Server, h: { fd: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(h, () => resolve());
  });
}

function hello(port: number): Promise<string> {
  return within(
    new Promise<string>((resolve, reject) => {
      const s = net.connect(port, '127.0.0.1');
      let got = '';
      s.on('data', (d: Buffer) => (got += d.toString()));
      s.on('end', () => resolve(got));
      s.on('error', reject);
    }),
    10_000,
    'a reply',
  );
}

t.test('a duplicate serves the same socket, and closing it leaves the socket open', async (t) => {
  const l = await bindListener();
  t.teardown(() => l.close());
  const [[h1, h2] = []] = await duplicateFds([l.fd], [2]);
  t.ok(h1 && h2, 'two duplicates');
  t.not(h1!.fd, l.fd);
  t.not(h1!.fd, h2!.fd);
  t.ok(isTcpHandle(h1!));
  const a = net.createServer((c) => c.end('a'));
  await serve(a, h1!);
  t.equal(await hello(l.port), 'a');
  a.close();
  // Not accepted by anyone now: the connection waits in the kernel queue until b listens.
  const pending = hello(l.port);
  const b = net.createServer((c) => c.end('b'));
  await serve(b, h2!);
  t.equal(await pending, 'b', 'the queued connection is served by the next listener');
  b.close();
});

t.test('nothing to duplicate resolves at once; a bad fd fails', async (t) => {
  t.same(await duplicateFds([], []), []);
  t.same(await duplicateFds([0], [0]), [[]]);
  await t.rejects(duplicateFds([987], [1], { timeoutMs: 5_000 }), /fd-dup helper|EBADF|spawn/);
});

t.test('the pool hands out the master first, then duplicates made from whatever is open', async (t) => {
  const l = await bindListener();
  t.teardown(() => l.close());
  // The pool's master is closed by whoever listens on it first: give it its own descriptor (as
  // a process inherits one), not the one the raw handle `l` owns and closes.
  const [[own] = []] = await duplicateFds([l.fd], [1]);
  const pool = new ListenerPool([{ name: 'http', fd: own!.fd }], quiet);
  t.ok(pool.has('http'));
  t.notOk(pool.has('admin'));
  await t.rejects(pool.take('admin'), /no inherited listener named "admin"/);
  pool.closed('admin', 1); // unknown: ignored
  const first = await pool.take('http');
  t.equal(first.fd, own!.fd, 'the first listen needs no helper: the inherited descriptor');
  await pool.fill();
  t.equal(pool.spares('http'), 1, 'a spare made in the background');
  // Listen on the master, then close it as a drain would: the socket lives on in the spare.
  const a = net.createServer((c) => c.end('a'));
  await serve(a, { fd: first.fd });
  t.equal(await hello(l.port), 'a');
  a.close();
  pool.closed('http', first.fd);
  const second = await pool.take('http');
  t.not(second.fd, own!.fd);
  const b = net.createServer((c) => c.end('b'));
  await serve(b, second);
  t.equal(await hello(l.port), 'b', 'a duplicate of the closed master still serves the socket');
  // The spare went to b; the next ones are made from the descriptor b listens on.
  await pool.fill();
  t.equal(pool.spares('http'), 1);
  const third = await pool.take('http');
  b.close();
  pool.closed('http', second.fd);
  const c = net.createServer((s) => s.end('c'));
  await serve(c, third);
  t.equal(await hello(l.port), 'c');
  c.close();
  pool.closed('http', third.fd);
  // A listener whose descriptor is not open: the helper fails, and so does take().
  const broken = new ListenerPool([{ name: 'x', fd: 987 }], quiet);
  await t.rejects(broken.fill(), /fd-dup helper|EBADF/);
});
