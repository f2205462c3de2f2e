/**
 * The fault matrix's harness: a real `handoff run` process (S) with real kv children, driven through
 * its admin socket; faults injected from outside at exact protocol points; a bounded load; and one
 * invariant check that every case ends with.
 *
 * Exact points without sleeping: kv's event log (KV_EVENTS) says what each process just did, and
 * its breakpoints (KV_BREAK) make a process stop itself (SIGSTOP) right after a named event. A point
 * is a list of steps: wait until a process stops at a breakpoint, freeze whoever must not move on
 * (SIGSTOP of S or of the incumbent), let the stopped process go, and so on; at the last step the
 * fault is injected with everything held in place, then whatever is still frozen is let go.
 *
 * Every wait is on an event (a log line, a process state, an exit, an admin answer), bounded by a
 * generous timeout that only turns a hang into a failure. The one deliberate duration is how long
 * a hang lasts: a SIGSTOP of S is a pause of a given length by definition.
 *
 * FAULTS_DEBUG=1 prints S's log of each hang of S as comments (what S did when it woke up).
 */

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Test } from 'tap';
import { checkLockTrace, readLockTrace } from '../../src/shared/lock.js';
import type { HandoffEvent, HandoffRecord, SupervisorStatus } from '../../src/supervisor/types.js';
import { childPids, procState } from '../lib/proc.js';
import { lockHolder, type Env } from '../supervisor/harness.js';
import { adminRequest as sharedAdminRequest } from '../lib/admin.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = path.join(ROOT, 'bin/handoff');
export const KV = path.join(ROOT, 'dist/examples/kv/main.js');

/** Children run built JS, without tap's loaders, and without the variables that configure S. */
const BASE_ENV: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
for (const k of Object.keys(BASE_ENV)) if (k.startsWith('HANDOFF_') || k.startsWith('KV_') || k === 'NOTIFY_SOCKET' || k === 'LISTEN_FDS' || k === 'LISTEN_FDNAMES') delete BASE_ENV[k];

/** S's timing for the kill matrix: fast heartbeats, a timeout no short freeze comes near, real exit timeouts. */
export const KILL_FLAGS = ['--heartbeat', '250ms', '--heartbeat-timeout', '3s', '--drain-grace', '2s', '--hello-timeout', '10s', '--deadline', '20s', '--exit-timeout', '10s', '--kill-after', '5s', '--restart-initial', '50ms', '--restart-max', '1s'];
/**
 * For hangs: a heartbeat timeout short enough that a hang longer than it stays quick, and long
 * enough for a successor's start on a busy machine (S judges a successor's silence from its spawn).
 */
export const HANG_FLAGS = ['--heartbeat', '200ms', '--heartbeat-timeout', '3s', '--drain-grace', '10s', '--hello-timeout', '10s', '--deadline', '20s', '--exit-timeout', '3s', '--kill-after', '1s', '--restart-initial', '50ms', '--restart-max', '1s'];
/**
 * For hangs of S: the drain grace (2 s + 1 s) and the heartbeat timeout both run out while S is
 * stopped (6 s), so that S must read what was buffered before it judges by its own timers. (For the
 * children's hangs the grace is longer than the heartbeat timeout: silence, not a slow drain, is what
 * S must notice.)
 */
export const S_HANG_FLAGS = HANG_FLAGS.map((f, i, a) => (a[i - 1] === '--drain-grace' ? '2s' : f));

export function flagMs(flags: readonly string[], name: string): number {
  const v = flags[flags.indexOf(name) + 1] ?? '';
  const m = /^(\d+(?:\.\d+)?)(ms|s)$/.exec(v);
  if (!m) throw new Error(`no duration for ${name} in ${flags.join(' ')}`);
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1);
}

// --- waiting ------------------------------------------------------------------------------------

export class TimeoutError extends Error {
  override name = 'TimeoutError';
}

