/**
 * `handoff demo` as a newcomer runs it: a real process, a real supervisor, the kv example under
 * load, each scenario's verdict; --keep; bad flags; and Ctrl-C (a real SIGINT to the demo's process
 * group) leaving no process and no temp dir behind. Shortened (few clients, a short load) but
 * otherwise the real thing.
 */

import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { childPids, procState } from '../lib/proc.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/handoff');
const DEMO_JS = path.join(ROOT, 'dist/src/cli/demo/index.js');

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Starts `node bin/handoff demo ...`; `detached` gives it a process group of its own (as a shell would). */
function start(args: string[], detached = false): { p: ChildProcess; done: Promise<Ran>; out: () => string; line: (re: RegExp) => Promise<string> } {
  const t0 = Date.now();
  // The demo's services must start as a user's would, without the test runner's loaders.
  const env = { ...process.env, NODE_OPTIONS: '' };
  const p = spawn(process.execPath, [BIN, 'demo', ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'], detached });
  let stdout = '';
  let stderr = '';
  const watchers: Array<{ re: RegExp; resolve: (l: string) => void }> = [];
  const check = (): void => {
    for (const w of watchers.splice(0)) {
      const m = stdout.split('\n').find((l) => w.re.test(l));
      if (m !== undefined) w.resolve(m);
      else watchers.push(w);
    }
  };
  p.stdout?.setEncoding('utf8').on('data', (c: string) => {
    stdout += c;
    check();
  });
  p.stderr?.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => p.kill('SIGKILL'), 150_000);
  const done = new Promise<Ran>((resolve) => {
    p.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
  const line = (re: RegExp): Promise<string> =>
    Promise.race([
      new Promise<string>((resolve) => {
        watchers.push({ re, resolve });
        check();
      }),
      done.then((r) => {
        throw new Error(`the demo ended (code ${String(r.code)}) before a line matching ${String(re)}:\n${r.stdout}\n${r.stderr}`);
      }),
    ]);
  return { p, done, out: () => stdout, line };
}

const run = (args: string[]): Promise<Ran> => start(args).done;

const SHORT = ['--clients', '6', '--duration', '2s'];

function tempDirOf(stdout: string): string | undefined {
  return /temp dir (\/\S+?),/.exec(stdout)?.[1];
}

function comment(t: { comment: (s: string) => void }, r: Ran): void {
  t.comment(r.stdout);
  if (r.stderr) t.comment(`stderr: ${r.stderr}`);
}

t.test('upgrade: handoffs under load, no failure, no refusal, every write survived, temp dir removed', async (t) => {
  t.ok(fs.existsSync(DEMO_JS), 'built');
  const r = await run(['--handoffs', '3', '--clients', '10', '--duration', '3s']);
  comment(t, r);
  t.equal(r.code, 0, 'exit code 0');
  t.match(r.stdout, /^ {2}failures +0$/m, '0 failures');
  t.match(r.stdout, /^ {2}refused +0$/m, '0 refused');
  t.match(r.stdout, /^ {2}writes survived +yes$/m, 'writes survived');
  const committed = r.stdout.split('\n').filter((l) => /^ {2}\d+ +committed /.test(l));
  t.equal(committed.length, 3, '3 handoffs committed');
  t.match(committed[2], /demo-4$/, 'the last build serves');
  const requests = /^ {2}requests +(\d+)/m.exec(r.stdout);
  t.ok(Number(requests?.[1]) > 100, `under load: ${requests?.[1] ?? '?'} requests`);
  t.match(r.stdout, /^ {2}PASS: 3 handoffs committed under load;/m);
  t.notMatch(r.stdout, /temp dir kept/i, 'the temp dir is removed after a clean run');
  const tmp = tempDirOf(r.stdout);
  t.ok(tmp, 'the temp dir is named');
  if (tmp) t.notOk(fs.existsSync(tmp), `${tmp} removed`);
  t.ok(r.ms < 90_000, `done in ${r.ms} ms`);
});

t.test('unhealthy: the handoff rolls back, the first build keeps serving, nothing fails', async (t) => {
  const r = await run(['--scenario', 'unhealthy', '--handoffs', '1', ...SHORT]);
  comment(t, r);
  t.equal(r.code, 0, 'exit code 0');
  t.match(r.stdout, /^ {2}1 +rolled back +.*demo-1$/m, 'the table shows the rollback and demo-1 serving');
  t.match(r.stdout, /successor_unhealthy/);
  t.match(r.stdout, /^ {2}failures +0$/m, '0 failures');
  t.match(r.stdout, /^ {2}refused +0$/m, '0 refused');
  t.match(r.stdout, /^ {2}PASS: 1 unhealthy build rolled back under load \(successor_unhealthy\); build demo-1 kept serving; no failed request/m);
});

t.test('crash: the incumbent is killed, a fresh one serves, the failures are counted and told', async (t) => {
  const r = await run(['--scenario', 'crash', '--handoffs', '1', ...SHORT]);
  comment(t, r);
  t.equal(r.code, 0, 'exit code 0');
  const row = /^ {2}1 +pid (\d+) \(demo-1\) +attempt 1 after \S+ ms +(\S+ ms) +(\d+) +\S+ ms +demo-1 \(pid (\d+)\)$/m.exec(r.stdout);
  t.ok(row, 'one crash row: killed, restarted, serving again');
  t.not(row?.[1], row?.[4], 'a fresh process serves');
  const failures = Number(/^ {2}failures +(\d+)$/m.exec(r.stdout)?.[1]);
  t.equal(Number(row?.[3]), failures, 'every failure is one the crash explains, and the table counts them');
  t.match(r.stdout, /^ {2}refused +0$/m, 'the kernel queue held new connections: 0 refused');
  t.match(r.stdout, /^ {2}writes survived +yes$/m, 'acknowledged writes are fsynced: they survive a kill');
  t.match(r.stdout, new RegExp(`^ {2}PASS: 1 crash of the incumbent under load, each followed by a fresh one; clients saw ${failures} failed request`, 'm'));
});

t.test('--keep keeps the temp dir after a clean run, and says where', async (t) => {
  const r = await run(['--handoffs', '1', '--keep', ...SHORT]);
  comment(t, r);
  t.equal(r.code, 0, 'exit code 0');
  const kept = /^ {2}temp dir kept \(--keep\): (\S+)$/m.exec(r.stdout)?.[1];
  t.ok(kept, 'named');
  if (!kept) return;
  t.teardown(() => fs.rmSync(kept, { recursive: true, force: true }));
  t.equal(kept, tempDirOf(r.stdout));
  t.ok(fs.existsSync(path.join(kept, 'supervisor.log')), 'its log is there');
  t.ok(fs.existsSync(path.join(kept, 'data')), 'its data dir is there');
});

t.test('bad values: one line, exit 2', async (t) => {
  const cases: Array<[string[], RegExp]> = [
    [['--scenario', 'nope'], /^handoff: --scenario: expected one of upgrade, unhealthy, crash, got 'nope'\n$/],
    [['--duration', 'soon'], /^handoff: --duration: invalid duration 'soon'/],
    [['--duration', '20m'], /^handoff: --duration: expected from 1s to 10m, got '20m'\n$/],
    [['--clients', '0'], /^handoff: --clients: expected a whole number from 1 to 200, got '0'\n$/],
    [['--handoffs', 'x'], /^handoff: --handoffs: expected a whole number/],
  ];
  for (const [args, re] of cases) {
    const r = await run(args);
    t.equal(r.code, 2, `${args.join(' ')}: exit 2`);
    t.match(r.stderr, re, `${args.join(' ')}: ${r.stderr.trim()}`);
    t.equal(r.stderr.split('\n').filter(Boolean).length, 1, 'one line');
    t.equal(r.stdout, '', 'nothing on stdout');
  }
});

/** Every process of the tree under `pid`, the root included. */
function tree(pid: number): number[] {
  return [pid, ...childPids(pid).flatMap(tree)];
}

/** Pids of processes (not zombies) in process group `pgid`, or whose command line names `text`. */
function leftovers(pgid: number, text: string): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (f[0] === 'Z') continue;
      const cmd = fs.readFileSync(`/proc/${d}/cmdline`, 'utf8');
      if (Number(f[2]) === pgid || cmd.includes(text)) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

t.test('Ctrl-C (SIGINT to the process group) mid-run: a short line, exit 130, no process and no temp dir left', async (t) => {
  const d = start(['--scenario', 'upgrade', '--handoffs', '3', '--clients', '6', '--duration', '60s'], true);
  const pid = d.p.pid ?? 0;
  t.teardown(() => {
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      // already gone, as it should be
    }
  });
  await d.line(/^load: /);
  const tmp = tempDirOf(d.out());
  t.ok(tmp && fs.existsSync(tmp), 'the temp dir exists while the demo runs');
  const before = tree(pid);
  t.ok(before.length >= 3, `demo, supervisor host and kv running: ${before.join(' ')}`);
  process.kill(-pid, 'SIGINT');
  const r = await d.done;
  comment(t, r);
  t.equal(r.code, 130, 'exit 130');
  t.match(r.stdout, /^handoff demo: interrupted \(SIGINT\): load, supervisor and services stopped; temp dir removed$/m, 'a short line');
  t.notMatch(r.stdout, /PASS|FAIL/, 'no table');
  if (tmp) t.notOk(fs.existsSync(tmp), `${tmp} removed`);
  const alive = before.filter((p) => procState(p) !== undefined && procState(p) !== 'Z');
  t.same(alive, [], 'no process of its tree remains');
  const left = leftovers(pid, tmp ?? '/nonexistent-demo-dir');
  const describe = (p: number): string => {
    try {
      return `${p}: ${fs.readFileSync(`/proc/${p}/stat`, 'utf8').trim()} ${fs.readFileSync(`/proc/${p}/cmdline`, 'utf8').replace(/\0/g, ' ')}`;
    } catch {
      return `${p}: gone`;
    }
  };
  t.same(left, [], `no process in its group or naming its temp dir${left.length > 0 ? `: ${left.map(describe).join('; ')}` : ''}`);
});
