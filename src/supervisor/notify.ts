/**
 * sd_notify for `Type=notify` and `Type=notify-reload` units: S tells systemd when it is ready, when
 * a handoff (a "reload") starts and ends, what it is doing, when it stops, and that it is alive
 * (`WATCHDOG=1`, from watchdog.ts).
 *
 * The protocol is one AF_UNIX datagram of `VAR=value` lines sent to $NOTIFY_SOCKET. Node has no
 * Unix datagram sockets, so: the optional native module `unix-dgram` sends them from S's own pid
 * (which `NotifyAccess=main` requires). When it cannot be loaded, or when NOTIFY_SOCKET names an
 * abstract socket (`@name`: unix-dgram copies the path as a C string, so a leading NUL cannot be
 * expressed), each notification spawns `systemd-notify VAR=value...`, one at a time so their order
 * holds. systemd-notify claims its parent's pid (S) as the sender, which works when S runs as root;
 * an unprivileged S on that path needs `NotifyAccess=all`.
 */

import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import os from 'node:os';
import type { Logger } from 'pino';

export type NotifyTransport = 'none' | 'unix-dgram' | 'systemd-notify';

export interface Notifier {
  /** How notifications leave: `none` when NOTIFY_SOCKET was not set. */
  readonly transport: NotifyTransport;
  /** `READY=1` (and `STATUS=`). */
  ready(status?: string): void;
  /** `RELOADING=1`, `MONOTONIC_USEC=<now>` (and `STATUS=`). */
  reloading(status?: string): void;
  /** `STATUS=`. */
  status(text: string): void;
  /** `STOPPING=1` (and `STATUS=`). */
  stopping(status?: string): void;
  /** `WATCHDOG=1`; while one waits in a full queue, more add nothing. */
  watchdog(): void;
  /** Any assignments, in one datagram. Keys must be `[A-Z_]+`; values lose control characters. */
  notify(fields: ReadonlyArray<readonly [string, string]>): void;
  /** Waits until every queued notification was handed over; later ones are dropped. */
  close(): Promise<void>;
}

export interface NotifierOptions {
  logger?: Logger;
  /** Forces a transport (tests); `auto` (the default) picks as described above. */
  transport?: 'auto' | 'unix-dgram' | 'systemd-notify';
  /** The systemd-notify executable. Default: `systemd-notify` from PATH. */
  systemdNotify?: string;
  /** Remove NOTIFY_SOCKET from `env` so children do not inherit it (S alone notifies). Default true. */
  unsetEnvironment?: boolean;
}

/** Longest STATUS= value sent; systemd shows one line in `systemctl status`. */
const MAX_STATUS_CHARS = 400;
const SYSTEMD_NOTIFY_TIMEOUT_MS = 10_000;
/** Notifications kept while systemd's queue is full (STATUS-only ones are replaced first). */
const MAX_PENDING = 64;
/** How long close() waits for systemd to read what is pending. */
const CLOSE_WAIT_MS = 5_000;

const PING = 'WATCHDOG=1';

/** CLOCK_MONOTONIC in microseconds: what systemd expects in MONOTONIC_USEC=. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x1f\x7f]+/g;

function clean(value: string): string {
  const v = value.replace(CONTROL, ' ').trim();
  return v.length > MAX_STATUS_CHARS ? `${v.slice(0, MAX_STATUS_CHARS - 3)}...` : v;
}

interface UnixDgramSocket {
  connect(path: string): void;
  /** On a connected socket: sends synchronously, then calls back (an Error whose message is `congestion` when the peer's queue is full). */
  send(buf: Buffer, cb: (err?: Error) => void): void;
  close(): void;
  on(event: 'error', listener: (err: Error) => void): unknown;
  once(event: 'writable', listener: () => void): unknown;
  removeAllListeners(event?: string): unknown;
}

interface UnixDgramModule {
  createSocket(type: 'unix_dgram'): UnixDgramSocket;
}

let unixDgram: UnixDgramModule | null | undefined;

/** The unix-dgram module, or null when it is not installed or its native part does not load. */
export function loadUnixDgram(): UnixDgramModule | null {
  if (unixDgram !== undefined) return unixDgram;
  try {
    const m: unknown = createRequire(import.meta.url)('unix-dgram');
    unixDgram =
      typeof m === 'object' && m !== null && typeof (m as { createSocket?: unknown }).createSocket === 'function'
        ? (m as UnixDgramModule)
        : null;
  } catch {
    unixDgram = null;
  }
  return unixDgram;
}

