/**
 * In-process rig for wire abuse: a real Supervisor whose children are played by the test over real
 * Unix socket connections. S's Launcher gets one end of a connection (as the control socketpair
 * end) and a process double; the test holds the other end and speaks, or misbehaves, as the child.
 * S's Channel, router and handoff table are the real ones; only the OS process is a double.
 */

import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import pino from 'pino';
import { ProtocolError, type ErrorKind } from '../../src/protocol/errors.js';
import { FrameDecoder, encodeFrame } from '../../src/protocol/frame.js';
import { MAX_FRAME, PROTO_MAX, PROTO_MIN, idEquals, idToString, type HandoffId, type Message } from '../../src/protocol/messages.js';
import { decodeMessage } from '../../src/protocol/schema.js';
import type { ChildRole, Launcher, ProcessHandle, SpawnSpec } from '../../src/supervisor/child.js';
import { Supervisor } from '../../src/supervisor/supervisor.js';
import { DEFAULT_OPTIONS, type HandoffRecord, type SupervisorOptions } from '../../src/supervisor/types.js';

// --- reproducible randomness ------------------------------------------------------------------

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export class Rng {
  private s: number;
  constructor(readonly seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.next() * xs.length)] as T;
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = Math.floor(this.next() * 256);
    return b;
  }
}

/** The seed of this run: ABUSE_SEED when set (to replay a failure), else a fresh one. */
export function runSeed(): number {
  const env = process.env['ABUSE_SEED'];
  if (env !== undefined && /^\d+$/.test(env)) return Number(env) >>> 0;
  return (Date.now() ^ (process.pid << 16)) >>> 0;
}

// --- memory -----------------------------------------------------------------------------------

let gcFn: (() => void) | undefined;
/** A full GC, then the heap in use, in bytes. */
export function heapAfterGc(): number {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = vm.runInNewContext('gc') as () => void;
  }
  gcFn();
  gcFn();
  return process.memoryUsage().heapUsed;
}

export const MB = (n: number): string => `${(n / 1048576).toFixed(1)} MB`;

// --- the process double -----------------------------------------------------------------------

/** A child process as S sees it: a pid, signals, and an 'exit' that comes asynchronously. */
export class ProcDouble extends EventEmitter implements ProcessHandle {
  readonly signals: NodeJS.Signals[] = [];
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  /** A process that ignores SIGTERM (S must escalate to SIGKILL). */
  ignoreTerm = false;

  constructor(readonly pid: number) {
    super();
  }

  kill(signal: NodeJS.Signals): boolean {
    if (this.exitInfo) return false;
    this.signals.push(signal);
    if (signal === 'SIGTERM' && this.ignoreTerm) return true;
    setImmediate(() => this.exit(null, signal));
    return true;
  }

  exit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exitInfo) return;
    this.exitInfo = { code, signal };
    this.emit('exit', code, signal);
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }
}

// --- the test's end of a control channel ------------------------------------------------------

export type Seen =
  | { kind: 'msg'; msg: Message; version: number }
  | { kind: 'eof' }
  /** S sent bytes the peer could not decode: S's own bug. */
  | { kind: 'garbage'; detail: string };

/** One child played by the test: the socket end S does not hold, and what came over it. */
export class PeerEnd extends EventEmitter<{ message: [Message]; eof: [] }> {
  sock: net.Socket | undefined;
  readonly seen: Seen[] = [];
  readonly attached: Promise<void>;
  readonly closed: Promise<void>;
  private attach!: (s: net.Socket) => void;
  private decoder = new FrameDecoder();
  /** Set from HelloAck. */
  handoffId: HandoffId | undefined;
  version = PROTO_MIN;
  /** Bytes written to S. */
  written = 0;

  constructor(
    readonly pid: number,
    readonly role: ChildRole,
    readonly proc: ProcDouble,
  ) {
    super();
    let onClosed!: () => void;
    this.closed = new Promise((r) => (onClosed = r));
    this.attached = new Promise((resolve) => {
      this.attach = (s) => {
        this.sock = s;
        s.on('data', (d: Buffer) => this.onData(d));
        s.on('end', () => {
          this.seen.push({ kind: 'eof' });
          this.emit('eof');
          // S closed its end: nothing more will come, close ours (a process would exit).
          s.destroy();
        });
        s.on('error', () => undefined);
        s.on('close', () => onClosed());
        resolve();
      };
    });
  }

