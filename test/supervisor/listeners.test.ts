import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import {
  ListenerError,
  bindListeners,
  inheritedListeners,
  isValidListenerName,
  parseListen,
  parseListens,
  parseProcTcpAddress,
  socketAddress,
  type HeldListener,
} from '../../src/supervisor/listeners.js';
import { fdCount as openFds } from '../lib/proc.js';

/** The type of a subtest's `t` (the last overload of `t.test` takes just the callback). */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const DIST_LISTENERS = fileURLToPath(new URL('../../dist/src/supervisor/listeners.js', import.meta.url));

function tmpDir(t: TapTest): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-listeners-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return d;
}

function connectAddress(address: string): net.Socket {
  if (address.startsWith('unix:')) return net.connect(address.slice('unix:'.length));
  const m = /^tcp:\/\/\[?([^\]]+)\]?:([0-9]+)$/.exec(address);
  if (!m?.[1] || !m[2]) throw new Error(`bad address ${address}`);
  return net.connect({ host: m[1], port: Number(m[2]) });
}

/** Connects and writes one line; resolves once the kernel completed the connection (it is queued). */
function queuedClient(address: string, line: string): Promise<{ reply: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const c = connectAddress(address);
    c.setEncoding('utf8');
    let buf = '';
    const reply = new Promise<string>((res, rej) => {
      c.on('data', (d: string) => (buf += d));
      c.on('end', () => res(buf));
      c.on('error', rej);
    });
    c.once('error', reject);
    c.once('connect', () => {
      c.write(`${line}\n`);
      resolve({ reply });
    });
  });
}

/** A child that serves `count` connections on the listener it gets at fd 3, then exits (or dies with the test). */
function serveFromFd(t: TapTest, fd: number, count: number): ChildProcess {
  const code = `
    const net = require('node:net');
    let left = Number(process.argv[1]);
    const server = net.createServer((c) => {
      let b = '';
      c.setEncoding('utf8');
      c.on('data', (d) => {
        b += d;
        if (!b.endsWith('\\n')) return;
        c.end('pong ' + b.trim() + ' from ' + process.pid);
        if (--left === 0) server.close();
      });
    });
    server.listen({ fd: 3 });`;
  const child = spawn(process.execPath, ['-e', code, String(count)], { stdio: ['ignore', 'ignore', 'inherit', fd] });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return child;
}

function exited(c: ChildProcess): Promise<number | null> {
  return new Promise((resolve) => {
    if (c.exitCode !== null) resolve(c.exitCode);
    else c.once('exit', (code) => resolve(code));
  });
}

async function provesQueueing(t: TapTest, l: HeldListener): Promise<void> {
  // Three clients connect while nobody accepts: the kernel completes them into the backlog.
  const clients = await Promise.all([0, 1, 2].map((i) => queuedClient(l.address, `ping${i}`)));
  const child = serveFromFd(t, l.fd, clients.length);
  const replies = await Promise.all(clients.map((c) => c.reply));
  t.same(
    replies,
    [0, 1, 2].map((i) => `pong ping${i} from ${String(child.pid)}`),
    'each queued connection was answered by the child, none by this process',
  );
  t.equal(await exited(child), 0);
}

t.test('a TCP listener queues connections until a child serves them', async (t) => {
  const [l] = await bindListeners([parseListen('http=tcp://127.0.0.1:0')]);
  if (!l) throw new Error('no listener');
  t.teardown(() => l.close());
  t.equal(l.name, 'http');
  t.match(l.address, /^tcp:\/\/127\.0\.0\.1:[1-9][0-9]*$/, 'the real port is reported');
  t.ok(l.fd > 2);
  await provesQueueing(t, l);
  // A second generation of children is served from the same socket.
  await provesQueueing(t, l);
});

const hasV6Loopback = Object.values(os.networkInterfaces()).some((ifs) => ifs?.some((i) => i.address === '::1'));

