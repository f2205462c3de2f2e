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

t.test('the pool keeps a spare and refills', async (t) => {
  const l = await bindListener();
  t.teardown(() => l.close());
  const pool = new ListenerPool([{ name: 'http', fd: l.fd }], quiet);
  t.ok(pool.has('http'));
  t.notOk(pool.has('admin'));
  await t.rejects(pool.take('admin'), /no inherited listener named "admin"/);
  const first = await pool.take('http');
  await pool.fill();
  const second = await pool.take('http');
  t.not(first.fd, second.fd);
  const s = net.createServer((c) => c.end('p'));
  await serve(s, second);
  t.equal(await hello(l.port), 'p');
  s.close();
  await pool.fill();
});