  /** @internal the rig hands over the accepted socket. */
  bind(s: net.Socket, rest: Buffer): void {
    this.attach(s);
    if (rest.length > 0) this.onData(rest);
  }

  private onData(d: Buffer): void {
    try {
      for (const f of this.decoder.push(d)) {
        const msg = decodeMessage(f.payload);
        this.seen.push({ kind: 'msg', msg, version: f.version });
        if (msg.type === 'HelloAck') {
          this.handoffId = msg.handoff_id;
          this.version = msg.proto_version_chosen;
        }
        this.emit('message', msg);
      }
    } catch (err) {
      this.seen.push({ kind: 'garbage', detail: err instanceof Error ? err.message : String(err) });
    }
  }

  get writable(): boolean {
    return this.sock !== undefined && !this.sock.destroyed && this.sock.writable;
  }

  write(b: Uint8Array): void {
    if (!this.writable) return;
    this.written += b.length;
    this.sock!.write(b);
  }

  send(msg: Message, version?: number): void {
    let header = version;
    if (header === undefined) header = msg.type === 'Hello' ? msg.proto_min : msg.type === 'HelloAck' ? msg.proto_version_chosen : this.version;
    this.write(encodeFrame(msg, header, MAX_FRAME));
  }

  /** Half-close: no more bytes from us; we can still read S's answer. */
  end(): void {
    if (this.writable) this.sock!.end();
  }

  messages(): Message[] {
    return this.seen.flatMap((s) => (s.kind === 'msg' ? [s.msg] : []));
  }

  /** Resolves with the first message of `type` S sent, already or from now on. */
  waitFor<T extends Message['type']>(type: T): Promise<Extract<Message, { type: T }>> {
    const have = this.seen.find((s) => s.kind === 'msg' && s.msg.type === type);
    if (have?.kind === 'msg') return Promise.resolve(have.msg as Extract<Message, { type: T }>);
    return this.next(type);
  }

  /** Resolves with the next message of `type` (optionally for `id`). */
  next<T extends Message['type']>(type: T, id?: HandoffId): Promise<Extract<Message, { type: T }>> {
    return new Promise((resolve) => {
      const fn = (m: Message): void => {
        if (m.type !== type) return;
        if (id !== undefined && 'handoff_id' in m && !idEquals(m.handoff_id, id)) return;
        this.off('message', fn);
        resolve(m as Extract<Message, { type: T }>);
      };
      this.on('message', fn);
    });
  }

  /** Index of the first Abort frame, and of EOF, in what S sent. */
  abortBeforeEof(id: HandoffId): { abort: Extract<Message, { type: 'Abort' }> | undefined; abortAt: number; eofAt: number } {
    const eofAt = this.seen.findIndex((s) => s.kind === 'eof');
    const abortAt = this.seen.findIndex((s) => s.kind === 'msg' && s.msg.type === 'Abort' && idEquals(s.msg.handoff_id, id));
    const s = this.seen[abortAt];
    return { abort: s?.kind === 'msg' && s.msg.type === 'Abort' ? s.msg : undefined, abortAt, eofAt };
  }
}

// --- well-behaved peers -----------------------------------------------------------------------

export const REVS: readonly bigint[] = [1n, 2n, 3n];
export const FINGERPRINT = new Uint8Array(32).fill(7);

export function helloOf(pid: number, role: 'Incumbent' | 'Successor', over: Partial<Extract<Message, { type: 'Hello' }>> = {}): Extract<Message, { type: 'Hello' }> {
  return { type: 'Hello', role, pid, build_id: Buffer.from(`double-${pid}`), proto_min: PROTO_MIN, proto_max: PROTO_MAX, capabilities: { reserved: 0n }, ...over };
}

/**
 * A child that does its part right: Hello; as a successor, Ready on Begin; as the incumbent,
 * Drained on PrepareHandoff, SealComplete on SealRequest, exit on Commit, serving again on
 * Abort/ResumeAfterAbort. `hold` keeps one answer back, to park a handoff in a phase.
 */