/** Polls `probe` until it returns a value; the poll is how a state change (a file line, /proc) is observed. */
export async function until<T>(what: string, ms: number, probe: () => T | undefined | Promise<T | undefined>, everyMs = 10): Promise<T> {
  const end = performance.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (performance.now() > end) throw new TimeoutError(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Like until(), but a timeout is reported as false instead of thrown (the caller asserts on it). */
export async function eventually(what: string, ms: number, probe: () => boolean | Promise<boolean>, everyMs = 10): Promise<boolean> {
  try {
    await until(what, ms, async () => ((await probe()) ? true : undefined), everyMs);
    return true;
  } catch (err) {
    if (err instanceof TimeoutError) return false;
    throw err;
  }
}

export const monoNs = (): bigint => process.hrtime.bigint();

// --- processes ------------------------------------------------------------------------------------

export { procState };

/** Runs (or is stopped): not gone, not a zombie. */
export function running(pid: number): boolean {
  const st = procState(pid);
  return st !== undefined && st !== 'Z' && st !== 'X';
}

export function stopped(pid: number): boolean {
  const st = procState(pid);
  return st === 'T' || st === 't';
}

/** Children of `ppid`, with their state. */
export function childrenOf(ppid: number): Array<{ pid: number; state: string }> {
  return childPids(ppid).map((pid) => ({ pid, state: procState(pid) ?? '?' }));
}

export function signal(pid: number | undefined, sig: NodeJS.Signals): boolean {
  if (!pid) return false;
  try {
    process.kill(pid, sig);
    return true;
  } catch {
    return false;
  }
}

export type LogLine = Record<string, unknown> & { msg?: string; name?: string };

/** `handoff run` (or any node script) as a process whose stderr lines can be awaited. Exit is 'exit', not 'close': orphans keep its pipes open. */
export class NodeProc {
  readonly proc: ChildProcess;
  readonly pid: number;
  stderr = '';
  stdout = '';
  exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(args: string[], env: NodeJS.ProcessEnv, cwd = ROOT) {
    this.proc = spawn(process.execPath, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    this.pid = this.proc.pid ?? 0;
    this.proc.stdout!.setEncoding('utf8').on('data', (d: string) => (this.stdout += d));
    this.proc.stderr!.setEncoding('utf8').on('data', (d: string) => (this.stderr += d));
    this.exited = new Promise((resolve) =>
      this.proc.once('exit', (code, sig) => {
        this.exitInfo = { code, signal: sig };
        resolve(this.exitInfo);
      }),
    );
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  /** S's own pino lines (children share its stderr: theirs are told apart by `name`). */
  logs(): LogLine[] {
    const out: LogLine[] = [];
    for (const l of this.stderr.split('\n')) {
      if (!l.startsWith('{')) continue;
      try {
        const j = JSON.parse(l) as LogLine;
        if (j.name === 'handoff') out.push(j);
      } catch {
        // A torn or foreign line.
      }
    }
    return out;
  }

  /** Plain `handoff: ...` lines: what an operator reads when `run` fails. */
  plainLines(): string[] {
    return this.stderr.split('\n').filter((l) => l.startsWith('handoff:'));
  }

  waitLog(what: string, pred: (l: LogLine) => boolean, ms = 30_000): Promise<LogLine> {
    return until(`S log line: ${what}`, ms, () => {
      const hit = this.logs().find(pred);
      if (hit) return hit;
      if (!this.alive) throw new Error(`S exited (${JSON.stringify(this.exitInfo)}) before log line: ${what}\n${this.stderr.slice(-2000)}`);
      return undefined;
    });
  }

  async exit(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null } | undefined> {
    const t = new Promise<undefined>((r) => setTimeout(() => r(undefined), ms).unref());
    return Promise.race([this.exited, t]);
  }
}

// --- one case's world ------------------------------------------------------------------------------

export interface Case extends Env {
  name: string;
  sock: string;
  eventsPath: string;
  breakPath: string;
  /** The real port of the `http` listener, once the first S is up. */
  port: number;
  flags: string[];
  /** The S currently in charge (the last started). */
  s: NodeProc;
  sups: NodeProc[];
  foreign: NodeProc[];
  /** For S and every kv under it. */
  env: NodeJS.ProcessEnv;
  t0: bigint;
}

let caseSeq = 0;

/** A fresh directory and environment, and a teardown that leaves no process and no file behind. */
export function makeCase(t: Test, name: string, flags: string[]): Case {
  // Short: the admin socket path must fit in 107 bytes.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `hf${++caseSeq}-`));
  const c = {
    name,
    dir,
    dataDir: path.join(dir, 'data'),
    lockPath: path.join(dir, 'data.lock'),
    tracePath: path.join(dir, 'lock-trace.jsonl'),
    stateDir: path.join(dir, 'state'),
    logPath: path.join(dir, 'unused.log'),
    sock: path.join(dir, 'admin.sock'),
    eventsPath: path.join(dir, 'kv-events.jsonl'),
    breakPath: path.join(dir, 'kv-break'),
    port: 0,
    flags,
    sups: [] as NodeProc[],
    foreign: [] as NodeProc[],
    t0: monoNs(),
  } as Omit<Case, 's' | 'env'> as Case;
  fs.mkdirSync(c.dataDir);
  c.env = { ...BASE_ENV, HANDOFF_LOCK_TRACE: c.tracePath, KV_EVENTS: c.eventsPath, KV_BREAK: c.breakPath };
  t.teardown(async () => {
    fs.rmSync(c.breakPath, { force: true });
    const pids = new Set<number>([...c.sups.map((s) => s.pid), ...c.foreign.map((f) => f.pid), ...kvPids(c)]);
    for (const pid of pids) if (running(pid)) signal(pid, 'SIGKILL');
    for (const pid of pids) signal(pid, 'SIGCONT');
    await eventually('every process of the case gone', 10_000, () => [...pids].every((p) => !running(p)));
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return c;
}

export function kvCommand(c: Case, build: string, extra: string[] = []): string[] {
  return [process.execPath, KV, '--data', c.dataDir, '--build-id', build, ...extra];
}

export interface StartOptions {
  /** The command instead of the kv (build `v1`). */
  command?: string[];
  kvExtra?: string[];
  /** Listen on this port (a restarted S takes the same one); 0 picks one. */
  port?: number;
  /** Other `run` flags (e.g. none for `--listen`). */
  listen?: boolean;
  extra?: string[];
}

export function runArgs(c: Case, o: StartOptions = {}): string[] {
  const command = o.command ?? kvCommand(c, 'v1', o.kvExtra);
  const listen = o.listen === false ? [] : ['--listen', `http=tcp://127.0.0.1:${o.port ?? c.port}`];
  return [BIN, 'run', ...listen, '--lock', c.lockPath, '--state-dir', c.stateDir, '--admin-socket', c.sock, ...c.flags, ...(o.extra ?? []), '--', ...command];
}

/** Starts `handoff run` (it becomes c.s); does not wait. */
export function spawnS(c: Case, o: StartOptions = {}): NodeProc {
  const s = new NodeProc(runArgs(c, o), c.env);
  c.sups.push(s);
  c.s = s;
  return s;
}

/** Starts S and waits until its incumbent serves; learns the port. */
export async function startS(c: Case, o: StartOptions = {}): Promise<NodeProc> {
  const s = spawnS(c, o);
  await s.waitLog('ready', (l) => l.msg === 'ready', 60_000);
  const st = await status(c);
  const m = /:(\d+)$/.exec(st.listeners[0]?.address ?? '');
  if (m) c.port = Number(m[1]);
  return s;
}

/** A copy of the kv started by hand on the case's data dir and lock (not S's child). */
export async function startForeign(c: Case, build = 'foreign'): Promise<{ proc: NodeProc; port: number }> {
  const env = { ...c.env };
  delete env.KV_BREAK;
  const p = new NodeProc([KV, '--data', c.dataDir, '--lock', c.lockPath, '--listen', '127.0.0.1:0', '--build-id', build], env);
  c.foreign.push(p);
  const ev = await waitKv(c, `the foreign copy ${build} accepting`, (e) => e.pid === p.pid && e.event === 'accepting', 30_000);
  return { proc: p, port: Number(ev['port']) };
}

// --- the admin API -------------------------------------------------------------------------------

export function adminRequest(sock: string, method: string, p: string, body?: string, ms = 15_000): Promise<{ status: number; body: string }> {
  return sharedAdminRequest(sock, method, p, body, ms);
}

export async function status(c: Case): Promise<SupervisorStatus> {
  const r = await adminRequest(c.sock, 'GET', '/v1/status');
  if (r.status !== 200) throw new Error(`status: HTTP ${r.status} ${r.body}`);
  return JSON.parse(r.body) as SupervisorStatus;
}

export async function history(c: Case): Promise<HandoffRecord[]> {
  const r = await adminRequest(c.sock, 'GET', '/v1/handoffs?limit=1000');
  if (r.status !== 200) throw new Error(`history: HTTP ${r.status} ${r.body}`);
  return JSON.parse(r.body) as HandoffRecord[];
}

export async function metrics(c: Case): Promise<string> {
  return (await adminRequest(c.sock, 'GET', '/metrics')).body;
}

/** The history file as written (readable without a running S). */
export function historyFile(c: Case): HandoffRecord[] {
  try {
    return fs
      .readFileSync(path.join(c.stateDir, 'history.jsonl'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as HandoffRecord);
  } catch {
    return [];
  }
}

export function journalExists(c: Case): boolean {
  return fs.existsSync(path.join(c.stateDir, 'inflight.json'));
}

/** One POST /v1/handoffs: its NDJSON events as they stream, and the final record. */
export class Upgrade {
  readonly events: HandoffEvent[] = [];
  record: HandoffRecord | undefined;
  error: string | undefined;
  httpStatus = 0;
  readonly done: Promise<void>;

  constructor(c: Case, body: Record<string, unknown>) {
    const text = JSON.stringify(body);
    this.done = new Promise<void>((resolve) => {
      const req = http.request({ socketPath: c.sock, method: 'POST', path: '/v1/handoffs', agent: false, headers: { 'Content-Length': Buffer.byteLength(text), 'Content-Type': 'application/json' } }, (res) => {
        this.httpStatus = res.statusCode ?? 0;
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          let nl: number;
          while ((nl = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (line.trim() === '') continue;
            const j = JSON.parse(line) as HandoffEvent & { record?: HandoffRecord; error?: { kind: string; message: string } };
            if (j.record) this.record = j.record;
            else if (j.error) this.error = `${j.error.kind}: ${j.error.message}`;
            else this.events.push(j);
          }
        });
        res.on('end', () => {
          if (this.httpStatus !== 200 && buf.trim() !== '') this.error = buf.trim();
          resolve();
        });
        res.on('error', (err) => {
          this.error = err.message;
          resolve();
        });
      });
      req.on('error', (err) => {
        this.error = err.message;
        resolve();
      });
      req.end(text);
    });
  }

  get id(): string | undefined {
    return this.events[0]?.handoff_id;
  }

  /** Waits for the record; undefined when the stream ended without one (S died) or the bound passed. */
  async result(ms = 60_000): Promise<HandoffRecord | undefined> {
    await Promise.race([this.done, new Promise((r) => setTimeout(r, ms).unref())]);
    return this.record;
  }
}

/** A handoff to the kv (named explicitly: whatever command S serves, the successor is the kv). */
export function upgrade(c: Case, build: string, extra: string[] = []): Upgrade {
  return new Upgrade(c, { command: process.execPath, args: [KV, '--data', c.dataDir, '--build-id', build, ...extra] });
}

// --- kv's event log and breakpoints ---------------------------------------------------------------

export interface KvEvent {
  event: string;
  pid: number;
  build: string | null;
  t_ns: string;
  [k: string]: unknown;
}

export function kvEvents(c: Case): KvEvent[] {
  let text: string;
  try {
    text = fs.readFileSync(c.eventsPath, 'utf8');
  } catch {
    return [];
  }
  const out: KvEvent[] = [];
  for (const l of text.split('\n')) {
    if (l.trim() === '') continue;
    try {
      out.push(JSON.parse(l) as KvEvent);
    } catch {
      // A line being appended right now.
    }
  }
  return out;
}

/** Every kv process the case started (by its `start` line). */
export function kvPids(c: Case): number[] {
  return [...new Set(kvEvents(c).filter((e) => e.event === 'start').map((e) => e.pid))];
}

/** The pid of the (first) kv process of a build. */
export function pidOfBuild(c: Case, build: string): number | undefined {
  return kvEvents(c).find((e) => e.build === build)?.pid;
}

export function waitKv(c: Case, what: string, pred: (e: KvEvent) => boolean, ms = 30_000): Promise<KvEvent> {
  return until(`kv event: ${what}`, ms, () => kvEvents(c).find(pred));
}

export function setBreaks(c: Case, lines: string[]): void {
  fs.writeFileSync(c.breakPath, lines.map((l) => `${l}\n`).join(''));
}

function removeBreak(c: Case, line: string): void {
  let text = '';
  try {
    text = fs.readFileSync(c.breakPath, 'utf8');
  } catch {
    return;
  }
  const rest = text.split('\n').filter((l) => l.trim() !== '' && l.trim() !== line);
  fs.writeFileSync(c.breakPath, rest.map((l) => `${l}\n`).join(''));
}

// --- exact points -----------------------------------------------------------------------------------

export type Party = 'incumbent' | 'successor' | 'supervisor';

export interface Step {
  /** The process (the incumbent, or the successor: build v2) and the kv event it stops at. */
  at: ['incumbent' | 'successor', string];
  /** Frozen (SIGSTOP) once the breakpoint is hit, before the stopped process goes on. */
  freeze?: Array<'incumbent' | 'supervisor'>;
  /** Let the stopped process go on even at the last step (the point is then "somewhere after"). */
  resume?: boolean;
}

export interface Point {
  name: string;
  steps: Step[];
  /** Extra kv arguments for the incumbent (S's configured command). */
  incumbentArgs?: string[];
  /** Events that must not have happened before the fault: the check that the point was exact. */
  notYet?: Array<['incumbent' | 'successor', string]>;
}

/** The ten points of a handoff at which each party is killed (and, where a peer waits, stopped). */
export const POINTS: readonly Point[] = [
  // The incumbent is frozen before the successor says Hello, so it dies (or S dies) with
  // PrepareHandoff unread.
  { name: 'after Hello', steps: [{ at: ['successor', 'start'], freeze: ['incumbent'] }, { at: ['successor', 'hello'] }] },
  { name: 'after PrepareHandoff', steps: [{ at: ['incumbent', 'prepare'] }] },
  // A drain that lasts the whole grace; the incumbent goes on draining and the fault lands inside it.
  { name: 'inside drain', incumbentArgs: ['--fault', 'slow-drain'], steps: [{ at: ['incumbent', 'prepare'], resume: true }], notYet: [['incumbent', 'drained']] },
  { name: 'after Drained', steps: [{ at: ['incumbent', 'drained'] }] },
  // Writes stopped, shard 0 fsynced, the lock still held.
  { name: 'inside seal', steps: [{ at: ['incumbent', 'seal-shard'] }] },
  // S is frozen before the incumbent seals: SealComplete waits unread in S's socket.
  { name: 'after SealComplete', steps: [{ at: ['incumbent', 'seal'], freeze: ['supervisor'] }, { at: ['incumbent', 'sealed'] }] },
  { name: 'after Begin', steps: [{ at: ['successor', 'begin'] }] },
  // The successor holds the lock and is inside its open hook.
  { name: 'inside open', steps: [{ at: ['successor', 'open-start'] }] },
  // S is frozen before the successor says Ready: Ready waits unread in S's socket.
  { name: 'after Ready', steps: [{ at: ['successor', 'open-start'], freeze: ['supervisor'] }, { at: ['successor', 'ready'] }] },
  { name: 'after Commit', steps: [{ at: ['incumbent', 'committed'] }] },
];

/** Who serves once S was SIGKILLed at each point (kill-supervisor-early and -late). */
export const SURVIVOR_OF_S_KILL: Record<string, Expect['serves']> = {
  'after Hello': 'incumbent',
  'after PrepareHandoff': 'incumbent',
  'inside drain': 'incumbent',
  'after Drained': 'incumbent',
  'inside seal': 'incumbent',
  // The incumbent sealed and let the lock go, the successor never got Begin: the successor exits,
  // the incumbent retakes the lock.
  'after SealComplete': 'incumbent',
  // The successor got Begin: it takes the lock or the incumbent retakes it, whoever is first; the
  // other leaves.
  'after Begin': 'either',
  'inside open': 'successor',
  'after Ready': 'successor',
  'after Commit': 'successor',
};

export function point(name: string): Point {
  const p = POINTS.find((x) => x.name === name);
  if (!p) throw new Error(`no point ${name}`);
  return p;
}

export interface Held {
  /** Processes stopped now (by a breakpoint or a freeze). */
  stopped: Set<number>;
  successorPid: number | undefined;
  /** When the point was reached (CLOCK_MONOTONIC ns). */
  at: bigint;
}

/** Upgrades to build v2 (with `successorArgs`) and drives the handoff to `p`, holding everything there. */
export async function reach(c: Case, p: Point, incumbentPid: number, successorArgs: string[] = []): Promise<{ up: Upgrade; held: Held }> {
  const who = (x: 'incumbent' | 'successor'): string => (x === 'incumbent' ? String(incumbentPid) : 'v2');
  const lines = p.steps.map((s) => `${who(s.at[0])} ${s.at[1]}`);
  setBreaks(c, lines);
  const from = kvEvents(c).length;
  const up = upgrade(c, 'v2', successorArgs);
  const held: Held = { stopped: new Set(), successorPid: undefined, at: 0n };
  for (let i = 0; i < p.steps.length; i++) {
    const step = p.steps[i]!;
    const [party, ev] = step.at;
    const hit = await until(`${party} stopped at ${ev}`, 60_000, () => {
      const e = kvEvents(c)
        .slice(from)
        .find((x) => x.event === ev && (party === 'incumbent' ? x.pid === incumbentPid : x.build === 'v2'));
      if (!e) {
        if (up.record) throw new Error(`the handoff ended (${up.record.outcome}: ${up.record.reason ?? ''}) before ${party} reached ${ev}`);
        return undefined;
      }
      return stopped(e.pid) ? e.pid : undefined;
    });
    removeBreak(c, lines[i]!);
    held.stopped.add(hit);
    for (const f of step.freeze ?? []) {
      const pid = f === 'supervisor' ? c.s.pid : incumbentPid;
      signal(pid, 'SIGSTOP');
      await until(`${f} frozen`, 10_000, () => (stopped(pid) ? true : undefined));
      held.stopped.add(pid);
    }
    if (i < p.steps.length - 1 || step.resume) {
      signal(hit, 'SIGCONT');
      held.stopped.delete(hit);
    }
  }
  held.successorPid = pidOfBuild(c, 'v2');
  held.at = monoNs();
  return { up, held };
}

/** Lets every held process go on (those still alive). */
export function release(held: Held, except: number[] = []): void {
  for (const pid of held.stopped) if (!except.includes(pid)) signal(pid, 'SIGCONT');
  for (const pid of [...held.stopped]) if (!except.includes(pid)) held.stopped.delete(pid);
}

/** Events of `p.notYet` that happened before `at`: a point that was not exact. */
export function notExact(c: Case, p: Point, incumbentPid: number, at: bigint): string[] {
  const out: string[] = [];
  for (const [party, ev] of p.notYet ?? []) {
    const e = kvEvents(c).find((x) => x.event === ev && (party === 'incumbent' ? x.pid === incumbentPid : x.build === 'v2'));
    if (e && BigInt(e.t_ns) < at) out.push(`${party} ${ev}`);
  }
  return out;
}

/**
 * SIGKILL, then wait until the process is gone or a zombie; with `reaped`, until its parent has
 * reaped it (S has then seen the exit: only for S's children while S runs).
 */
export async function killAndWait(pid: number, ms = 15_000, reaped = false): Promise<boolean> {
  signal(pid, 'SIGKILL');
  return eventually(`pid ${pid} gone`, ms, () => (reaped ? procState(pid) === undefined : !running(pid)));
}

// --- load -------------------------------------------------------------------------------------------

export interface Failure {
  cause: string;
  client: string;
  /** ms since the load started. */
  atMs: number;
  /** The process that last answered this client (the connection's server, for keep-alive clients). */
  lastPid: number | undefined;
  /** For an HTTP error: the build that answered it. */
  build?: string;
}

export interface LoadOptions {
  /** Clients that keep one connection alive across requests. */
  keepAlive?: number;
  /** Clients that open a new connection for each request. */
  fresh?: number;
  paceMs?: number;
  maxRequests?: number;
  maxMs?: number;
  /** Longer than any wait the design allows (a queued connection waits for the next process). */
  timeoutMs?: number;
}

interface PutResult {
  status: number;
  pid: number;
  build: string;
}

function put(port: number, key: string, value: string, agent: http.Agent | false, timeoutMs: number): Promise<PutResult> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method: 'PUT', path: `/kv/${encodeURIComponent(key)}`, agent, headers: { 'Content-Length': Buffer.byteLength(value) } }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, pid: Number(res.headers['x-kv-pid'] ?? 0), build: String(res.headers['x-kv-build'] ?? '') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.setTimeout(timeoutMs, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'TIMEOUT' })));
    req.end(value);
  });
}

