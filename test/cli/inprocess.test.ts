/**
 * The CLI in-process (runCli) against an admin server with a scripted supervisor behind it: output
 * formats, exit codes, usage errors. The real supervisor is exercised in e2e.test.ts.
 */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { runCli, type CliIo } from '../../src/cli/main.js';
import { ProgressRenderer, renderHistory, renderStatus } from '../../src/cli/render.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import { startAdminServer } from '../../src/supervisor/admin.js';
import { event, FakeSupervisor, inProgress, NotAllowed, record } from '../admin/fake.js';

class Sink {
  text = '';
  isTTY: boolean;
  constructor(tty = false) {
    this.isTTY = tty;
  }
  write(s: string): boolean {
    this.text += s;
    return true;
  }
}

interface Run {
  code: number;
  out: string;
  err: string;
}

async function cli(args: string[], env: NodeJS.ProcessEnv = {}, tty = false): Promise<Run> {
  const stdout = new Sink(tty);
  const stderr = new Sink();
  const io: CliIo = { stdout, stderr, env, cwd: '/work' };
  const code = await runCli(['node', 'handoff', ...args], io);
  return { code, out: stdout.text, err: stderr.text };
}

async function serve(t: Test): Promise<{ sup: FakeSupervisor; sock: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcli-'));
  const sock = path.join(dir, 'admin.sock');
  const sup = new FakeSupervisor();
  const admin = await startAdminServer(sup, { socketPath: sock, logger: pino({ level: 'silent' }) });
  t.teardown(async () => {
    await admin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { sup, sock };
}

t.test('help shows every run option with its default and variable', async (t) => {
  const r = await cli(['run', '--help']);
  t.equal(r.code, 0);
  for (const flag of ['--name', '--log-format', '--listen', '--lock', '--state-dir', '--admin-socket', '--admin-group', '--allow-exec', '--hello-timeout', '--drain-grace', '--deadline', '--exit-timeout', '--kill-after', '--heartbeat ', '--heartbeat-timeout', '--restart-initial', '--restart-max', '--log-level', '--verbose', '--config']) {
    t.match(r.out, flag, flag);
  }
  const flat = r.out.replace(/\s+/g, ' ');
  t.match(flat, '(default: 25s; env: HANDOFF_DRAIN_GRACE)');
  t.match(flat, '(default: 60s; env: HANDOFF_DEADLINE)');
  t.match(flat, '(default: 5s; env: HANDOFF_HELLO_TIMEOUT)');
  t.match(flat, '(default: 1s; env: HANDOFF_HEARTBEAT)');
  t.match(flat, '(default: 250ms; env: HANDOFF_RESTART_INITIAL)');
  t.match(flat, '$STATE_DIRECTORY when systemd sets it, else $XDG_STATE_HOME/handoff/<name>');
  t.match(flat, '$RUNTIME_DIRECTORY/handoff.sock when systemd sets it, else $XDG_RUNTIME_DIR/handoff/<name>.sock');
  t.match(flat, "(default: the command's basename; env: HANDOFF_NAME)");
  t.match(flat, '(default: pretty on a terminal, else json; env: HANDOFF_LOG_FORMAT)');
  t.match(flat, 'a bare number is an error, except 0');
  t.notMatch(flat, './handoff.sock', 'nothing defaults to the current directory');
  t.equal(r.err, '');
  for (const cmd of ['upgrade', 'status', 'abort', 'history', 'demo']) {
    const h = await cli([cmd, '--help']);
    t.equal(h.code, 0, `${cmd} --help`);
    t.match(h.out, `Usage: handoff ${cmd}`);
  }
  const top = await cli(['--help']);
  t.equal(top.code, 0);
  for (const cmd of ['run', 'upgrade', 'status', 'abort', 'history', 'demo']) t.match(top.out, cmd);
  const v = await cli(['--version']);
  t.equal(v.code, 0);
  t.match(v.out, /^\d+\.\d+\.\d+\n$/);
});

t.test('bad flags: one line on stderr and exit 2', async (t) => {
  const cases = [['status', '--bogus'], ['upgrade', '--deadline'], ['frobnicate'], ['history', '-n'], ['run', '--listen']];
  for (const args of cases) {
    const r = await cli(args);
    t.equal(r.code, 2, args.join(' '));
    t.equal(r.out, '');
    t.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
    t.match(r.err, /^handoff: /);
  }
  t.match((await cli(['status', '--bogus'])).err, "unknown option '--bogus'");
  const none = await cli([]);
  t.equal(none.code, 2, 'no command is a usage error');
  const dur = await cli(['upgrade', '--deadline', 'soon', '--admin-socket', '/nonexistent/x.sock']);
  t.equal(dur.code, 2);
  t.match(dur.err, /^handoff: --deadline: invalid duration 'soon'/);
  const n = await cli(['history', '-n', 'zero']);
  t.equal(n.code, 2);
  const run = await cli(['run', '--drain-grace', 'x', '--', 'node']);
  t.equal(run.code, 2);
  t.match(run.err, /^handoff: --drain-grace: invalid duration 'x'/);
  const bare = await cli(['run', '--drain-grace', '30', '--', process.execPath]);
  t.equal(bare.code, 2, 'a duration without a unit');
  t.equal(bare.err, "handoff: --drain-grace: duration '30' has no unit: write 30ms or 30s (units: ms, s, m, h)\n");
  const bareUpgrade = await cli(['upgrade', '--hello-timeout', '30', '--admin-socket', '/nonexistent/x.sock']);
  t.equal(bareUpgrade.code, 2);
  t.match(bareUpgrade.err, /^handoff: --hello-timeout: duration '30' has no unit/);
  const listen = await cli(['run', '--listen', 'http=tcp://localhost:80', '--', process.execPath]);
  t.equal(listen.code, 2);
  t.match(listen.err, /^handoff: --listen: bad listener/);
  const port = await cli(['demo', '--port', '99999']);
  t.equal(port.code, 2);
});

t.test('no supervisor to talk to: exit 2 with a hint', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hcli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  for (const cmd of [['status'], ['upgrade'], ['abort'], ['history']]) {
    const r = await cli([...cmd, '--admin-socket', path.join(dir, 'none.sock')]);
    t.equal(r.code, 2, cmd.join(' '));
    t.match(r.err, /^handoff: no supervisor at .*none\.sock \(no such socket: is 'handoff run' running\?/);
    t.equal(r.err.trim().split('\n').length, 1);
  }
  const viaEnv = await cli(['status'], { HANDOFF_ADMIN_SOCKET: path.join(dir, 'env.sock') });
  t.match(viaEnv.err, /env\.sock/);
  const viaRuntime = await cli(['status'], { RUNTIME_DIRECTORY: dir });
  t.match(viaRuntime.err, `${dir}/handoff.sock`);
  // Root's instances live in /run/handoff whatever XDG_RUNTIME_DIR says.
  const base = process.getuid?.() === 0 ? '/run/handoff' : `${dir}/handoff`;
  const viaName = await cli(['status', '--name', 'kv'], { XDG_RUNTIME_DIR: dir });
  t.match(viaName.err, `no supervisor at ${base}/kv.sock`, '--name picks the instance');
  if (!fs.existsSync(base)) {
    const noName = await cli(['status'], { XDG_RUNTIME_DIR: dir });
    t.equal(noName.code, 2);
    t.equal(noName.err, `handoff: no supervisor running (no admin socket in ${base}): is 'handoff run' running? pass --name or --admin-socket\n`);
  }
  const verbose = await cli(['status', '--verbose', '--admin-socket', path.join(dir, 'none.sock')]);
  t.match(verbose.err, /\n\s+at /, '--verbose adds the stack');
  fs.writeFileSync(path.join(dir, 'file'), '');
  const notSock = await cli(['status', '--admin-socket', path.join(dir, 'file')]);
  t.equal(notSock.code, 2);
});

t.test('status: human and JSON', async (t) => {
  const { sock, sup } = await serve(t);
  let r = await cli(['status', '--admin-socket', sock]);
  t.equal(r.code, 0);
  t.match(r.out, /^supervisor +pid \d+, serving$/m);
  t.match(r.out, /^incumbent +pid 100, build v1, up 1m 01s$/m);
  t.match(r.out, /^listeners +http {2}tcp:\/\/127\.0\.0\.1:8080$/m);
  t.match(r.out, /^handoff +none in flight$/m);
  t.match(r.out, /^last +no handoff yet$/m);
  sup.inflight = { handoff_id: '0123456789abcdef', phase: 'seal', started_at: '2026-01-01T00:00:00.000Z', successor_pid: 7, elapsed_ms: 1500 };
  r = await cli(['status', '--json'], { HANDOFF_ADMIN_SOCKET: sock });
  t.equal(r.code, 0);
  t.match(JSON.parse(r.out), { state: 'serving', inflight: { phase: 'seal', successor_pid: 7 } });
  r = await cli(['status', '--admin-socket', sock]);
  t.match(r.out, /^handoff +01234567 in phase seal for 1\.50 s \(successor pid 7\)$/m);
});

t.test('history: table and JSON, -n passed as limit', async (t) => {
  const { sock, sup } = await serve(t);
  let r = await cli(['history', '--admin-socket', sock]);
  t.equal(r.code, 0);
  t.match(r.out, /^ENDED +ID +OUTCOME +TOTAL +PHASES +BUILD +REASON$/m);
  t.match(r.out, /committed +1\.50 s +hello=100ms drain=300ms seal=400ms begin=500ms commit=200ms/);
  t.match(r.out, /aborted .*successor_unhealthy: no$/m);
  r = await cli(['history', '-n', '1', '--json', '--admin-socket', sock]);
  t.equal((JSON.parse(r.out) as unknown[]).length, 1);
  t.same(sup.historyLimits, [10, 1]);
  sup.records = [];
  r = await cli(['history', '--admin-socket', sock]);
  t.equal(r.out, 'no handoffs yet\n');
});

t.test('abort: 0 when aborted, 1 when there is nothing to abort', async (t) => {
  const { sock, sup } = await serve(t);
  sup.inflight = { handoff_id: 'h1', phase: 'drain', started_at: '', successor_pid: 1, elapsed_ms: 1 };
  sup.abortResult = true;
  let r = await cli(['abort', '--reason', 'wrong build', '--admin-socket', sock]);
  t.equal(r.code, 0);
  t.match(r.out, /aborted handoff h1 \(in phase drain\)/);
  t.same(sup.aborts, ['wrong build']);
  sup.abortResult = false;
  sup.inflight = null;
  r = await cli(['abort', '--admin-socket', sock]);
  t.equal(r.code, 1);
  t.equal(r.err, 'handoff: no handoff in flight: nothing to abort\n');
  sup.inflight = { handoff_id: 'h1', phase: 'commit', started_at: '', successor_pid: 1, elapsed_ms: 1 };
  r = await cli(['abort', '--admin-socket', sock]);
  t.equal(r.code, 1);
  t.match(r.err, /past the point where it can be aborted/);
});

t.test('upgrade: exit codes and the three output modes', async (t) => {
  const { sock, sup } = await serve(t);
  const events = [
    event('spawn', { detail: 'successor pid 200' }),
    event('hello', { elapsed_ms: 1 }),
    event('drain', { elapsed_ms: 101, previous: { phase: 'hello', ms: 100 } }),
    event('seal', { elapsed_ms: 401, previous: { phase: 'drain', ms: 300 } }),
    event('seal', { elapsed_ms: 500, progress: { shards_sealed: 2, shards_total: 4, last_revision: '10' } }),
    event('seal', { elapsed_ms: 600, progress: { shards_sealed: 4, shards_total: 4, last_revision: '12' } }),
    event('begin', { elapsed_ms: 801, previous: { phase: 'seal', ms: 400 } }),
    event('commit', { elapsed_ms: 1301, previous: { phase: 'begin', ms: 500 } }),
    event('done', { elapsed_ms: 1501, outcome: 'committed' }),
  ];
  sup.script = { events, result: record() };
  let r = await cli(['upgrade', '--admin-socket', sock]);
  t.equal(r.code, 0);
  t.match(r.out, /handoff 0f1e2d3c started: successor pid 200/);
  t.match(r.out, /phase drain \(hello took 100 ms\)/);
  t.match(r.out, /seal progress 2\/4 shards/);
  t.match(r.out, /seal progress 4\/4 shards/);
  t.match(r.out, /handoff 0f1e2d3c committed in 1\.50 s \(hello 100 ms, drain 300 ms, seal 400 ms, begin 500 ms, commit 200 ms\)\n$/);
  // eslint-disable-next-line no-control-regex -- the CLI's ANSI escape codes
  t.notMatch(r.out, /\x1b/, 'no escape codes off a terminal');

  r = await cli(['upgrade', '--json', '--exec', 'bin/kv', '--deadline', '30s', '--hello-timeout', '45s', '--admin-socket', sock, '--', '--data', '/d']);
  t.equal(r.code, 0);
  const lines = r.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, events.length + 1);
  t.match(lines.at(-1), { record: { outcome: 'committed' } });
  t.same(sup.upgrades.at(-1), { command: '/work/bin/kv', args: ['--data', '/d'], deadlineMs: 30_000, helloTimeoutMs: 45_000 }, '--hello-timeout reaches the supervisor');

  r = await cli(['upgrade', '--admin-socket', sock], {}, true);
  t.equal(r.code, 0);
  // eslint-disable-next-line no-control-regex -- the CLI's ANSI escape codes
  t.match(r.out, /\x1b\[32m✓/, 'colour on a terminal');
  // eslint-disable-next-line no-control-regex -- the CLI's ANSI escape codes
  const shown = r.out.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '');
  t.match(shown, /✓ hello +100 ms/);
  t.match(shown, /✓ seal +400 ms {2}4\/4 shards/);
  t.match(shown, /\[█+░*\] 2\/4 shards/, 'a progress bar');
  t.match(shown, /✓ handoff 0f1e2d3c committed in 1\.50 s/);

  sup.script = { events: [event('spawn'), event('hello'), event('rollback', { elapsed_ms: 50, previous: { phase: 'hello', ms: 50 } }), event('done', { outcome: 'aborted', elapsed_ms: 70 })], result: record({ outcome: 'aborted', reason: 'successor_unhealthy: the successor reported healthz_ok: false', total_ms: 70, phases: [{ phase: 'hello', ms: 50 }, { phase: 'rollback', ms: 20 }] }) };
  r = await cli(['upgrade', '--admin-socket', sock]);
  t.equal(r.code, 1);
  t.match(r.out, /aborted after 70 ms: successor_unhealthy: the successor reported healthz_ok: false/);
  r = await cli(['upgrade', '--admin-socket', sock], { NO_COLOR: '1' }, true);
  t.equal(r.code, 1);
  // eslint-disable-next-line no-control-regex -- the CLI's ANSI escape codes
  t.match(r.out.replace(/\r\x1b\[2K/g, ''), /✗ hello +50 ms/);
  // eslint-disable-next-line no-control-regex -- the CLI's ANSI escape codes
  t.notMatch(r.out, /\x1b\[3\d?m/, 'NO_COLOR');

  sup.script = { reject: inProgress() };
  r = await cli(['upgrade', '--admin-socket', sock]);
  t.equal(r.code, 3);
  t.match(r.err, /^handoff: another handoff is in flight: handoff_in_progress: handoff abc is in phase seal\n$/);
  r = await cli(['upgrade', '--json', '--admin-socket', sock]);
  t.equal(r.code, 3);
  t.match(JSON.parse(r.out), { error: { kind: 'handoff_in_progress' } });

  sup.script = { reject: new NotAllowed('command not allowed: /bin/sh (start the supervisor with --allow-exec for it)') };
  r = await cli(['upgrade', '--exec', '/bin/sh', '--admin-socket', sock]);
  t.equal(r.code, 2);
  t.match(r.err, /command not allowed: \/bin\/sh/);

  sup.script = { reject: new ProtocolError('incumbent_failed', 'no incumbent is serving (supervisor is restarting)') };
  r = await cli(['upgrade', '--admin-socket', sock]);
  t.equal(r.code, 1);
  t.match(r.err, /cannot start a handoff: incumbent_failed/);

  sup.script = { events: [event('spawn')], reject: new ProtocolError('supervisor_stopping', 'bye') };
  r = await cli(['upgrade', '--admin-socket', sock]);
  t.equal(r.code, 1);
  t.match(r.err, /supervisor_stopping: bye/);
});

t.test('renderers', async (t) => {
  t.match(renderStatus({ pid: 1, state: 'restarting', incumbent: null, listeners: [], inflight: null, last: record({ ended_at: new Date(Date.now() - 5000).toISOString() }), incumbent_restarts: 2, last_failure: null, recovered: record({ outcome: 'interrupted', reason: 'supervisor_stopping: a previous supervisor ended' }) }), /incumbent +none serving[\s\S]*listeners +none[\s\S]*last +0f1e2d3c committed in 1\.50 s .*, 5\.\d\d s ago[\s\S]*restarts +2[\s\S]*recovered +0f1e2d3c interrupted/);
  t.match(renderHistory([record({ rolled_forward: true, phases: [] })]), /committed\* +1\.50 s +- +- *\n\* rolled forward/);
  const out = new Sink(true);
  const r = new ProgressRenderer(out, 'tty', { tickMs: 0 });
  r.event(event('hello'));
  r.stop();
  t.match(out.text, /hello.*\n$/);
});