export class GoodPeer {
  hold: { drained?: boolean; sealed?: boolean; exit?: boolean } = {};
  private held: Array<() => void> = [];
  /** Handoffs this peer took part in as incumbent that gave it back its role, with the message. */
  readonly givenBack: Array<{ id: string; type: 'Abort' | 'ResumeAfterAbort' }> = [];
  prepared = 0;
  /** False once the peer stopped behaving (an abuse script took over). */
  behaving = true;
  /** Exit (the double) when S sends Abort: what a library successor does. */
  exitOnAbort = false;
  /** Exit when S closes the channel. */
  exitOnEof = true;

  sayHello(): void {
    this.peer.send(helloOf(this.peer.pid, this.peer.role === 'cold-start' ? 'Incumbent' : 'Successor'));
  }

  release(): void {
    this.hold = {};
    for (const f of this.held.splice(0)) f();
  }

  private later(held: boolean, f: () => void): void {
    if (held) this.held.push(f);
    else f();
  }

  constructor(readonly peer: PeerEnd) {
    peer.on('message', (m) => this.onMessage(m));
    // S closed the channel: a process that lost its control channel leaves (the library does).
    peer.on('eof', () => {
      if (this.exitOnEof && peer.proc.alive) setImmediate(() => peer.proc.exit(0, null));
    });
  }

  private onMessage(m: Message): void {
    if (m.type === 'Abort' && this.exitOnAbort && this.peer.proc.alive) {
      setImmediate(() => this.peer.proc.exit(1, null));
    }
    if (!this.behaving) return;
    switch (m.type) {
      case 'Heartbeat':
        // Liveness: answering S's beat is enough for S's silence check.
        this.peer.send({ type: 'Heartbeat', ts_ms: BigInt(Date.now()) });
        return;
      case 'PrepareHandoff':
        this.prepared++;
        this.later(this.hold.drained === true, () => this.peer.send({ type: 'Drained', open_conns_remaining: 0, accept_closed: true }));
        return;
      case 'SealRequest':
        this.later(this.hold.sealed === true, () => this.peer.send({ type: 'SealComplete', handoff_id: m.handoff_id, last_revision_per_shard: [...REVS], data_dir_fingerprint: FINGERPRINT }));
        return;
      case 'Begin':
        this.peer.send({ type: 'Ready', handoff_id: m.handoff_id, listening_on: [], healthz_ok: true, advertised_revision_per_shard: [...REVS] });
        return;
      case 'Commit':
        this.later(this.hold.exit === true, () => setImmediate(() => this.peer.proc.exit(0, null)));
        return;
      case 'Abort':
      case 'ResumeAfterAbort':
        // Back to serving: whatever this peer held back for the handoff is dropped.
        this.held = [];
        this.hold = {};
        this.givenBack.push({ id: idToString(m.handoff_id), type: m.type });
        return;
      default:
        return;
    }
  }
}

// --- the rig ----------------------------------------------------------------------------------

const PREAMBLE = 4;

export interface RigOptions {
  over?: Partial<SupervisorOptions>;
  /** Called for every child S launches, before S touches its channel. */
  onLaunch?: (peer: PeerEnd, spec: SpawnSpec) => boolean;
  logLevel?: pino.Level | 'silent';
}

/** Temp space: tmpfs when there is one (S fsyncs its history at every handoff). */
export function tempDir(prefix: string): string {
  const base = fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir();
  return fs.mkdtempSync(path.join(base, prefix));
}

export class Rig {
  readonly dir: string;
  readonly sockPath: string;
  readonly logPath: string;
  readonly server: net.Server;
  readonly peers = new Map<number, PeerEnd>();
  readonly good = new Map<number, GoodPeer>();
  sup!: Supervisor;
  private nextPid: number;
  /** Claims a child for a test script (returns true); unclaimed children are GoodPeers. */
  onLaunch: ((peer: PeerEnd, spec: SpawnSpec) => boolean) | undefined;
  launches = 0;
  /** The id of the last handoff that ended. */
  lastId: HandoffId | undefined;