t.test('connections racing the bind are never accepted (and dropped) by the helper', async (t) => {
  // Clients hammer a port before it exists; every connection that gets through while the helper
  // binds and hands the socket over must still be answered by the child that serves afterwards.
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const port = (probe.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  const replies: Array<Promise<string>> = [];
  let attempts = 0;
  let refused = 0;
  const tryOnce = (): Promise<boolean> =>
    new Promise((resolve) => {
      const c = net.connect({ host: '127.0.0.1', port });
      c.once('error', (err: NodeJS.ErrnoException) => {
        if (err.code === 'ECONNREFUSED') refused++;
        resolve(false);
      });
      c.once('connect', () => {
        c.removeAllListeners('error');
        c.setEncoding('utf8');
        let buf = '';
        replies.push(
          new Promise<string>((res) => {
            c.on('data', (d: string) => (buf += d));
            c.on('end', () => res(buf));
            c.on('error', (e: Error) => res(`error ${e.message}`));
          }),
        );
        c.write(`n${replies.length}\n`);
        resolve(true);
      });
    });
  const hammer = async (): Promise<void> => {
    while (replies.length < 40 && attempts < 50_000) {
      attempts++;
      await tryOnce();
    }
  };
  const loops = [hammer(), hammer(), hammer(), hammer()];
  const [l] = await bindListeners([parseListen(`race=tcp://127.0.0.1:${port}`)]);
  if (!l) throw new Error('no listener');
  t.teardown(() => l.close());
  await Promise.all(loops);
  t.ok(refused > 0, `${refused} attempts were refused before the bind, so the race was on`);
  t.ok(replies.length >= 40, `${replies.length} connections got through`);
  const child = serveFromFd(t, l.fd, replies.length);
  const got = await Promise.all(replies);
  t.same(
    got.filter((r) => !r.startsWith('pong ')),
    [],
    'every connection made while binding was answered by the child',
  );
  t.equal(await exited(child), 0);
});

t.test('an IPv6 loopback listener', { skip: hasV6Loopback ? false : 'no ::1 on this machine' }, async (t) => {
  const [l] = await bindListeners([parseListen('v6=tcp://[::1]:0')]);
  if (!l) throw new Error('no listener');
  t.teardown(() => l.close());
  t.match(l.address, /^tcp:\/\/\[::1\]:[1-9][0-9]*$/);
  await provesQueueing(t, l);
});

t.test('a unix listener queues connections, keeps its path, and removes it on close', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'kv.sock');
  const [l] = await bindListeners([parseListen(`kv=unix:${p}`)]);
  if (!l) throw new Error('no listener');
  t.equal(l.address, `unix:${p}`);
  const st = fs.lstatSync(p);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o660, 'socket file mode 0660');
  t.same(fs.readdirSync(dir), ['kv.sock'], 'no temporary file left beside it');
  await provesQueueing(t, l);
  t.ok(fs.lstatSync(p).isSocket(), 'a child closing its copy does not remove the path');
  l.close();
  l.close(); // idempotent
  t.notOk(fs.existsSync(p), 'close() removes the socket file');
});

t.test('a stale unix socket file is replaced; a live one, or a non-socket, is an error', async (t) => {
  const dir = tmpDir(t);
  const p = path.join(dir, 'stale.sock');
  // A process that bound the path and died without cleaning up.
  const dead = spawn(process.execPath, ['-e', `require('node:net').createServer().listen(process.argv[1], () => process.kill(process.pid, 'SIGKILL'))`, p], {
    stdio: 'ignore',
  });
  await exited(dead);
  t.ok(fs.lstatSync(p).isSocket(), 'stale socket file exists');
  const [l] = await bindListeners([parseListen(`s=unix:${p}`)]);
  if (!l) throw new Error('no listener');
  t.teardown(() => l.close());
  await provesQueueing(t, l);

  const live = await bindListeners([parseListen(`again=unix:${p}`)]).catch((e: unknown) => e);
  t.type(live, ListenerError);
  t.match((live as ListenerError).message, /"again".*EADDRINUSE/);
  t.ok(fs.lstatSync(p).isSocket(), 'the live socket file was left alone');

  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, 'data');
  const notSock = await bindListeners([parseListen(`f=unix:${file}`)]).catch((e: unknown) => e);
  t.type(notSock, ListenerError);
  t.match((notSock as ListenerError).message, /EEXIST.*not a socket/);
  t.equal(fs.readFileSync(file, 'utf8'), 'data', 'the regular file was not touched');

  const noDir = await bindListeners([parseListen(`n=unix:${path.join(dir, 'missing', 'x.sock')}`)]).catch((e: unknown) => e);
  t.match((noDir as ListenerError).message, /ENOENT.*does not exist/);
});

t.test('EADDRINUSE names the listener and releases the ones already bound', async (t) => {
  const dir = tmpDir(t);
  const [first] = await bindListeners([parseListen('a=tcp://127.0.0.1:0')]);
  if (!first) throw new Error('no listener');
  t.teardown(() => first.close());
  const sockPath = path.join(dir, 'b.sock');
  const err = await bindListeners(parseListens([`b=unix:${sockPath}`, 'c=tcp://127.0.0.1:0', `d=${first.address}`])).catch(
    (e: unknown) => e,
  );
  t.type(err, ListenerError);
  const le = err as ListenerError;
  t.equal(le.code, 'bind_failed');
  t.equal(le.listener, 'd');
  t.equal(le.errno, 'EADDRINUSE');
  t.notMatch(le.message, /\n/, 'one line');
  t.match(le.message, `"d" (${first.address}): EADDRINUSE`);
  t.notOk(fs.existsSync(sockPath), 'the unix listener bound before the failure was released');
});

