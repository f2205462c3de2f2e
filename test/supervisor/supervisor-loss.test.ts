/**
 * S dies at any point: the children follow the S-loss rules and never two processes write the data
 * directory. S runs in its own process here (a fixture) so that it can be SIGKILLed mid-handoff.
 */

import t, { type Test } from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { checkLockTrace } from '../../src/shared/lock.js';
import type { HandoffRecord } from '../../src/supervisor/types.js';
import { ROOT, cleanup, info, isAlive, kvArgs, lockHolder, makeEnv, readTrace, request, supervisorOptions, type Env } from './harness.js';

const FIXTURE = path.join(ROOT, 'test/supervisor/fixtures/supervisor.mjs');

interface Line {
  ev: string;
  phase?: string;
  successor_pid?: number | null;
  status?: { listeners: Array<{ address: string }>; incumbent: { pid: number } | null };
  record?: HandoffRecord;
}

class RemoteSupervisor {
  readonly proc: ChildProcess;
  private readonly lines: Line[] = [];
  private readonly waiters: Array<{ pred: (l: Line) => boolean; resolve: (l: Line) => void }> = [];

  constructor(env: Env, kvExtra: string[] = []) {
    const opts = { ...supervisorOptions(env, {}, kvExtra), logPath: env.logPath };
    this.proc = spawn(process.execPath, [FIXTURE, JSON.stringify(opts)], { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, NODE_OPTIONS: '' } });
    readline.createInterface({ input: this.proc.stdout! }).on('line', (raw) => {
      const l = JSON.parse(raw) as Line;
      this.lines.push(l);
      for (const w of [...this.waiters]) {
        if (w.pred(l)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(l);
        }
      }
    });
  }

  wait(pred: (l: Line) => boolean): Promise<Line> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve) => this.waiters.push({ pred, resolve }));
  }

  upgrade(args: string[]): void {
    this.proc.stdin!.write(`upgrade ${JSON.stringify({ command: process.execPath, args })}\n`);
  }

  async kill(): Promise<void> {
    const exited = new Promise((r) => this.proc.once('exit', r));
    this.proc.kill('SIGKILL');
    await exited;
  }
}

/** Resolves when `pid` is gone; S is dead, so nobody reaps for us and we can only look. */
async function gone(pid: number, timeoutMs = 20_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (!isAlive(pid) || isZombie(pid)) return true;
    await new Promise((r) => setTimeout(r, 25));
  }
  return false;
}

/** An orphan that exited but was not reaped yet counts as gone. */
function isZombie(pid: number): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.charAt(stat.lastIndexOf(')') + 2) === 'Z';
  } catch {
    return true;
  }
}

async function started(t: Test, kvExtra: string[] = []): Promise<{ env: Env; s: RemoteSupervisor; port: number; incumbentPid: number; orphans: Set<number> }> {
  const env = makeEnv('handoff-sloss-');
  const s = new RemoteSupervisor(env, kvExtra);
  const orphans = new Set<number>();
  t.teardown(async () => {
    if (s.proc.exitCode === null && s.proc.signalCode === null) await s.kill();
    for (const pid of orphans) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    cleanup(env);
  });
  const ready = await s.wait((l) => l.ev === 'ready');
  const port = Number(/:(\d+)$/.exec(ready.status!.listeners[0]!.address)![1]);
  const incumbentPid = ready.status!.incumbent!.pid;
  orphans.add(incumbentPid);
  t.equal((await request(port, 'PUT', '/kv/k', 'v1')).status < 300, true, 'write acknowledged');
  return { env, s, port, incumbentPid, orphans };
}

t.test('S dies at rest: the incumbent keeps serving', async (t) => {
  const c = await started(t);
  await c.s.kill();
  t.equal((await info(c.port)).pid, c.incumbentPid, 'the incumbent serves without its supervisor');
  t.equal((await request(c.port, 'GET', '/kv/k')).body, 'v1');
  t.equal(lockHolder(c.env), c.incumbentPid);
});

t.test('S dies during drain: the successor (no Begin) exits, the incumbent reopens accept', async (t) => {
  const c = await started(t, ['--fault', 'slow-drain']);
  c.s.upgrade(kvArgs(c.env));
  const drain = await c.s.wait((l) => l.ev === 'handoff' && l.phase === 'drain');
  const successorPid = drain.successor_pid!;
  c.orphans.add(successorPid);
  await c.s.kill();
  t.ok(await gone(successorPid), 'the successor exits');
  t.equal((await info(c.port)).pid, c.incumbentPid, 'the incumbent serves again');
  t.equal((await request(c.port, 'GET', '/kv/k')).body, 'v1');
  t.equal(lockHolder(c.env), c.incumbentPid);
  t.same(checkLockTrace(readTrace(c.env)), []);
});

t.test('S dies right after Begin: exactly one of the incumbent and the successor serves, never both writing', async (t) => {
  const c = await started(t);
  c.s.upgrade(kvArgs(c.env));
  const begin = await c.s.wait((l) => l.ev === 'handoff' && l.phase === 'begin');
  const successorPid = begin.successor_pid!;
  c.orphans.add(successorPid);
  await c.s.kill();
  // The incumbent sealed: it tries to retake the lock for a bounded time and exits when the
  // successor holds it (or the successor loses).
  const until = Date.now() + 30_000;
  while (Date.now() < until && isAlive(c.incumbentPid) && !isZombie(c.incumbentPid) && isAlive(successorPid) && !isZombie(successorPid)) await new Promise((r) => setTimeout(r, 25));
  const incumbentLives = isAlive(c.incumbentPid) && !isZombie(c.incumbentPid);
  const successorLives = isAlive(successorPid) && !isZombie(successorPid);
  t.equal(Number(incumbentLives) + Number(successorLives), 1, `exactly one survives (incumbent ${incumbentLives}, successor ${successorLives})`);
  const survivor = incumbentLives ? c.incumbentPid : successorPid;
  t.equal((await info(c.port)).pid, survivor, 'the survivor serves');
  t.equal((await request(c.port, 'GET', '/kv/k')).body, 'v1', 'the acknowledged write survived');
  t.equal(lockHolder(c.env), survivor, 'the survivor holds the lock');
  t.same(checkLockTrace(readTrace(c.env)), [], 'never two holders');
});

t.test('a restarted S reports the interrupted handoff', async (t) => {
  const c = await started(t, ['--fault', 'slow-drain']);
  c.s.upgrade(kvArgs(c.env));
  const drain = await c.s.wait((l) => l.ev === 'handoff' && l.phase === 'drain');
  c.orphans.add(drain.successor_pid!);
  await c.s.kill();
  // The orphaned incumbent would keep the lock; stop both before a new supervisor starts.
  for (const pid of c.orphans) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  for (const pid of c.orphans) await gone(pid);
  fs.rmSync(c.env.lockPath, { recursive: true, force: true });
  const s2 = new RemoteSupervisor(c.env);
  t.teardown(async () => {
    if (s2.proc.exitCode === null) await s2.kill();
  });
  const ready = await s2.wait((l) => l.ev === 'ready');
  c.orphans.add(ready.status!.incumbent!.pid);
  const history = fs.readFileSync(path.join(c.env.stateDir, 'history.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as HandoffRecord);
  t.equal(history.at(-1)?.outcome, 'interrupted');
  t.match(history.at(-1)?.reason, /phase drain/);
});