/**
 * A bounded background load of PUTs with unique keys: each acknowledged write (2xx) is remembered
 * with its value, each failure by cause, and each answer by the pid and build that sent it.
 */
export class Load {
  sent = 0;
  ok = 0;
  readonly failures: Failure[] = [];
  readonly acks = new Map<string, string>();
  /** `build` → answers. */
  readonly byBuild = new Map<string, number>();
  readonly byPid = new Map<number, number>();
  private stopping = false;
  private readonly loops: Array<Promise<void>> = [];
  private readonly agents: http.Agent[] = [];
  private readonly t0 = performance.now();
  private readonly o: Required<LoadOptions>;

  constructor(
    private readonly port: number,
    private readonly prefix: string,
    o: LoadOptions = {},
  ) {
    this.o = { keepAlive: 2, fresh: 2, paceMs: 15, maxRequests: 20_000, maxMs: 120_000, timeoutMs: 30_000, ...o };
  }

  start(): this {
    for (let i = 0; i < this.o.keepAlive; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.client(`ka${i}`, agent));
    }
    for (let i = 0; i < this.o.fresh; i++) this.loops.push(this.client(`new${i}`, false));
    return this;
  }

  get clients(): number {
    return this.o.keepAlive + this.o.fresh;
  }

  /** Waits until at least `n` more writes were acknowledged (the load is flowing). */
  async acked(n: number, ms = 30_000): Promise<void> {
    const target = this.ok + n;
    await until(`${n} acknowledged writes`, ms, () => (this.ok >= target ? true : undefined));
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(this.loops);
    for (const a of this.agents) a.destroy();
  }

  byCause(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const f of this.failures) out[f.cause] = (out[f.cause] ?? 0) + 1;
    return out;
  }

  private async client(name: string, agent: http.Agent | false): Promise<void> {
    let seq = 0;
    let lastPid: number | undefined;
    const end = this.t0 + this.o.maxMs;
    while (!this.stopping && this.sent < this.o.maxRequests && performance.now() < end) {
      const key = `${this.prefix}-${name}-${seq++}`;
      const value = `${key}:${Math.random().toString(36).slice(2)}`;
      this.sent++;
      try {
        const r = await put(this.port, key, value, agent, this.o.timeoutMs);
        lastPid = r.pid;
        this.byBuild.set(r.build, (this.byBuild.get(r.build) ?? 0) + 1);
        this.byPid.set(r.pid, (this.byPid.get(r.pid) ?? 0) + 1);
        if (r.status === 200 || r.status === 201) {
          this.ok++;
          this.acks.set(key, value);
        } else {
          this.failures.push({ cause: `http-${r.status}`, client: name, atMs: Math.round(performance.now() - this.t0), lastPid, build: r.build });
        }
      } catch (err) {
        const e = err as NodeJS.ErrnoException;
        this.failures.push({ cause: e.code ?? e.message, client: name, atMs: Math.round(performance.now() - this.t0), lastPid });
      }
      // Pacing keeps a shared 2-core machine usable; it synchronises nothing.
      await new Promise((r) => setTimeout(r, this.o.paceMs));
    }
  }
}

