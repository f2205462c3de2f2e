/**
 * The fault matrix: setup mistakes. A command that cannot start (no `--listen` for a service that
 * needs one, a missing program, a bad flag, an open() that throws on cold start), a command that
 * stops starting after it has served, and a successor that dies before Hello.
 *
 * What the design promises (systemd's start limit is the model): when the first cold start has never
 * served and fails 5 times in a row (`--start-limit`), `handoff run` exits 1 with one line naming
 * the last failure's reason, and leaves no process behind. Once something has served, S keeps
 * restarting with backoff, and status (`last_failure`: reason, reason_kind, a bounded tail of the
 * child's stderr), the log and the metrics say why; connections wait in the kernel queue meanwhile.
 * A successor that dies before Hello is recorded with its exit status and its stderr tail.
 */

import fs from 'node:fs';
import path from 'node:path';
import t, { type Test } from 'tap';
import {
  Figures,
  KILL_FLAGS,
  KV,
  checkInvariants,
  eventually,
  killAndWait,
  kvPids,
  makeCase,
  metrics,
  running,
  setup,
  spawnS,
  status,
  upgrade,
  runCase,
  type Actors,
  type Case,
  type StartOptions,
} from './harness.js';

const fig = new Figures();

interface Mistake {
  name: string;
  start: (c: Case) => StartOptions;
  /** What the one line must name. */
  says: RegExp;
  /** Cold starts expected before giving up (a range when refusing at once is as good). */
  attempts: [number, number];
  /** Exit codes that are right: 1, or 2 for a mistake `run` can see before it starts anything. */
  codes?: number[];
  extra?: string[];
}

/** A script whose interpreter does not exist: it passes any check of the path, and fails at exec. */
function noInterpreter(c: Case): StartOptions {
  const script = path.join(c.dir, 'kv-script');
  fs.writeFileSync(script, '#!/nonexistent/interpreter\n', { mode: 0o755 });
  return { command: [script, '--data', c.dataDir] };
}

const MISTAKES: Mistake[] = [
  // The kv needs an `http` listener; S was given none.
  { name: 'no --listen for a service that needs one', start: () => ({ listen: false }), says: /code 1\b/, attempts: [5, 5] },
  // `run` may refuse a path that does not exist before it starts anything (usage error, exit 2).
  { name: 'a missing program', start: () => ({ command: ['/nonexistent/kv-missing', '--data', 'x'] }), says: /ENOENT|not found|could not start/i, attempts: [0, 5], codes: [1, 2] },
  { name: 'a program whose interpreter is missing', start: noInterpreter, says: /ENOENT|not found|could not start/i, attempts: [5, 5] },
  { name: 'a bad flag to the kv', start: () => ({ kvExtra: ['--bogus'] }), says: /code 2\b/, attempts: [5, 5] },
  { name: 'open() throws on cold start', start: () => ({ kvExtra: ['--fault', 'open-fail'] }), says: /code 1\b/, attempts: [5, 5] },
  { name: 'the start limit is configurable', start: () => ({ kvExtra: ['--bogus'] }), says: /code 2\b/, attempts: [2, 2], extra: ['--start-limit', '2'] },
];

async function givesUp(t: Test, m: Mistake): Promise<void> {
  const c = makeCase(t, m.name, KILL_FLAGS);
  const s = spawnS(c, { ...m.start(c), port: 0, extra: m.extra ?? [] });
  // Five quick failures take seconds; the bound is for a slow machine (five Node start-ups at
  // load 16 on two cores took over 20 s in CI).
  const ex = await s.exit(90_000);
  const codes = m.codes ?? [1];
  t.ok(ex?.code !== undefined && ex.code !== null && codes.includes(ex.code), `handoff run exits ${codes.join(' or ')} (${JSON.stringify(ex ?? 'still running after 90 s')})`);
  if (!ex) {
    s.proc.kill('SIGTERM');
    if (!(await s.exit(20_000))) s.proc.kill('SIGKILL');
    await s.exited;
  }
  const lines = s.plainLines();
  t.equal(lines.length, 1, `one line for the operator: ${JSON.stringify(lines)}`);
  t.match(lines[0] ?? '', m.says, `naming the last failure: ${String(m.says)}`);
  const attempts = s.logs().filter((l) => l.msg === 'spawned' && l['role'] === 'cold-start').length;
  const [lo, hi] = m.attempts;
  t.ok(attempts >= lo && attempts <= hi, `gave up after ${lo === hi ? lo : `${lo} to ${hi}`} cold starts in a row (${attempts})`);
  t.same(kvPids(c).filter(running), [], 'no process left behind');
}

