import { spawn, spawnSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import os from 'node:os';
import path from 'node:path';
import pino from 'pino';
import t from 'tap';
import { createNotifier, loadUnixDgram, monotonicUsec, type Notifier } from '../../src/supervisor/notify.js';
import { attachNotifier } from '../../src/supervisor/notify-events.js';
import type { HandoffEvent, SupervisorEvents } from '../../src/supervisor/types.js';

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const hasTool = (tool: string): boolean => spawnSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' }).status === 0;
const noSystemdNotify = hasTool('systemd-notify') ? false : 'systemd-notify is not installed (.ci/run installs systemd)';
const noSocketActivate = hasTool('systemd-socket-activate') ? false : 'systemd-socket-activate is not installed (.ci/run installs systemd)';
const noUnixDgram = loadUnixDgram() ? false : 'the optional dependency unix-dgram is not built here';

interface RecvSocket {
  bind(path: string): void;
  close(): void;
  on(event: 'message', listener: (buf: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

/** A datagram socket bound on a temp path, as systemd's notify socket would be. */
function receiver(t: TapTest): { path: string; next(n: number): Promise<string[]> } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-notify-'));
  const p = path.join(dir, 'notify.sock');
  const dg = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): RecvSocket };
  const sock = dg.createSocket('unix_dgram');
  const got: string[] = [];
  let waiter: (() => void) | null = null;
  sock.on('message', (buf) => {
    const text = buf.toString('utf8');
    if (text === 'BARRIER=1') return; // systemd-notify's barrier, not ours
    got.push(text);
    waiter?.();
  });
  sock.on('error', (err) => t.fail(`receiver: ${err.message}`));
  sock.bind(p);
  t.teardown(() => {
    sock.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    path: p,
    /** Resolves with the first n datagrams once they are all there. */
    next(n: number): Promise<string[]> {
      return new Promise((resolve) => {
        const check = (): void => {
          if (got.length >= n) {
            waiter = null;
            resolve(got.slice(0, n));
          }
        };
        waiter = check;
        check();
      });
    },
  };
}

/** A real pino logger whose records land in an array. */
function captureLogger(): { logger: pino.Logger; records: Array<{ level: number; msg: string; err?: string }> } {
  const records: Array<{ level: number; msg: string; err?: string }> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void records.push(JSON.parse(line) as { level: number; msg: string }) });
  return { logger, records };
}

function ev(phase: HandoffEvent['phase'], extra: Partial<HandoffEvent> = {}): HandoffEvent {
  return { handoff_id: '0f8e2a6c-1111-4222-8333-444455556666', phase, at: new Date().toISOString(), elapsed_ms: 12, ...extra };
}

/** Drives a notifier through a supervisor's life with a plain EventEmitter. */
async function driveLifecycle(t: TapTest, notifier: Notifier, next: (n: number) => Promise<string[]>): Promise<void> {
  const sup = new EventEmitter<SupervisorEvents>();
  const link = attachNotifier(sup, notifier);
  sup.emit('ready', { pid: 4242, build_id: 'b1', command: ['/bin/true'], started_at: new Date().toISOString(), uptime_ms: 0 });
  const before = monotonicUsec();
  sup.emit('handoff', ev('spawn'));
  const afterSpawn = monotonicUsec();
  sup.emit('handoff', ev('seal', { progress: { shards_sealed: 2, shards_total: 8, last_revision: '7' } }));
  sup.emit('handoff', ev('done', { outcome: 'committed', elapsed_ms: 345 }));
  sup.emit('restart', { attempt: 1, delayMs: 250, reason: 'incumbent exited with code 1\nsecond line' });
  sup.emit('stopping');
  sup.emit('handoff', ev('done', { outcome: 'aborted', reason: 'supervisor_stopping: stop requested' }));
  link.detach();
  sup.emit('ready', { pid: 1, build_id: '', command: [], started_at: '', uptime_ms: 0 }); // detached: not sent
  await notifier.close();
  notifier.ready('after close'); // dropped

  const got = await next(7);
  const id = '0f8e2a6c-1111-4222-8333-444455556666';
  t.equal(got[0], 'READY=1\nSTATUS=serving; incumbent pid 4242', 'READY=1 when the first incumbent serves');
  const m = /^RELOADING=1\nMONOTONIC_USEC=([0-9]+)\nSTATUS=handoff (.+): spawn$/.exec(got[1] ?? '');
  t.ok(m, `RELOADING=1 with MONOTONIC_USEC when a handoff starts: ${JSON.stringify(got[1])}`);
  if (m?.[1]) {
    const usec = BigInt(m[1]);
    t.ok(usec >= before && usec <= afterSpawn, `MONOTONIC_USEC ${usec} within [${before}, ${afterSpawn}] (CLOCK_MONOTONIC)`);
  }
  t.equal(m?.[2], id);
  t.equal(got[2], `STATUS=handoff ${id}: seal (2/8 shards sealed)`, 'STATUS follows the phases');
  t.equal(got[3], `READY=1\nSTATUS=serving; handoff ${id} committed in 345 ms`, 'READY=1 when it ends');
  t.equal(got[4], 'STATUS=restarting the incumbent (attempt 1, in 250 ms): incumbent exited with code 1 second line', 'one line');
  t.equal(got[5], 'STOPPING=1\nSTATUS=stopping: draining the incumbent');
  t.equal(got[6], `STATUS=serving; handoff ${id} aborted in 12 ms: supervisor_stopping: stop requested`, 'no READY=1 once stopping');
}