/**
 * Reads back every acknowledged write; returns the keys missing (404) or holding another value, as
 * `key (why)`. A read that fails on the network is retried on a new connection (a reset during the
 * check is not a lost write); one that fails three times is reported as unreadable.
 */
export async function verifyAcks(port: number, acks: Map<string, string>): Promise<string[]> {
  const bad: string[] = [];
  const keys = [...acks.keys()];
  let next = 0;
  const get = (key: string, agent: http.Agent | false): Promise<{ status: number; body: string } | string> =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/kv/${encodeURIComponent(key)}`, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        res.on('error', (err) => resolve(err.message));
      });
      req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
      req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
    });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const key = keys[next++]!;
      let r = await get(key, agent);
      for (let i = 0; i < 3 && typeof r === 'string'; i++) r = await get(key, false);
      if (typeof r === 'string') bad.push(`${key} (unreadable: ${r})`);
      else if (r.status !== 200) bad.push(`${key} (HTTP ${r.status})`);
      else if (r.body !== acks.get(key)) bad.push(`${key} (another value)`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  agent.destroy();
  return bad;
}

/** GET /info on a fresh connection: who serves. */
export function info(port: number, ms = 20_000): Promise<{ pid: number; build_id: string } | undefined> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/info', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => {
        try {
          resolve(res.statusCode === 200 ? (JSON.parse(body) as { pid: number; build_id: string }) : undefined);
        } catch {
          resolve(undefined);
        }
      });
    });
    req.on('error', () => resolve(undefined));
    req.setTimeout(ms, () => req.destroy());
  });
}

// --- the invariants -------------------------------------------------------------------------------

export type Promise_ = 'no-failures' | 'resets-only';

export interface Expect {
  /** The recorded outcome of the handoff (`none`: no handoff was started). */
  outcome: 'committed' | 'aborted' | 'interrupted' | 'none' | Array<'committed' | 'aborted'>;
  /** `null`: no reason; a string or RegExp: the reason kind; undefined: not checked. */
  reasonKind?: string | RegExp | null;
  rolledForward?: boolean;
  /** A reason the record must not give (e.g. S blaming a child for S's own pause). */
  reasonNot?: RegExp;
  /** Who serves once things settle: the incumbent, the successor, either of them, or a process started after both. */
  serves: 'incumbent' | 'successor' | 'other' | 'either';
  /**
   * What the design promises the load: no failed request at all, or only resets of connections the
   * faulted process had accepted (at most one per client).
   */
  load: Promise_;
}

export interface Actors {
  incumbentPid: number;
  successorPid: number | undefined;
  handoffId: string | undefined;
  /** The record the upgrade stream returned, when S survived. */
  record: HandoffRecord | undefined;
}

export class Figures {
  cases = 0;
  survived = 0;
  faults = 0;
  requests = 0;
  writes = 0;
  readonly failed: string[] = [];

  comment(t: Test, title: string): void {
    t.comment(`${title}: ${this.cases} cases run, ${this.faults} faults injected, ${this.survived} survived with every invariant, ${this.requests} requests sent, ${this.writes} acknowledged writes checked`);
    if (this.failed.length > 0) t.comment(`${title}: cases with a failed invariant: ${this.failed.join('; ')}`);
  }
}

/** Waits until S has no handoff in flight, an incumbent, and no child but it. */
export async function settled(c: Case, ms = 45_000): Promise<SupervisorStatus | undefined> {
  let last: SupervisorStatus | undefined;
  try {
    return await until('S settled: serving, nothing in flight, one child', ms, async () => {
      if (!c.s.alive) throw new Error('S exited');
      try {
        last = await status(c);
      } catch {
        return undefined;
      }
      if (last.state !== 'serving' || last.inflight !== null || last.incumbent === null) return undefined;
      const kids = childrenOf(c.s.pid).filter((k) => k.state !== 'Z');
      return kids.length === 1 && kids[0]!.pid === last.incumbent.pid ? last : undefined;
    }, 25);
  } catch {
    return undefined;
  }
}

function matches(v: string | undefined, want: string | RegExp): boolean {
  return typeof want === 'string' ? v === want : v !== undefined && want.test(v);
}

/** The record of a handoff: outcome, reason, roll-forward, as expected. */
export function checkRecord(t: Test, rec: HandoffRecord | undefined, e: Expect): void {
  if (e.outcome === 'none') return;
  if (!t.ok(rec, `a history record for the handoff (${String(e.outcome)})`)) return;
  const want = Array.isArray(e.outcome) ? e.outcome : [e.outcome];
  t.ok((want as string[]).includes(rec!.outcome), `outcome ${rec!.outcome}, expected ${want.join(' or ')} (reason ${rec!.reason ?? 'none'})`);
  if (e.reasonKind === null) t.equal(rec!.reason_kind, undefined, `no reason recorded (got ${rec!.reason ?? 'none'})`);
  else if (e.reasonKind !== undefined) t.ok(matches(rec!.reason_kind, e.reasonKind), `reason kind ${String(rec!.reason_kind)} matches ${String(e.reasonKind)} (reason: ${rec!.reason ?? 'none'})`);
  if (e.rolledForward !== undefined) t.equal(rec!.rolled_forward, e.rolledForward, `rolled_forward ${String(e.rolledForward)}`);
  if (e.reasonNot) t.notMatch(rec!.reason ?? '', e.reasonNot, `the reason is not ${String(e.reasonNot)} (${rec!.reason ?? 'none'})`);
}

/** The load saw only what the design allows. */
export function checkLoad(t: Test, load: Load, promise: Promise_, label = 'the load'): void {
  const causes = load.byCause();
  if (promise === 'no-failures') {
    const http = load.failures.filter((f) => f.build !== undefined).map((f) => `${f.cause} from ${f.build}`);
    t.same(causes, {}, `${label}: no failed request (${load.sent} sent, ${load.ok} acknowledged${http.length > 0 ? `; ${[...new Set(http)].join(', ')}` : ''})`);
  } else {
    const bad = load.failures.filter((f) => f.cause !== 'ECONNRESET' && f.cause !== 'EPIPE');
    t.same(bad.map((f) => f.cause), [], `${label}: only resets of the faulted process's connections (${JSON.stringify(causes)})`);
    t.ok(load.failures.length <= load.clients, `${label}: at most one reset per client (${load.failures.length} for ${load.clients} clients)`);
  }
}

