/**
 * A scripted supervisor for the service-library tests: it spawns the kv example the way S does
 * (listener at fd 3, control channel at fd 4, the contract variables), speaks the protocol over a
 * Channel, and lets each test drive the handoff by hand. Waits are on messages, exits, log lines
 * and HTTP replies, each bounded by a timeout; never on sleeps.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { Channel, PROTO_MAX, PROTO_MIN, type HandoffId, type Message, type MessageOf, type MessageType } from '../../src/protocol/index.js';
import { within } from '../../src/testing/service-under-test.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const KV_MAIN = path.join(ROOT, 'dist/examples/kv/main.js');
export const PEER = path.join(ROOT, 'test/fixtures/raw-peer.mjs');

/** Rejects after `ms` with `what` (one definition: the test double's). */
export { within };

export interface RawListener {
  fd: number;
  port: number;
  close(): void;
}

interface RawHandle {
  fd: number;
  close(): void;
}

/**
 * A listening TCP socket on 127.0.0.1 that this process holds but never accepts on, as S does:
 * bound in a helper process and handed over by IPC.
 */
export function bindListener(): Promise<RawListener> {
  const src = `
    const s = require('net').createServer();
    process.on('disconnect', () => process.exit(0));
    s.listen(0, '127.0.0.1', () => process.send({ port: s.address().port }, s._handle));
  `;
  return within(
    new Promise<RawListener>((resolve, reject) => {
      const child = spawn(process.execPath, ['-e', src], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'], env: { ...process.env, NODE_OPTIONS: '' } });
      child.once('error', reject);
      child.once('message', (msg: unknown, handle: unknown) => {
        const h = handle as RawHandle;
        child.disconnect();
        resolve({ fd: h.fd, port: (msg as { port: number }).port, close: () => h.close() });
      });
    }),
    10_000,
    'binding a listener',
  );
}

export interface Layout {
  dir: string;
  dataDir: string;
  lockPath: string;
  tracePath: string;
}

export function makeLayout(): Layout {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-svc-'));
  const l = { dir, dataDir: path.join(dir, 'data'), lockPath: path.join(dir, 'data.lock'), tracePath: path.join(dir, 'lock-trace.jsonl') };
  fs.mkdirSync(l.dataDir);
  return l;
}

export interface SpawnOptions {
  role: 'cold-start' | 'successor';
  listener: RawListener;
  layout: Layout;
  args?: string[];
  /** The script for the raw peer fixture instead of the kv example. */
  peerScript?: string;
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  /** The test's S sends heartbeats every this many ms (default 100); 0 = never. */
  sHeartbeatMs?: number;
  env?: NodeJS.ProcessEnv;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface LogLine {
  level: number;
  msg?: string;
  [k: string]: unknown;
}

/** One child as S sees it: its process, its control channel, its log lines. */
export class Child {
  readonly proc: ChildProcess;
  readonly channel: Channel;
  readonly exited: Promise<Exit>;
  readonly logs: LogLine[] = [];
  private readonly logWaiters: Array<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }> = [];
  private hb: NodeJS.Timeout | undefined;

  constructor(readonly opts: SpawnOptions) {
    const { layout } = opts;
    const script = opts.peerScript !== undefined ? [PEER, opts.peerScript] : [KV_MAIN, '--data', layout.dataDir, ...(opts.args ?? [])];
    this.proc = spawn(process.execPath, script, {
      stdio: ['ignore', 'ignore', 'pipe', opts.listener.fd, 'pipe'],
      env: {
        ...process.env,
        NODE_OPTIONS: '',
        LISTEN_FDS: '1',
        LISTEN_FDNAMES: 'http',
        HANDOFF_SOCK_FD: '4',
        HANDOFF_ROLE: opts.role,
        HANDOFF_LOCK_PATH: layout.lockPath,
        HANDOFF_LOCK_TRACE: layout.tracePath,
        HANDOFF_HEARTBEAT_MS: String(opts.heartbeatMs ?? 100),
        HANDOFF_HEARTBEAT_TIMEOUT_MS: String(opts.heartbeatTimeoutMs ?? 5_000),
        ...opts.env,
      },
    });
    this.exited = new Promise((resolve) => this.proc.once('exit', (code, signal) => resolve({ code, signal })));
    readline.createInterface({ input: this.proc.stderr! }).on('line', (raw) => {
      let l: LogLine;
      try {
        l = JSON.parse(raw) as LogLine;
      } catch {
        l = { level: 0, msg: raw };
      }
      this.logs.push(l);
      if (process.env.HANDOFF_TEST_LOGS) process.stderr.write(`[${this.proc.pid}] ${raw}\n`);
      for (const w of [...this.logWaiters]) {
        if (w.pred(l)) {
          this.logWaiters.splice(this.logWaiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    });
    this.channel = new Channel(this.proc.stdio[4] as net.Socket);
    if ((opts.sHeartbeatMs ?? 100) > 0) this.startHeartbeats();
    this.channel.on('close', () => this.stopHeartbeats());
  }

  /** S's heartbeats (again, after stopHeartbeats: a paused S that runs again): one now, then periodically. */
  startHeartbeats(): void {
    if (this.hb || this.channel.closed) return;
    const beat = (): void => void this.channel.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) });
    beat();
    this.hb = setInterval(beat, this.opts.sHeartbeatMs || 100);
    this.hb.unref();
  }

  get pid(): number {
    return this.proc.pid!;
  }

  stopHeartbeats(): void {
    clearInterval(this.hb);
    this.hb = undefined;
  }

  /** The next message that is not a Heartbeat; it must be of `type`. */
  async expect<T extends MessageType>(type: T, ms = 10_000): Promise<MessageOf<T>> {
    const m = await this.next(ms);
    if (m.type !== type) throw new Error(`expected ${type}, got ${JSON.stringify(m, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
    return m as MessageOf<T>;
  }

  /** The next message that is not a Heartbeat. */
  async next(ms = 10_000): Promise<Message> {
    for (;;) {
      const m = await within(this.channel.receive(), ms, `a message from ${this.pid}`);
      if (m.type !== 'Heartbeat') return m;
    }
  }

  /** Waits for Hello and answers HelloAck with `id`; returns the Hello. */
  async handshake(id: HandoffId, ms = 10_000): Promise<MessageOf<'Hello'>> {
    const hello = await this.expect('Hello', ms);
    this.channel.send({ type: 'HelloAck', proto_version_chosen: Math.min(PROTO_MAX, hello.proto_max), handoff_id: id });
    this.channel.version = Math.min(PROTO_MAX, Math.max(PROTO_MIN, hello.proto_min));
    return hello;
  }

  /** SealRequest, then the first answer that is not SealProgress (SealComplete or SealFailed). */
  async seal(id: HandoffId): Promise<Message> {
    this.send({ type: 'SealRequest', handoff_id: id });
    let m = await this.next();
    while (m.type === 'SealProgress') m = await this.next();
    return m;
  }

  send(m: Message): void {
    this.channel.send(m);
  }

  waitLog(pred: (l: LogLine) => boolean, ms = 10_000): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return within(new Promise<LogLine>((resolve) => this.logWaiters.push({ pred, resolve })), ms, `a log line from ${this.pid}`);
  }

  waitExit(ms = 10_000): Promise<Exit> {
    return within(this.exited, ms, `exit of ${this.pid}`);
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  kill(): Promise<Exit> {
    if (this.alive) this.proc.kill('SIGKILL');
    return this.exited;
  }

  /** The log, for a failure message. */
  dump(): string {
    return this.logs.map((l) => JSON.stringify(l)).join('\n');
  }
}

export interface Reply {
  status: number;
  body: string;
  headers: http.IncomingHttpHeaders;
}

export function request(port: number, method: string, urlPath: string, body?: string, agent: http.Agent | false = false, timeoutMs = 15_000): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: urlPath, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`${method} ${urlPath}: no reply within ${timeoutMs} ms`)));
    req.end(body);
  });
}

export async function info(port: number): Promise<{ pid: number; build_id: string; revisions: number[] }> {
  const r = await request(port, 'GET', '/info');
  return JSON.parse(r.body) as { pid: number; build_id: string; revisions: number[] };
}

export function readTrace(layout: Layout): string[] {
  try {
    return fs.readFileSync(layout.tracePath, 'utf8').split('\n').filter((l) => l.trim() !== '');
  } catch {
    return [];
  }
}

export interface TraceEvent {
  pid: number;
  event: 'acquire' | 'release' | 'clear';
  holder?: number;
}

export function traceEvents(layout: Layout): TraceEvent[] {
  return readTrace(layout).map((l) => JSON.parse(l) as TraceEvent);
}

/** Who holds the lock according to the trace. */
export function lockHolder(layout: Layout): number | null {
  let holder: number | null = null;
  for (const e of traceEvents(layout)) {
    if (e.event === 'acquire') holder = e.pid;
    else if (e.event === 'release' && holder === e.pid) holder = null;
    else if (e.event === 'clear' && holder === e.holder) holder = null;
  }
  return holder;
}

/**
 * A keep-alive load: `clients` clients, each with its own one-socket agent, PUT and read back
 * their own keys as fast as replies come, until stop(). Every failure is recorded.
 */
export class Hammer {
  readonly acked = new Map<string, string>();
  readonly failures: string[] = [];
  requests = 0;
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly agents: http.Agent[] = [];

  constructor(
    readonly port: number,
    clients: number,
  ) {
    for (let c = 0; c < clients; c++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.loop(c, agent));
    }
  }

  private async loop(c: number, agent: http.Agent): Promise<void> {
    for (let i = 0; this.running && i < 1_000_000; i++) {
      const key = `c${c}-k${i % 25}`;
      const value = `c${c}-v${i}`;
      try {
        const put = await request(this.port, 'PUT', `/kv/${key}`, value, agent);
        this.requests++;
        if (put.status !== 200 && put.status !== 201) {
          this.failures.push(`PUT ${key}: ${put.status} ${put.body}`);
          continue;
        }
        this.acked.set(key, value);
        const get = await request(this.port, 'GET', `/kv/${key}`, undefined, agent);
        this.requests++;
        if (get.status !== 200 || get.body !== value) this.failures.push(`GET ${key}: ${get.status} ${get.body} (wanted ${value})`);
      } catch (err) {
        this.failures.push(`${key}: ${(err as Error).message}`);
      }
    }
  }

  /** Resolves once `n` more requests have been answered. */
  async progress(n: number, ms = 15_000): Promise<void> {
    const target = this.requests + n;
    await within(
      new Promise<void>((resolve) => {
        const iv = setInterval(() => {
          if (this.requests >= target || !this.running) {
            clearInterval(iv);
            resolve();
          }
        }, 5);
      }),
      ms,
      `${n} more requests`,
    );
  }

  async stop(): Promise<void> {
    this.running = false;
    await within(Promise.all(this.loops), 30_000, 'the load to stop');
    for (const a of this.agents) a.destroy();
  }
}

/** What each service test starts with: a fresh data layout, a listener, and children to reap. */
export interface Ctx {
  layout: Layout;
  listener: RawListener;
  children: Child[];
}

export async function setup(t: Test): Promise<Ctx> {
  const c: Ctx = { layout: makeLayout(), listener: await bindListener(), children: [] };
  t.teardown(async () => {
    await Promise.all(c.children.map((ch) => ch.kill()));
    c.listener.close();
    fs.rmSync(c.layout.dir, { recursive: true, force: true });
  });
  return c;
}

/** PrepareHandoff → Drained. */
export async function prepare(o: Child, id: HandoffId, successorPid = 1, graceMs = 2_000): Promise<void> {
  o.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: successorPid, deadline_ms: 30_000n, drain_grace_ms: BigInt(graceMs) });
  const d = await o.expect('Drained', graceMs + 10_000);
  if (!d.accept_closed) throw new Error('Drained without accept_closed');
}