t.test('unix-dgram: the lifecycle in order', { skip: noUnixDgram }, async (t) => {
  const r = receiver(t);
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: r.path, OTHER: 'x' };
  const n = createNotifier(env);
  t.equal(n.transport, 'unix-dgram');
  t.same(env, { OTHER: 'x' }, 'NOTIFY_SOCKET is removed so children do not inherit it');
  await driveLifecycle(t, n, (k) => r.next(k));
});

t.test('systemd-notify fallback: the same lifecycle, in the same order', { skip: noSystemdNotify || noUnixDgram }, async (t) => {
  const r = receiver(t);
  const n = createNotifier({ NOTIFY_SOCKET: r.path }, { transport: 'systemd-notify' });
  t.equal(n.transport, 'systemd-notify');
  await driveLifecycle(t, n, (k) => r.next(k));
});

t.test('an abstract NOTIFY_SOCKET goes through systemd-notify', { skip: noSystemdNotify || noSocketActivate }, async (t) => {
  // unix-dgram cannot address an abstract socket, and cannot receive on one either: let
  // systemd-socket-activate hold one and hand it to `cat` on the first datagram.
  const name = `@handoff-test-${process.pid}-${Date.now()}`;
  const holder = spawn('systemd-socket-activate', ['--datagram', '-l', name, '/bin/sh', '-c', 'exec cat <&3'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.teardown(() => {
    holder.kill('SIGKILL');
  });
  let out = '';
  let err = '';
  holder.stdout?.setEncoding('utf8');
  holder.stderr?.setEncoding('utf8');
  const waitFor = (pred: () => boolean, stream: NodeJS.ReadableStream | null): Promise<void> =>
    new Promise((resolve, reject) => {
      if (pred()) return resolve();
      const on = (): void => {
        if (pred()) {
          stream?.off('data', on);
          resolve();
        }
      };
      stream?.on('data', on);
      holder.once('exit', () => reject(new Error(`systemd-socket-activate exited: ${err}`)));
    });
  holder.stdout?.on('data', (d: string) => (out += d));
  holder.stderr?.on('data', (d: string) => (err += d));
  await waitFor(() => err.includes('Listening on'), holder.stderr);

  const n = createNotifier({ NOTIFY_SOCKET: name });
  t.equal(n.transport, 'systemd-notify', 'abstract sockets always use systemd-notify');
  n.ready('serving');
  n.reloading('handoff x: spawn');
  n.stopping();
  await n.close();
  // cat copies datagrams without their boundaries; systemd-notify adds a BARRIER=1 after each.
  await waitFor(() => out.split('BARRIER=1').join('').includes('STOPPING=1'), holder.stdout);
  t.match(out.split('BARRIER=1').join(''), /^READY=1\nSTATUS=servingRELOADING=1\nMONOTONIC_USEC=[0-9]+\nSTATUS=handoff x: spawnSTOPPING=1$/);
});

t.test('without NOTIFY_SOCKET the notifier does nothing', async (t) => {
  const n = createNotifier({});
  t.equal(n.transport, 'none');
  n.ready();
  n.reloading();
  n.status('x');
  n.stopping();
  await n.close();
  t.equal(createNotifier({ NOTIFY_SOCKET: '' }).transport, 'none');
});

t.test('bad input and a missing socket', { skip: noUnixDgram }, async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-notify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const { logger, records } = captureLogger();
  // A path nobody listens on: the send fails, S goes on.
  const n = createNotifier({ NOTIFY_SOCKET: path.join(dir, 'nobody.sock') }, { logger });
  n.ready();
  t.same(
    records.filter((r) => r.level === 40).map((r) => [r.msg, r.err]),
    [['sd_notify: send failed', 'ENOENT']],
    'a failed send is logged with its errno name, not thrown',
  );
  t.throws(() => n.notify([['bad name', '1']]), /bad sd_notify variable name/);
  t.throws(() => createNotifier({ NOTIFY_SOCKET: '@abstract' }, { transport: 'unix-dgram' }), /cannot send to @abstract/);
  t.same(createNotifier({ NOTIFY_SOCKET: '/x' }, { unsetEnvironment: false }).transport, 'unix-dgram');
  const keep = { NOTIFY_SOCKET: '/x' };
  createNotifier(keep, { unsetEnvironment: false });
  t.same(keep, { NOTIFY_SOCKET: '/x' });
});

/**
 * A receiver in another process, stopped with SIGSTOP as a busy PID 1 would be: the kernel keeps
 * only net.unix.max_dgram_qlen datagrams (often 10) for it; a sender must wait for the rest.
 */
async function stoppedReceiver(t: TapTest): Promise<{ path: string; got: string[]; until: (pred: () => boolean) => Promise<void>; resume: () => void }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-notify-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sockPath = path.join(dir, 'notify.sock');
  const script = `
    const dg = require('module').createRequire(${JSON.stringify(path.join(process.cwd(), 'package.json'))})('unix-dgram');
    const s = dg.createSocket('unix_dgram');
    s.on('message', (b) => process.stdout.write(JSON.stringify(b.toString('utf8')) + '\\n'));
    s.bind(process.argv[1]);
    process.stdout.write('"bound"\\n');`;
  const child = spawn(process.execPath, ['-e', script, sockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.teardown(() => {
    child.kill('SIGCONT');
    child.kill('SIGKILL');
  });
  const got: string[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      got.push(JSON.parse(buf.slice(0, i)) as string);
      buf = buf.slice(i + 1);
    }
    waiters.splice(0).forEach((w) => w());
  });
  const until = (pred: () => boolean): Promise<void> =>
    new Promise((resolve) => {
      const check = (): void => (pred() ? resolve() : void waiters.push(check));
      check();
    });
  await until(() => got.includes('bound'));
  child.kill('SIGSTOP');
  got.splice(0);
  return { path: sockPath, got, until, resume: () => void child.kill('SIGCONT') };
}