/**
 * The invariants every case ends with, S alive: S settles with one incumbent that alone serves and
 * alone holds the lock (never two holders in the whole trace), every acknowledged write is there,
 * the record says what the design says, S has no other child (none unreaped), the load saw only
 * what the design allows, and the next handoff commits.
 */
export async function checkInvariants(t: Test, c: Case, load: Load, a: Actors, e: Expect, fig: Figures, foreign: number[] = []): Promise<void> {
  const st = await settled(c);
  t.ok(st, 'S settles: serving, nothing in flight, one child');
  await load.stop();
  fig.requests += load.sent;
  await serveCheck(t, c, a, e, st?.incumbent?.pid, foreign);
  const recs = await history(c).catch(() => historyFile(c));
  checkRecord(t, a.handoffId ? recs.find((r) => r.handoff_id === a.handoffId) : undefined, e);
  if (a.record && a.handoffId) t.equal(a.record.handoff_id, a.handoffId, 'the stream returned the record of this handoff');
  const kids = childrenOf(c.s.pid);
  t.same(
    kids.map((k) => k.pid),
    st?.incumbent ? [st.incumbent.pid] : [],
    `S's only child is the incumbent (children: ${JSON.stringify(kids)})`,
  );
  t.notOk(kids.some((k) => k.state === 'Z'), 'no unreaped child');
  checkLoad(t, load, e.load);
  const bad = await verifyAcks(c.port, load.acks);
  fig.writes += load.acks.size;
  t.same(bad.slice(0, 5), [], `every acknowledged write is there (${load.acks.size} checked, ${bad.length} missing)`);
  await nextHandoffCommits(t, c);
}