/**
 * A notifier for `env.NOTIFY_SOCKET` (a no-op when it is unset). Unless told otherwise, removes
 * NOTIFY_SOCKET from `env`: S is the unit's main process and the only one that notifies.
 */
export function createNotifier(env: NodeJS.ProcessEnv = process.env, opts: NotifierOptions = {}): Notifier {
  const socket = env['NOTIFY_SOCKET'] ?? '';
  if (opts.unsetEnvironment !== false) delete env['NOTIFY_SOCKET'];
  const log = opts.logger;
  if (socket === '') return new NotifierImpl('none', () => undefined, async () => undefined);

  const wanted = opts.transport ?? 'auto';
  const mod = wanted === 'systemd-notify' ? null : loadUnixDgram();
  if (wanted === 'unix-dgram' && (mod === null || !socket.startsWith('/'))) {
    throw new Error(mod === null ? 'unix-dgram is not available' : `unix-dgram cannot send to ${socket}`);
  }
  if (mod !== null && socket.startsWith('/')) {
    log?.debug({ socket, transport: 'unix-dgram' }, 'sd_notify enabled');
    const queue = new DatagramQueue(mod, socket, log);
    return new NotifierImpl('unix-dgram', (payload) => queue.push(payload), () => queue.drained(CLOSE_WAIT_MS));
  }

  // systemd-notify, one at a time.
  const exe = opts.systemdNotify ?? 'systemd-notify';
  const childEnv: NodeJS.ProcessEnv = { NOTIFY_SOCKET: socket, PATH: env['PATH'] ?? process.env['PATH'] ?? '/usr/bin:/bin' };
  let chain: Promise<void> = Promise.resolve();
  let broken = false;
  let pingQueued = false;
  log?.debug({ socket, transport: 'systemd-notify', why: mod === null ? 'unix-dgram unavailable' : 'abstract socket' }, 'sd_notify enabled');
  return new NotifierImpl(
    'systemd-notify',
    (payload) => {
      if (payload === PING) {
        if (pingQueued) return; // one that has not left yet says it all
        pingQueued = true;
      }
      chain = chain.then(async () => {
        if (payload === PING) pingQueued = false;
        if (broken) return;
        const r = await runSystemdNotify(exe, payload.split('\n'), childEnv);
        if (r === 'missing') {
          broken = true;
          log?.error({ exe }, 'sd_notify: systemd-notify not found; notifications are off');
        } else if (r !== 'ok') {
          log?.warn({ exe, error: r }, 'sd_notify: systemd-notify failed');
        }
      });
    },
    () => chain,
  );
}

class NotifierImpl implements Notifier {
  private closed = false;

  constructor(
    readonly transport: NotifyTransport,
    private readonly send: (payload: string) => void,
    private readonly drain: () => Promise<void>,
  ) {}

  notify(fields: ReadonlyArray<readonly [string, string]>): void {
    if (this.closed || this.transport === 'none' || fields.length === 0) return;
    for (const [k] of fields) if (!/^[A-Z_][A-Z0-9_]*$/.test(k)) throw new Error(`bad sd_notify variable name ${JSON.stringify(k)}`);
    this.send(fields.map(([k, v]) => `${k}=${clean(v)}`).join('\n'));
  }

  ready(status?: string): void {
    this.notify(withStatus([['READY', '1']], status));
  }

  reloading(status?: string): void {
    this.notify(withStatus([['RELOADING', '1'], ['MONOTONIC_USEC', monotonicUsec().toString()]], status));
  }

  status(text: string): void {
    this.notify([['STATUS', text]]);
  }

  stopping(status?: string): void {
    this.notify(withStatus([['STOPPING', '1']], status));
  }

  watchdog(): void {
    this.notify([['WATCHDOG', '1']]);
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.drain();
  }
}

function withStatus(fields: Array<[string, string]>, status: string | undefined): Array<[string, string]> {
  if (status !== undefined) fields.push(['STATUS', status]);
  return fields;
}

/**
 * Datagrams to one NOTIFY_SOCKET, in order. The kernel keeps at most net.unix.max_dgram_qlen
 * (often 10) unread datagrams per socket; a busy systemd (or a test that reads late) fills that
 * with a handoff's STATUS lines, and a send then fails with EAGAIN. Dropping there would lose the
 * READY=1 that ends a reload and leave the unit "reloading" until its timeout, so a full queue is
 * waited out (the socket polls for writability) and sending resumes in order. While waiting, a
 * newer STATUS-only datagram replaces an older pending one, and a WATCHDOG=1 is not queued twice
 * (a ping every few seconds would otherwise pile up), which bounds what is kept.
 * The socket is open only while something is pending: no handle keeps S's event loop alive.
 */