/**
 * Waits until STATUS=last arrived and the notifier closed. Bounded, so that a dropped datagram
 * fails here with what did arrive rather than at tap's timeout.
 */
async function lastArrived(got: string[], until: (pred: () => boolean) => Promise<void>, closed: Promise<void>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    until(() => got.includes('STATUS=last')).then(() => closed),
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`STATUS=last never arrived; got ${got.length} datagrams, the last ${JSON.stringify(got.slice(-3))}`)), 60_000);
    }),
  ]).finally(() => clearTimeout(timer));
}

t.test('a full notify queue (systemd not reading) is waited out: READY=1 is never dropped', { skip: noUnixDgram }, async (t) => {
  const { path: sockPath, got, until, resume } = await stoppedReceiver(t);
  const { logger, records } = captureLogger();
  const n = createNotifier({ NOTIFY_SOCKET: sockPath }, { logger });
  const N = 30;
  for (let i = 0; i < N; i++) {
    n.status(`step ${i} a`);
    n.status(`step ${i} b`);
    n.ready(`serving ${i}`);
  }
  n.status('last');
  const closed = n.close();
  resume();
  await lastArrived(got, until, closed);

  const readies = got.filter((d) => d.startsWith('READY=1'));
  t.same(readies, Array.from({ length: N }, (_, i) => `READY=1\nSTATUS=serving ${i}`), `all ${N} READY=1 arrived, in order, though only a few fit in the stopped receiver's queue`);
  t.equal(got[got.length - 1], 'STATUS=last', 'the newest STATUS arrives last');
  const order = got.map((d) => /(?:step|serving) (\d+)/.exec(d)?.[1] ?? 'last');
  t.same(order, [...order].sort((a, b) => (a === 'last' ? 1 : b === 'last' ? -1 : Number(a) - Number(b))), 'nothing arrives out of order');
  t.same(records.filter((r) => r.level >= 40), [], 'no send failed');
});

t.test('a missing systemd-notify turns the fallback off with one error', async (t) => {
  const { logger, records } = captureLogger();
  const n = createNotifier({ NOTIFY_SOCKET: '@x' }, { systemdNotify: '/nonexistent/systemd-notify', logger });
  n.ready();
  n.stopping();
  await n.close();
  t.same(
    records.filter((r) => r.level >= 40).map((r) => r.msg),
    ['sd_notify: systemd-notify not found; notifications are off'],
  );
});

