/**
 * The service runtime in this process (so its code is covered), with hooks under the test's
 * control: the control channel is a Unix socket connection whose far end the test speaks through
 * (S, the scripted supervisor), the listener a socket bound by a helper, and `exit` is caught
 * instead of ending the process.
 */

import type { Test } from 'tap';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Channel, type HandoffId, type Message, type MessageOf, type MessageType, NIL_ID } from '../../src/protocol/index.js';
import { duplicateFds } from '../../src/service/fd-dup.js';
import { createService, type HandoffService, type ServiceOptions } from '../../src/service/index.js';
import { bindListener, within, type RawListener } from './harness.js';

export interface Log {
  msg?: string;
  [k: string]: unknown;
}

/** The test's end of one control channel. */
export class S {
  readonly ch: Channel;
  private hb: NodeJS.Timeout | undefined;
  constructor(
    sock: net.Socket,
    private readonly hbMs = 50,
  ) {
    this.ch = new Channel(sock);
    this.speak();
    this.ch.on('close', () => this.silence());
  }
  /** Stops our heartbeats: a paused supervisor, its socket still open. */
  silence(): void {
    clearInterval(this.hb);
    this.hb = undefined;
  }
  /** Heartbeats again (at once, then every hbMs). */
  speak(): void {
    if (this.hb || this.ch.closed) return;
    const beat = (): void => void this.ch.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) });
    beat();
    this.hb = setInterval(beat, this.hbMs);
  }
  /** Abort, then end of stream: what S does to an offender. */
  abortAndClose(id: HandoffId, reason: string): void {
    this.ch.send({ type: 'Abort', handoff_id: id, reason });
    this.ch.close();
  }
  async next(ms = 10_000): Promise<Message> {
    for (;;) {
      const m = await within(this.ch.receive(), ms, 'a message');
      if (m.type !== 'Heartbeat') return m;
    }
  }
  async expect<T extends MessageType>(type: T, ms = 10_000): Promise<MessageOf<T>> {
    let m = await this.next(ms);
    while (m.type === 'SealProgress' && type !== 'SealProgress') m = await this.next(ms);
    if (m.type !== type) throw new Error(`expected ${type}, got ${m.type}${m.type === 'Abort' ? ` (${m.reason})` : ''}`);
    return m as MessageOf<T>;
  }
  async handshake(id: HandoffId): Promise<MessageOf<'Hello'>> {
    const h = await this.expect('Hello');
    this.ch.send({ type: 'HelloAck', proto_version_chosen: 1, handoff_id: id });
    this.ch.version = 1;
    return h;
  }
  send(m: Message): void {
    this.ch.send(m);
  }
  closed(): Promise<unknown> {
    return new Promise((r) => (this.ch.closed ? r(undefined) : this.ch.once('close', r)));
  }
}

export interface World {
  dir: string;
  lockPath: string;
  listener: RawListener;
}