t.test('binding and closing leaves the fd count where it was', async (t) => {
  const dir = tmpDir(t);
  const specs = parseListens(['a=tcp://127.0.0.1:0', `b=unix:${path.join(dir, 'b.sock')}`]);
  // Warm up: the first spawn creates libuv's long-lived signal and child-watching fds.
  for (const l of await bindListeners(specs)) l.close();
  const baseline = openFds();
  for (let i = 0; i < 20; i++) {
    const held = await bindListeners(specs);
    t.equal(held.length, 2);
    for (const l of held) l.close();
  }
  t.equal(openFds(), baseline, `open fds back at ${baseline}`);
});

t.test('parse: good specs', async (t) => {
  t.same(parseListen('http=tcp://127.0.0.1:8080'), { name: 'http', kind: 'tcp', host: '127.0.0.1', port: 8080, spec: 'http=tcp://127.0.0.1:8080' });
  t.same(parseListen('a=tcp://0.0.0.0:0'), { name: 'a', kind: 'tcp', host: '0.0.0.0', port: 0, spec: 'a=tcp://0.0.0.0:0' });
  t.same(parseListen('v6=tcp://[::1]:65535'), { name: 'v6', kind: 'tcp', host: '::1', port: 65535, spec: 'v6=tcp://[::1]:65535' });
  t.same(parseListen('my api=unix:/run/x.sock'), { name: 'my api', kind: 'unix', path: '/run/x.sock', spec: 'my api=unix:/run/x.sock' });
  t.same(
    parseListens(['a=tcp://127.0.0.1:1', 'b=unix:/x']).map((s) => s.name),
    ['a', 'b'],
  );
  t.ok(isValidListenerName('x'.repeat(255)));
  t.notOk(isValidListenerName('x'.repeat(256)));
});

t.test('parse: bad specs throw one-line ListenerErrors', async (t) => {
  const bad: Array<[string, RegExp]> = [
    ['', /expected NAME=/],
    ['http', /expected NAME=/],
    ['=tcp://127.0.0.1:80', /name must be/],
    ['a:b=tcp://127.0.0.1:80', /name must be/],
    ['caf\u00e9=tcp://127.0.0.1:80', /name must be/],
    ['tab\there=tcp://127.0.0.1:80', /name must be/],
    [`${'n'.repeat(256)}=tcp://127.0.0.1:80`, /name must be/],
    ['a=http://127.0.0.1:80', /must start with tcp:\/\/ or unix:/],
    ['a=tcp://127.0.0.1', /missing :PORT/],
    ['a=tcp://127.0.0.1:', /port must be/],
    ['a=tcp://127.0.0.1:65536', /port must be/],
    ['a=tcp://127.0.0.1:-1', /port must be/],
    ['a=tcp://127.0.0.1:8o', /port must be/],
    ['a=tcp://localhost:80', /not a host name/],
    ['a=tcp://::1:80', /IPv4 address or an IPv6 address in brackets/],
    ['a=tcp://[127.0.0.1]:80', /not an IPv6 address/],
    ['a=tcp://300.0.0.1:80', /IPv4/],
    ['a=unix:relative.sock', /absolute/],
    ['a=unix:/dir/', /directory/],
    ['a=unix:/a\u0000b', /NUL/],
    [`a=unix:/${'p'.repeat(107)}`, /108 bytes, at most 107/],
  ];
  for (const [spec, re] of bad) {
    const e = (() => {
      try {
        parseListen(spec);
        return null;
      } catch (err) {
        return err;
      }
    })();
    t.type(e, ListenerError, JSON.stringify(spec));
    if (!(e instanceof ListenerError)) continue;
    t.equal(e.code, 'bad_spec');
    t.match(e.message, re, JSON.stringify(spec));
    t.notMatch(e.message, /[\n\r]/, 'one line');
  }
  t.throws(() => parseListens(['a=tcp://127.0.0.1:1', 'a=unix:/x']), { name: 'ListenerError', code: 'duplicate_name', message: /duplicate listener name "a"/ });
  await t.rejects(bindListeners([parseListen('a=tcp://127.0.0.1:0'), parseListen('a=tcp://127.0.0.1:0')]), { code: 'duplicate_name' });
  t.same(await bindListeners([]), []);
});