/** Exactly one kv process runs and answers, the expected one, and it alone holds the lock. */
export async function serveCheck(t: Test, c: Case, a: Actors, e: Expect, incumbent: number | undefined, foreign: number[] = []): Promise<number | undefined> {
  const who = await info(c.port);
  t.ok(who, 'a request succeeds');
  const live = kvPids(c).filter((p) => running(p) && !foreign.includes(p));
  t.same(live, who ? [who.pid] : [], `exactly one kv process runs, the one that answers (running: ${live.join(', ')})`);
  if (incumbent !== undefined && who) t.equal(who.pid, incumbent, 'it is S’s incumbent');
  if (who) {
    const want = { incumbent: [a.incumbentPid], successor: [a.successorPid], either: [a.incumbentPid, a.successorPid], other: undefined }[e.serves];
    if (want) t.ok(want.includes(who.pid), `${e.serves} serves (pid ${who.pid}; incumbent ${a.incumbentPid}, successor ${a.successorPid ?? '-'})`);
    else t.ok(who.pid !== a.incumbentPid && who.pid !== a.successorPid, `a new process serves (pid ${who.pid})`);
    t.equal(lockHolder(c), who.pid, 'it alone holds the lock');
  }
  const overlaps = checkLockTrace(readLockTrace(c.tracePath));
  t.same(
    overlaps.map((o) => `${o.first.pid} and ${o.second.pid}`),
    [],
    'never two holders of the lock',
  );
  return who?.pid;
}

/** The next handoff commits cleanly (from the process that serves now), and leaves one process serving with the lock. */
export async function nextHandoffCommits(t: Test, c: Case): Promise<void> {
  const before = (await info(c.port))?.pid;
  const build = `next-${kvPids(c).length}`;
  const up = upgrade(c, build);
  const rec = await up.result(60_000);
  t.equal(rec?.outcome, 'committed', `the next handoff commits${rec ? '' : ` (no record: ${up.error ?? 'none'})`}${rec?.reason ? ` (${rec.reason})` : ''}`);
  if (rec?.outcome !== 'committed') return;
  t.ok(rec.incumbent_pid === before && !rec.rolled_forward && rec.reason === undefined, `cleanly, from the process that served (incumbent ${rec.incumbent_pid}, serving before ${before ?? '-'}, rolled_forward ${rec.rolled_forward})`);
  const st = await settled(c);
  const who = await info(c.port);
  t.equal(who?.build_id, build, 'the new build serves');
  t.equal(st?.incumbent?.pid, who?.pid, 'as S’s incumbent');
  t.equal(lockHolder(c), who?.pid, 'holding the lock');
  t.same(checkLockTrace(readLockTrace(c.tracePath)).length, 0, 'never two holders of the lock');
}

/**
 * Runs one case as a subtest and counts it into the figures: it survived when every invariant held
 * (the subtest's final result, which tap knows only once the subtest ended).
 */