t.test('a reload that started no handoff is still answered: RELOADING=1 (fresh MONOTONIC_USEC), then READY=1', { skip: noUnixDgram }, async (t) => {
  // Type=notify-reload: after its SIGHUP systemd waits for RELOADING=1 with a MONOTONIC_USEC= taken
  // after the signal, then READY=1; without an answer the unit stays "reloading" until its timeout.
  const r = receiver(t);
  const n = createNotifier({ NOTIFY_SOCKET: r.path });
  const sup = new EventEmitter<SupervisorEvents>();
  const link = attachNotifier(sup, n);
  link.reloadRefused('incumbent_failed: no incumbent is serving (supervisor is starting)');
  sup.emit('ready', { pid: 7, build_id: 'b', command: ['/bin/true'], started_at: new Date().toISOString(), uptime_ms: 0 });
  const before = monotonicUsec();
  link.reloadRefused('configuration not reloaded: bad JSON');
  const after = monotonicUsec();
  sup.emit('stopping');
  link.reloadRefused('the supervisor is stopping');
  link.detach();
  link.reloadRefused('after detach');
  n.status('last');
  await n.close();

  const got = await r.next(7);
  t.equal(got[0], 'STATUS=reload not started: incumbent_failed: no incumbent is serving (supervisor is starting)', 'before the first READY=1: STATUS only (a READY=1 would end the start)');
  t.equal(got[1], 'READY=1\nSTATUS=serving; incumbent pid 7');
  const m = /^RELOADING=1\nMONOTONIC_USEC=([0-9]+)\nSTATUS=reload not started: configuration not reloaded: bad JSON$/.exec(got[2] ?? '');
  t.ok(m, `RELOADING=1 with MONOTONIC_USEC and the reason: ${JSON.stringify(got[2])}`);
  if (m?.[1]) t.ok(BigInt(m[1]) >= before && BigInt(m[1]) <= after, 'MONOTONIC_USEC taken when the refusal was answered (after the signal)');
  t.equal(got[3], 'READY=1\nSTATUS=reload not started: configuration not reloaded: bad JSON', 'then READY=1, which ends the reload');
  t.equal(got[4], 'STOPPING=1\nSTATUS=stopping: draining the incumbent');
  t.equal(got[5], 'STATUS=reload not started: the supervisor is stopping', 'after STOPPING=1: STATUS only');
  t.equal(got[6], 'STATUS=last', 'nothing once detached');
});

function maxDgramQlen(): number | null {
  try {
    return Number(fs.readFileSync('/proc/sys/net/unix/max_dgram_qlen', 'utf8').trim());
  } catch {
    return null;
  }
}

t.test('WATCHDOG=1 waits in a full queue at most once: pings do not pile up', { skip: noUnixDgram || (maxDgramQlen() === null ? 'net.unix.max_dgram_qlen is not readable here' : false) }, async (t) => {
  const qlen = maxDgramQlen() ?? 10;
  const { path: sockPath, got, until, resume } = await stoppedReceiver(t);
  const n = createNotifier({ NOTIFY_SOCKET: sockPath });
  const N = qlen + 40; // enough to fill the kernel's queue and then some
  for (let i = 0; i < N; i++) n.watchdog();
  n.ready('serving');
  for (let i = 0; i < N; i++) n.watchdog();
  n.status('last');
  const closed = n.close();
  resume();
  await lastArrived(got, until, closed);
  const pings = got.filter((d) => d === 'WATCHDOG=1').length;
  t.ok(pings >= 1 && pings <= qlen + 2, `${pings} of ${2 * N} pings arrived: what the kernel queued (max_dgram_qlen ${qlen}) and one that waited`);
  t.same(got.filter((d) => d !== 'WATCHDOG=1'), ['READY=1\nSTATUS=serving', 'STATUS=last'], 'everything else arrived, in order');
});

t.test('systemd-notify fallback: a ping waiting for its turn is not queued again', { skip: noSystemdNotify || noUnixDgram }, async (t) => {
  const r = receiver(t);
  const n = createNotifier({ NOTIFY_SOCKET: r.path }, { transport: 'systemd-notify' });
  for (let i = 0; i < 20; i++) n.watchdog();
  n.ready('serving');
  for (let i = 0; i < 20; i++) n.watchdog();
  n.status('last');
  await n.close();
  t.same(await r.next(3), ['WATCHDOG=1', 'READY=1\nSTATUS=serving', 'STATUS=last'], 'one systemd-notify for 40 pings (each would be a process)');
});