t.test('inheritedListeners: variables and their errors', async (t) => {
  t.equal(inheritedListeners({}), null, 'nothing passed');
  const other = { LISTEN_FDS: '1', LISTEN_PID: String(process.pid + 1), LISTEN_FDNAMES: 'x' };
  t.equal(inheritedListeners(other), null, 'meant for another process');
  t.same(other, {}, 'the variables are removed even then');
  t.equal(inheritedListeners({ LISTEN_FDS: '0', LISTEN_PID: String(process.pid) }), null, 'zero fds');
  t.throws(() => inheritedListeners({ LISTEN_FDS: 'two' }), { code: 'bad_inherited', message: /not a count/ });
  t.throws(() => inheritedListeners({ LISTEN_FDS: '2', LISTEN_FDNAMES: 'a' }), { code: 'bad_inherited', message: /1 names for LISTEN_FDS=2/ });
  t.throws(() => inheritedListeners({ LISTEN_FDS: '2', LISTEN_FDNAMES: 'a:a' }), { code: 'duplicate_name' });
});

t.test('inheritedListeners in a process started with LISTEN_FDS', async (t) => {
  t.ok(fs.existsSync(DIST_LISTENERS), 'dist/ is built (npm test builds it first)');
  const dir = tmpDir(t);
  const held = await bindListeners(parseListens(['web=tcp://127.0.0.1:0', `admin=unix:${path.join(dir, 'admin.sock')}`]));
  t.teardown(() => held.forEach((l) => l.close()));
  const script = `
    const { inheritedListeners } = await import(process.argv[1]);
    const got = inheritedListeners(process.env);
    const env = ['LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES'].filter((k) => k in process.env);
    process.stdout.write(JSON.stringify({ got: got.map(({ name, fd, address }) => ({ name, fd, address })), env }));
    for (const l of got) l.close();`;
  // sh sets LISTEN_PID to its own pid and execs node, as a service manager would.
  const child = spawn('/bin/sh', ['-c', 'LISTEN_PID=$$ exec "$0" "$@"', process.execPath, '--input-type=module', '-e', script, DIST_LISTENERS], {
    stdio: ['ignore', 'pipe', 'inherit', ...held.map((l) => l.fd)],
    env: { ...process.env, LISTEN_FDS: '2', LISTEN_FDNAMES: 'web:admin' },
  });
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => (out += d));
  t.equal(await exited(child), 0);
  t.same(JSON.parse(out), {
    got: [
      { name: 'web', fd: 3, address: held[0]?.address },
      // bindListeners binds a unix socket under a temporary name, which /proc/net/unix shows; that
      // name is gone, so the address falls back to the fd (a systemd socket shows its real path:
      // test/systemd/socket-activate.test.ts).
      { name: 'admin', fd: 4, address: 'fd:4' },
    ],
    env: [],
  });
  // The listeners still work here after the child closed its copies.
  await provesQueueing(t, held[0] as HeldListener);
});

t.test('socketAddress reads /proc/net for the fd', async (t) => {
  const dir = tmpDir(t);
  const held = await bindListeners(parseListens(['a=tcp://127.0.0.1:0', `b=unix:${path.join(dir, 'b.sock')}`]));
  t.teardown(() => held.forEach((l) => l.close()));
  t.equal(socketAddress((held[0] as HeldListener).fd), (held[0] as HeldListener).address);
  t.equal(socketAddress((held[1] as HeldListener).fd), null, 'bound under a temporary name that is gone');
  // A unix socket bound under its final name shows it.
  const p = path.join(dir, 'direct.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(p, resolve));
  t.teardown(() => server.close());
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  t.equal(socketAddress(fd), `unix:${p}`);
  if (hasV6Loopback) {
    const v6 = net.createServer();
    await new Promise<void>((resolve) => v6.listen(0, '::1', resolve));
    t.teardown(() => v6.close());
    const port = (v6.address() as net.AddressInfo).port;
    t.equal(socketAddress((v6 as unknown as { _handle: { fd: number } })._handle.fd), `tcp://[::1]:${port}`);
  }
  t.equal(socketAddress(0), null, 'not a socket');
  t.equal(socketAddress(99999), null, 'not open');
});

t.test('/proc/net address parsing', async (t) => {
  const le = os.endianness() === 'LE';
  t.equal(parseProcTcpAddress(le ? '0100007F:1F90' : '7F000001:1F90', false), 'tcp://127.0.0.1:8080');
  t.equal(parseProcTcpAddress(le ? '00000000000000000000000001000000:0050' : '00000000000000000000000000000001:0050', true), 'tcp://[::1]:80');
  t.equal(parseProcTcpAddress('00000000000000000000000000000000:0050', true), 'tcp://[::]:80');
  t.equal(parseProcTcpAddress('bogus', false), null);
});