export async function runCase(t: Test, fig: Figures, name: string, fn: (t: Test) => Promise<void>): Promise<void> {
  const r = await t.test(name, fn);
  // Filtered out (--grep): not run.
  if (r === null || (r.count === 0 && r.skip > 0)) return;
  fig.cases++;
  fig.faults++;
  if (r?.ok) fig.survived++;
  else fig.failed.push(name);
}

/** A started S with its incumbent serving and a load flowing. */
export async function setup(t: Test, name: string, flags: string[], o: StartOptions = {}, lo: LoadOptions = {}, prepare?: (c: Case) => StartOptions): Promise<{ c: Case; load: Load; incumbentPid: number }> {
  const c = makeCase(t, name, flags);
  await startS(c, { ...o, ...(prepare?.(c) ?? {}) });
  const st = await status(c);
  const incumbentPid = st.incumbent!.pid;
  const load = new Load(c.port, `c${caseSeq}`, lo).start();
  t.teardown(() => load.stop());
  await load.acked(5);
  return { c, load, incumbentPid };
}

// --- S killed: orphans, a restart that must fail, a restart that must succeed ----------------------

/**
 * After S was killed: the orphans settle to exactly one serving process, which alone holds the lock
 * and has every acknowledged write; a new S on the same port fails with one clear line while that
 * orphan holds the port, and keeps the journal; once the orphan is stopped (SIGTERM, as systemd's
 * KillMode would), a new S starts cleanly, reports the interrupted handoff, and hands off.
 */
export async function afterSupervisorLoss(t: Test, c: Case, load: Load, a: Actors, e: Expect, fig: Figures, hbTimeoutMs: number): Promise<void> {
  const one = await eventually('the orphans settle to one running kv process', 2 * hbTimeoutMs + 20_000, () => kvPids(c).filter(running).length <= 1, 25);
  t.ok(one, `the orphans settle to one process (running: ${kvPids(c).filter(running).join(', ')})`);
  const survivor = await serveCheck(t, c, a, e, undefined);
  await load.stop();
  fig.requests += load.sent;
  checkLoad(t, load, e.load);
  const bad = await verifyAcks(c.port, load.acks);
  fig.writes += load.acks.size;
  t.same(bad.slice(0, 5), [], `every acknowledged write is there, on the orphan (${load.acks.size} checked, ${bad.length} missing)`);
  const journal = journalExists(c);
  t.equal(journal, e.outcome === 'interrupted', e.outcome === 'interrupted' ? 'the dead S left its journal' : 'no journal at rest');

  // A new S while the orphan holds the port: one line, exit 1, the journal kept, the orphan untouched.
  const s2 = spawnS(c, { port: c.port });
  const ex = await s2.exit(30_000);
  t.equal(ex?.code, 1, `a new S exits 1 while the orphan holds the port (${JSON.stringify(ex ?? 'still running')})`);
  if (!ex) {
    s2.proc.kill('SIGKILL');
    await s2.exited;
  }
  const plain = s2.plainLines();
  t.equal(plain.length, 1, `one line for the operator: ${JSON.stringify(plain)}`);
  t.match(plain[0] ?? '', /in use|EADDRINUSE/i, 'it says the address is in use');
  t.equal(journalExists(c), journal, 'the failed start kept the journal');
  if (survivor !== undefined) {
    t.ok(running(survivor), 'the orphan still runs');
    t.equal((await info(c.port))?.pid, survivor, 'and still serves');
  }

  // systemd's KillMode would stop the orphans: then a new S starts cleanly.
  for (const pid of kvPids(c)) if (running(pid)) signal(pid, 'SIGTERM');
  t.ok(await eventually('the orphans exit on SIGTERM', 30_000, () => kvPids(c).every((p) => !running(p)), 25), 'the orphans exit on SIGTERM');
  try {
    await startS(c, { port: c.port });
  } catch (err) {
    t.fail(`a new S starts once the orphans are gone: ${(err as Error).message.split('\n')[0]}`);
    return;
  }
  const st = await status(c);
  if (e.outcome === 'interrupted') {
    t.equal(st.recovered?.handoff_id, a.handoffId, 'the new S reports the interrupted handoff (status.recovered)');
    t.equal(st.recovered?.outcome, 'interrupted', 'as interrupted');
    const recs = (await history(c)).filter((r) => r.handoff_id === a.handoffId);
    t.same(
      recs.map((r) => r.outcome),
      ['interrupted'],
      'history records it once, as interrupted',
    );
  } else {
    t.equal(st.recovered, null, 'nothing to recover after a loss at rest');
  }
  t.notOk(journalExists(c), 'the journal is consumed by the start that succeeded');
  const after = await settled(c);
  t.ok(after, 'the new S settles');
  await serveCheck(t, c, a, { ...e, serves: 'other' }, after?.incumbent?.pid);
  const bad2 = await verifyAcks(c.port, load.acks);
  t.same(bad2.slice(0, 5), [], `every acknowledged write is there, under the new S (${bad2.length} missing)`);
  await nextHandoffCommits(t, c);
}

/** kv processes that ended without their own exit (killed by a signal), other than `killed`. */
export function killedBySignal(c: Case, killed: number[] = []): number[] {
  const ev = kvEvents(c);
  const exited = new Set(ev.filter((e) => e.event === 'exit').map((e) => e.pid));
  return kvPids(c).filter((p) => !running(p) && !exited.has(p) && !killed.includes(p));
}