  private constructor(dir: string, basePid: number) {
    this.dir = dir;
    this.sockPath = path.join(dir, 'ctl.sock');
    this.logPath = path.join(dir, 'supervisor.log');
    this.nextPid = basePid;
    this.server = net.createServer((s) => this.accepted(s));
  }

  static async start(opts: RigOptions = {}, basePid = 100_000): Promise<Rig> {
    const rig = new Rig(tempDir('habuse-'), basePid);
    rig.onLaunch = opts.onLaunch;
    await new Promise<void>((resolve) => rig.server.listen(rig.sockPath, resolve));
    const log = pino({ level: opts.logLevel ?? 'warn' }, pino.destination({ dest: rig.logPath, sync: true }));
    const options: SupervisorOptions = {
      ...DEFAULT_OPTIONS,
      command: 'double',
      args: [],
      listen: [],
      stateDir: path.join(rig.dir, 'state'),
      // A successor that does not leave after Abort is killed at once: the double dies on a signal.
      exitTimeoutMs: 1,
      // After Begin an aborted successor gets the drain grace (+1 s) to leave: short, but long enough
      // for a case parked in drain on a loaded machine.
      drainGraceMs: 2000,
      killAfterMs: 5,
      restartInitialMs: 10,
      restartMaxMs: 100,
      allowExec: [],
      ...opts.over,
    };
    rig.sup = new Supervisor(options, log, rig.launcher);
    await rig.sup.start();
    // S resolves start() when it answers the Hello; the answer is still on its way to the peer.
    await rig.incumbent().peer.waitFor('HelloAck');
    return rig;
  }

  /** Every child not claimed by onLaunch is a GoodPeer that says Hello at once. */
  readonly launcher: Launcher = (spec) => {
    const pid = this.nextPid++;
    this.launches++;
    const proc = new ProcDouble(pid);
    const peer = new PeerEnd(pid, spec.role, proc);
    this.peers.set(pid, peer);
    const control = net.connect(this.sockPath);
    const pre = Buffer.alloc(PREAMBLE);
    pre.writeUInt32LE(pid, 0);
    // The preamble goes from S's end to ours, so the accepted end can be matched with its pid.
    control.write(pre);
    if (!(this.onLaunch?.(peer, spec) ?? false)) {
      const g = new GoodPeer(peer);
      this.good.set(pid, g);
      void peer.attached.then(() => g.sayHello());
    }
    return { proc, control };
  };

  private accepted(s: net.Socket): void {
    let buf = Buffer.alloc(0);
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (buf.length < PREAMBLE) return;
      s.off('data', onData);
      s.pause();
      const pid = buf.readUInt32LE(0);
      const peer = this.peers.get(pid);
      if (!peer) {
        s.destroy();
        return;
      }
      peer.bind(s, buf.subarray(PREAMBLE));
      s.resume();
    };
    s.on('data', onData);
    s.on('error', () => undefined);
  }

  incumbentPid(): number | undefined {
    return this.sup.status().incumbent?.pid;
  }

  incumbent(): GoodPeer {
    const pid = this.incumbentPid();
    const g = pid !== undefined ? this.good.get(pid) : undefined;
    if (!g) throw new Error(`the incumbent (pid ${pid}) is not a GoodPeer`);
    return g;
  }

  /** Forget peers whose process is gone and whose socket closed. */
  prune(): void {
    for (const [pid, p] of this.peers) {
      if (!p.proc.alive && (p.sock === undefined || p.sock.destroyed)) {
        this.peers.delete(pid);
        this.good.delete(pid);
      }
    }
  }

  async stop(): Promise<void> {
    await this.sup.stop();
    await new Promise<void>((r) => this.server.close(() => r()));
    for (const p of this.peers.values()) p.sock?.destroy();
    if (process.env['ABUSE_KEEP'] === undefined) fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** A promise that rejects after `ms` with `what` (a bound on a wait, never a sleep to sync on). */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
    }),
  ]);
}

export function reasonKind(rec: HandoffRecord): ErrorKind | undefined {
  return rec.reason_kind;
}

export { ProtocolError };