for (const m of MISTAKES) await runCase(t, fig, `a first cold start that cannot start: ${m.name}`, (t) => givesUp(t, m));

await runCase(t, fig, 'a command that stops starting after it has served: S keeps trying and says why', async (t) => {
  const name = 'stops starting after it served';
  // A wrapper, like a real deployment's start script: it fails (with a lot of stderr) while the marker exists.
  const prepare = (c: Case): StartOptions => {
    const script = path.join(c.dir, 'kv-wrapper.sh');
    fs.writeFileSync(
      script,
      [
        '#!/bin/sh',
        `if [ -e '${path.join(c.dir, 'broken')}' ]; then`,
        "  head -c 100000 /dev/zero | tr '\\0' x >&2",
        '  echo >&2',
        "  echo 'kv-wrapper: the configuration is missing' >&2",
        '  exit 3',
        'fi',
        `exec '${process.execPath}' '${KV}' "$@"`,
        '',
      ].join('\n'),
    );
    return { command: ['/bin/sh', script, '--data', c.dataDir, '--build-id', 'v1'], extra: ['--allow-exec', process.execPath] };
  };
  // setup() needs the case directory first: build the case through it, with the wrapper as the command.
  let c!: Case;
  const started = await setup(t, name, KILL_FLAGS, {}, {}, (cc) => {
    c = cc;
    return prepare(cc);
  });
  const { load, incumbentPid } = started;
  fs.writeFileSync(path.join(c.dir, 'broken'), '');
  t.ok(await killAndWait(incumbentPid), 'the incumbent is killed');
  const spawnedBefore = c.s.logs().filter((l) => l.msg === 'spawned' && l['role'] === 'cold-start').length;
  const failing = await eventually('more failed cold starts than the start limit', 30_000, () => c.s.logs().filter((l) => l.msg === 'spawned' && l['role'] === 'cold-start').length >= spawnedBefore + 6, 50);
  t.ok(failing, 'S goes on past the start limit: something has served');
  t.ok(c.s.alive, 'S is still running');
  const lf = (await status(c).catch(() => undefined))?.last_failure;
  t.ok(lf, `status has last_failure (${JSON.stringify(lf ?? null).slice(0, 300)})`);
  // The reason names how the process ended (its exit status, or S's own reason when it saw one).
  t.match(`${lf?.reason ?? ''} ${lf?.exit ?? ''}`, /code 3\b/, 'it names the exit status');
  t.type(lf?.reason_kind, 'string', 'and a reason kind');
  const tail = (lf?.stderr_tail ?? []).join('\n');
  t.match(tail, /the configuration is missing/, 'its stderr tail has the last line the command wrote');
  t.ok(tail.length < 65_536, `the tail is bounded (${tail.length} of 100,000+ bytes)`);
  t.ok(
    c.s.logs().some((l) => JSON.stringify(l).includes('the configuration is missing')),
    'the log carries the stderr tail',
  );
  t.match(await metrics(c).catch(() => ''), new RegExp(lf?.reason_kind ?? 'last_failure'), 'the metrics carry the reason');

  // Fixed: the next cold start serves; clients only waited in the kernel queue.
  fs.rmSync(path.join(c.dir, 'broken'));
  const a: Actors = { incumbentPid, successorPid: undefined, handoffId: undefined, record: undefined };
  await checkInvariants(t, c, load, a, { outcome: 'none', serves: 'other', load: 'resets-only' }, fig);
});

await runCase(t, fig, 'a successor that dies before Hello: its record has its exit status and stderr', async (t) => {
  const { c, load, incumbentPid } = await setup(t, 'successor dies before Hello', KILL_FLAGS);
  const up = upgrade(c, 'v2', ['--bogus']);
  const rec = await up.result(60_000);
  t.equal(rec?.outcome, 'aborted', `aborted (${rec?.reason ?? up.error ?? 'no record'})`);
  t.equal(rec?.reason_kind, 'successor_failed');
  const text = JSON.stringify(rec ?? {});
  t.match(text, /code 2\b/, 'the record names the exit code');
  t.match(text, /Unknown option '--bogus'/, 'and the stderr tail');
  const a: Actors = { incumbentPid, successorPid: rec?.successor_pid ?? undefined, handoffId: up.id, record: rec };
  await checkInvariants(t, c, load, a, { outcome: 'aborted', reasonKind: 'successor_failed', serves: 'incumbent', load: 'no-failures' }, fig);
});

fig.comment(t, 'setup mistakes');