/** Resolves after `ms` of real time: only for how long a hang lasts, never to wait for something. */
export function hangFor(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// --- the kill matrix ----------------------------------------------------------------------------------

export interface KillCase {
  victim: Party;
  /** A point of the handoff, or `at rest` (S only). */
  at: string;
  expect: Expect;
  /** After the successor dies past Ready: S must start a fresh incumbent at once. */
  freshIncumbent?: boolean;
}

/** SIGKILL of one party at one exact point, then every invariant. */
export async function runKill(t: Test, fig: Figures, k: KillCase): Promise<void> {
  const name = `SIGKILL the ${k.victim} ${k.at}`;
  const p = k.at === 'at rest' ? undefined : point(k.at);
  const hbTimeoutMs = flagMs(KILL_FLAGS, '--heartbeat-timeout');
  const { c, load, incumbentPid } = await setup(t, name, KILL_FLAGS, { kvExtra: p?.incumbentArgs ?? [] });
  let up: Upgrade | undefined;
  let held: Held = { stopped: new Set(), successorPid: undefined, at: monoNs() };
  if (p) {
    ({ up, held } = await reach(c, p, incumbentPid));
    await until('the handoff id from the event stream', 10_000, () => up!.id);
  }
  const victim = k.victim === 'incumbent' ? incumbentPid : k.victim === 'successor' ? held.successorPid : c.s.pid;
  if (!t.ok(victim, `${k.victim}'s pid is known`)) return;
  const killedAt = monoNs();
  // Unless S is frozen, the others go on only once S has reaped the victim: S knows of the death
  // before anything that follows it (the point stays exact).
  const reaped = k.victim !== 'supervisor' && !held.stopped.has(c.s.pid);
  t.ok(await killAndWait(victim!, 15_000, reaped), `${k.victim} (pid ${victim}) killed ${k.at}`);
  if (p) t.same(notExact(c, p, incumbentPid, killedAt), [], 'the fault landed at the point');
  release(held, [victim!]);
  const a: Actors = { incumbentPid, successorPid: held.successorPid, handoffId: up?.id, record: undefined };
  if (k.victim === 'supervisor') {
    await afterSupervisorLoss(t, c, load, a, k.expect, fig, hbTimeoutMs);
  } else {
    a.record = await up?.result(60_000);
    t.ok(a.record, `the upgrade returned its record (${up?.error ?? 'ok'})`);
    if (k.freshIncumbent) {
      const fresh = await waitKv(c, 'a fresh incumbent says hello', (e) => e.event === 'hello' && e.pid !== incumbentPid && e.pid !== held.successorPid && BigInt(e.t_ns) > killedAt, 8_000).catch(() => undefined);
      const gapMs = fresh ? Number((BigInt(fresh.t_ns) - killedAt) / 1_000_000n) : Infinity;
      t.ok(gapMs < 6_000, `a fresh incumbent serves at once: ${gapMs} ms after the successor died (the exit timeout is 10 s)`);
      const st = await status(c).catch(() => undefined);
      t.ok((st?.incumbent_restarts ?? 0) >= 1, `status counts the restart (${st?.incumbent_restarts ?? '?'})`);
      const entries = (await history(c).catch(() => [])) as Array<{ kind?: string }>;
      t.ok(entries.some((e) => e.kind === 'restart'), 'the history shows the restart');
    }
    await checkInvariants(t, c, load, a, k.expect, fig);
  }
}

// --- the hang matrix ----------------------------------------------------------------------------------

export interface HangCase {
  victim: Party;
  /** A point of the handoff, or `at rest`. */
  at: string;
  expect: Expect;
  /** The hung process was (or became) the incumbent between handoffs: S must report `incumbent_hung`. */
  hungIncumbent?: boolean;
  flags?: string[];
}

/** S says why it replaced a hung incumbent, wherever an operator looks: status, metrics, history. */
export async function checkHungReported(t: Test, c: Case, killed: boolean): Promise<void> {
  const seen = await eventually('status names incumbent_hung', killed ? 15_000 : 0, async () => JSON.stringify(await status(c).catch(() => ({}))).includes('incumbent_hung'), 50);
  t.ok(seen, 'status records the reason: incumbent_hung');
  t.match(await metrics(c).catch(() => ''), /incumbent_hung/, 'metrics record it');
  t.match(JSON.stringify(await history(c).catch(() => [])), /incumbent_hung/, 'history records it');
}

/**
 * SIGSTOP of one party (at rest, or held at a point of a handoff) for longer than the heartbeat
 * timeout, then SIGCONT. A hung child must be noticed and killed by S; a hung S must kill nobody.
 */
export async function runHang(t: Test, fig: Figures, h: HangCase): Promise<void> {
  const name = `SIGSTOP the ${h.victim} ${h.at}`;
  const p = h.at === 'at rest' ? undefined : point(h.at);
  const flags = h.flags ?? HANG_FLAGS;
  const hbTimeoutMs = flagMs(flags, '--heartbeat-timeout');
  const { c, load, incumbentPid } = await setup(t, name, flags, { kvExtra: p?.incumbentArgs ?? [] });
  let up: Upgrade | undefined;
  let held: Held = { stopped: new Set(), successorPid: undefined, at: monoNs() };
  if (p) {
    ({ up, held } = await reach(c, p, incumbentPid));
    await until('the handoff id from the event stream', 10_000, () => up!.id);
  }
  const victim = h.victim === 'incumbent' ? incumbentPid : h.victim === 'successor' ? held.successorPid : c.s.pid;
  if (!t.ok(victim, `${h.victim}'s pid is known`)) return;
  if (!stopped(victim!)) {
    signal(victim, 'SIGSTOP');
    await until(`${h.victim} stopped`, 10_000, () => (stopped(victim!) ? true : undefined));
  }
  release(held, [victim!]);
  if (h.victim === 'supervisor') {
    // The length of the pause is the fault itself: twice the heartbeat timeout.
    await hangFor(2 * hbTimeoutMs);
    signal(victim, 'SIGCONT');
  } else {
    const killed = await eventually(`S kills the hung ${h.victim}`, 2 * hbTimeoutMs + 10_000, () => !running(victim!), 25);
    t.ok(killed, `S notices that the ${h.victim} hangs and kills it`);
    // When S did not, the hang ends here.
    signal(victim, 'SIGCONT');
  }
  const a: Actors = { incumbentPid, successorPid: held.successorPid, handoffId: up?.id, record: undefined };
  if (up) {
    a.record = await up.result(60_000);
    t.ok(a.record, `the upgrade returned its record (${up.error ?? 'ok'})`);
  }
  if (h.hungIncumbent) await checkHungReported(t, c, h.victim === 'supervisor' || !running(victim!));
  await checkInvariants(t, c, load, a, h.expect, fig);
  if (h.victim === 'supervisor') {
    // What the children made of S's silence (a diagnostic for when an invariant fails).
    if (process.env.FAULTS_DEBUG) for (const l of c.s.logs()) if (l.level !== 20) t.comment(JSON.stringify({ msg: l.msg, ...Object.fromEntries(Object.entries(l).filter(([k]) => !['time', 'name', 'component', 'level', 'msg'].includes(k))) }).slice(0, 400));
    const lost = kvEvents(c).filter((e) => e.event === 'supervisor-lost');
    if (lost.length > 0) t.comment(`children that declared S lost: ${lost.map((e) => `${e.build}/${e.pid} in ${String(e['phase'])} (${String(e['reason'])})`).join('; ')}`);
    t.same(killedBySignal(c), [], 'no kv process was killed: S’s own pause is nobody’s silence');
    const st = await status(c).catch(() => undefined);
    t.equal(st?.incumbent_restarts, 0, `no incumbent restart, then or since (last failure: ${st?.last_failure?.reason ?? 'none'})`);
  }
}