class DatagramQueue {
  private readonly pending: string[] = [];
  private sock: UnixDgramSocket | null = null;
  private waiting = false;
  private idle: Array<() => void> = [];

  constructor(
    private readonly mod: UnixDgramModule,
    private readonly path: string,
    private readonly log: Logger | undefined,
  ) {}

  push(payload: string): void {
    if (payload === PING && this.pending.includes(PING)) return;
    const last = this.pending[this.pending.length - 1];
    if (this.waiting && this.pending.length > 1 && last !== undefined && statusOnly(last) && statusOnly(payload)) {
      this.pending[this.pending.length - 1] = payload; // the first pending one is the one being retried
    } else {
      this.pending.push(payload);
    }
    if (this.pending.length > MAX_PENDING) {
      const i = this.pending.findIndex(statusOnly);
      this.pending.splice(i >= 1 ? i : 1, 1);
    }
    if (!this.waiting) this.flush();
  }

  /** Resolves when nothing is pending, or after `ms` (what is left is dropped). */
  drained(ms: number): Promise<void> {
    if (this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.log?.warn({ dropped: this.pending.length, socket: this.path }, 'sd_notify: systemd did not read; notifications dropped');
        this.pending.length = 0;
        this.closeSocket();
        this.waiting = false;
        this.settle();
      }, ms);
      this.idle.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private flush(): void {
    while (this.pending.length > 0) {
      const sock = this.socket();
      if (sock === null) {
        this.pending.shift(); // logged by socket(); the next one tries again
        continue;
      }
      const buf = Buffer.from(this.pending[0] ?? '', 'utf8');
      let result: Error | undefined;
      sock.send(buf, (err) => {
        result = err; // called synchronously
      });
      if (result?.message === 'congestion') {
        this.waiting = true;
        sock.once('writable', () => {
          this.waiting = false;
          this.flush();
        });
        return;
      }
      if (result) this.log?.warn({ err: errnoName(result), socket: this.path }, 'sd_notify: send failed');
      this.pending.shift();
    }
    this.closeSocket();
    this.settle();
  }

  private socket(): UnixDgramSocket | null {
    if (this.sock) return this.sock;
    let sock: UnixDgramSocket;
    try {
      sock = this.mod.createSocket('unix_dgram');
    } catch (err) {
      this.log?.warn({ err: (err as Error).message }, 'sd_notify: cannot create a datagram socket');
      return null;
    }
    let failed: Error | undefined;
    sock.on('error', (err) => {
      failed = err; // connect reports synchronously
    });
    sock.connect(this.path);
    if (failed) {
      this.log?.warn({ err: errnoName(failed), socket: this.path }, 'sd_notify: send failed');
      closeQuietly(sock);
      return null;
    }
    sock.on('error', (err) => this.log?.warn({ err: errnoName(err), socket: this.path }, 'sd_notify: socket error'));
    this.sock = sock;
    return sock;
  }

  private closeSocket(): void {
    if (this.sock) closeQuietly(this.sock);
    this.sock = null;
  }

  private settle(): void {
    for (const done of this.idle.splice(0)) done();
  }
}

function statusOnly(payload: string): boolean {
  return payload.startsWith('STATUS=') && !payload.includes('\n');
}

function closeQuietly(sock: UnixDgramSocket): void {
  sock.removeAllListeners('writable');
  try {
    sock.close();
  } catch {
    // already closed
  }
}

/** unix-dgram's errors carry a negative errno number (`send -111`); name it (`ECONNREFUSED`). */
function errnoName(err: Error): string {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== 'number') return err.message;
  const name = Object.entries(os.constants.errno).find(([, v]) => v === -code)?.[0];
  return name ?? err.message;
}

function runSystemdNotify(exe: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> /* 'ok', 'missing', or what failed */ {
  return new Promise((resolve) => {
    const child = spawn(exe, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => {
      if (stderr.length < 1024) stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), SYSTEMD_NOTIFY_TIMEOUT_MS);
    child.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code === 'ENOENT' ? 'missing' : err.message);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve('ok');
      else resolve((stderr.trim().split('\n')[0] ?? '') || `exit ${String(code)} ${String(signal)}`);
    });
  });
}