export async function world(t: Test): Promise<World> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-inproc-'));
  const listener = await bindListener();
  t.teardown(() => {
    listener.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { dir, lockPath: path.join(dir, 'data.lock'), listener };
}

/**
 * A descriptor of the listener for one service, as a process would inherit it: the service closes
 * it when it first stops accepting, so it must not be one that anything else owns.
 */
export async function inherited(w: World): Promise<number> {
  const [[h] = []] = await duplicateFds([w.listener.fd], [1]);
  return h!.fd;
}

let pairs = 0;
/** A connected pair: an fd for the service (a duplicate nobody reads) and the test's socket. */
export async function controlPair(w: World): Promise<{ fd: number; s: S }> {
  const sockPath = path.join(w.dir, `c${pairs++}.sock`);
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(sockPath, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(sockPath);
  await new Promise((r) => client.once('connect', r));
  const far = await accepted;
  server.close();
  const fd = (client as unknown as { _handle: { fd: number } })._handle.fd;
  const [[dup] = []] = await duplicateFds([fd], [1]);
  client.destroy();
  return { fd: dup!.fd, s: new S(far) };
}

/** An app: a Map behind an http server, with hooks that count and can be told to misbehave. */
export class App {
  readonly data = new Map<string, string>();
  readonly server: http.Server;
  readonly logs: Log[] = [];
  readonly calls: string[] = [];
  sealed = false;
  rev = 0;
  fail: Partial<Record<'open' | 'seal' | 'begin' | 'health' | 'resume' | 'close', Error | 'hang'>> = {};
  healthy = true;
  badFingerprint = false;
  exitCode: number | undefined;
  readonly exited: Promise<number>;
  private exitResolve: (c: number) => void = () => undefined;

  constructor() {
    this.exited = new Promise((r) => (this.exitResolve = r));
    this.server = http.createServer((req, res) => {
      const key = req.url ?? '/';
      if (req.method === 'PUT') {
        if (this.sealed) {
          res.writeHead(503).end();
          return;
        }
        req.resume();
        req.on('end', () => {
          this.data.set(key, String(++this.rev));
          res.writeHead(200).end(String(this.rev));
        });
        return;
      }
      res.writeHead(this.data.has(key) ? 200 : 404).end(this.data.get(key) ?? '');
    });
  }

  /** A hook waits for its gate, if one is set. */
  readonly gates: Partial<Record<keyof App['fail'], Promise<void>>> = {};

  gate(name: keyof App['fail']): () => void {
    let open: () => void = () => undefined;
    this.gates[name] = new Promise<void>((r) => (open = r));
    return () => open();
  }

  private async hook(name: keyof App['fail']): Promise<void> {
    this.calls.push(name);
    await this.gates[name];
    const f = this.fail[name];
    if (f === 'hang') await new Promise(() => undefined);
    if (f instanceof Error) throw f;
  }

  options(over: Partial<ServiceOptions> = {}): ServiceOptions {
    const logger = pino(
      { level: 'debug' },
      new Writable({
        write: (chunk: Buffer, _e, cb) => {
          for (const line of chunk.toString().split('\n')) if (line) this.logs.push(JSON.parse(line) as Log);
          cb();
        },
      }),
    );
    return {
      buildId: 'inproc',
      servers: { http: this.server },
      open: async () => {
        await this.hook('open');
        this.sealed = false;
        return { revisions: [this.rev, 0n] };
      },
      seal: async (progress) => {
        this.sealed = true;
        progress({ shardsSealed: 1, shardsTotal: 2, lastRevision: this.rev });
        await this.hook('seal');
        progress({ shardsSealed: 2, shardsTotal: 2, lastRevision: 0n });
        return { revisions: [this.rev, 0], fingerprint: new Uint8Array(this.badFingerprint ? 31 : 32) };
      },
      resume: async () => {
        await this.hook('resume');
        this.sealed = false;
      },
      health: async () => {
        await this.hook('health');
        return this.healthy;
      },
      begin: async () => this.hook('begin'),
      close: async () => this.hook('close'),
      logger,
      handleSignals: false,
      lingerMs: 20,
      env: {},
      exit: (code) => {
        this.exitCode = code;
        // As the end of a process would: every connection still open is reset.
        this.server.closeAllConnections();
        this.exitResolve(code);
      },
      ...over,
    };
  }

  /** The `n`th log line (1-based) with this message, once it is written. */
  waitLog(msg: string, ms = 10_000, n = 1): Promise<Log> {
    return within(
      new Promise<Log>((resolve) => {
        const iv = setInterval(() => {
          const l = this.logs.filter((x) => x.msg === msg)[n - 1];
          if (l) {
            clearInterval(iv);
            resolve(l);
          }
        }, 5);
      }),
      ms,
      `log "${msg}"${n > 1 ? ` #${n}` : ''}`,
    );
  }

  /** The log messages written so far. */
  get messages(): string[] {
    return this.logs.map((l) => l.msg ?? '');
  }

  waitExit(ms = 10_000): Promise<number> {
    return within(this.exited, ms, 'exit');
  }
}

export interface Proc {
  app: App;
  svc: HandoffService;
  s: S;
  /** Every event the service emitted, in order (with the phase for aborted and supervisor-lost). */
  events: string[];
}

const EVENTS = ['hello', 'accepting', 'accept-closed', 'prepare', 'drained', 'seal', 'sealed', 'seal-failed', 'begin', 'ready', 'committed', 'aborted', 'resumed', 'supervisor-lost'] as const;

export async function spawnSvc(t: Test, w: World, role: 'cold-start' | 'successor', over: Partial<ServiceOptions> = {}, contract: ServiceOptions['contract'] = {}): Promise<Proc> {
  const app = new App();
  const { fd, s } = await controlPair(w);
  const svc = createService(
    app.options({
      contract: { role, sockFd: fd, listeners: [{ name: 'http', fd: await inherited(w) }], lockPath: w.lockPath, heartbeatMs: 50, heartbeatTimeoutMs: 2_000, ...contract },
      ...over,
    }),
  );
  t.teardown(async () => {
    s.ch.close();
    if (app.exitCode === undefined) {
      // Make the service end as the process would: stop() ends in exit().
      await within(svc.stop(), 5_000, 'stop').catch(() => undefined);
    }
  });
  const events: string[] = [];
  for (const name of EVENTS) {
    svc.on(name, (...args: unknown[]) => {
      const phase = (args[0] as { phase?: string } | undefined)?.phase;
      events.push(phase ? `${name}:${phase}` : name);
    });
  }
  void svc.start();
  return { app, svc, s, events };
}

export async function incumbent(t: Test, w: World, over: Partial<ServiceOptions> = {}, contract: ServiceOptions['contract'] = {}): Promise<Proc> {
  const p = await spawnSvc(t, w, 'cold-start', over, contract);
  await p.s.handshake(NIL_ID);
  return p;
}

export async function drained(p: Proc, id: HandoffId, graceMs = 1_000): Promise<void> {
  p.s.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: BigInt(graceMs) });
  await p.s.expect('Drained');
}

export async function sealed(p: Proc, id: HandoffId): Promise<MessageOf<'SealComplete'>> {
  await drained(p, id);
  p.s.send({ type: 'SealRequest', handoff_id: id });
  return p.s.expect('SealComplete');
}

/** A phase an incumbent reaches, how to get it there, and the hooks it has called by then. */
export type ReachPhase = [string, (p: Proc, id: HandoffId) => Promise<void>, string[]];

/** The phases of a handoff in which the incumbent still holds the lock (before its seal). */
export const HOLDING_THE_LOCK: readonly ReachPhase[] = [
    [
      'draining',
      async (p, id) => {
        p.s.send({ type: 'PrepareHandoff', handoff_id: id, successor_pid: 1, deadline_ms: 30_000n, drain_grace_ms: 60_000n });
        await p.app.waitLog('preparing: accept closed, draining');
      },
      ['open'],
    ],
    ['drained', (p, id) => drained(p, id), ['open']],
    [
      'seal-failed',
      async (p, id) => {
        p.app.fail.seal = new Error('nope');
        await drained(p, id);
        p.s.send({ type: 'SealRequest', handoff_id: id });
        await p.s.expect('SealFailed');
        p.app.fail.seal = undefined;
      },
      ['open', 'seal', 'resume'],
    ],
];
