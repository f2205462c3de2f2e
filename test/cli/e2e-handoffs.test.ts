/**
 * One real `handoff run` with the kv example, driven by real `handoff` client processes over the
 * real admin socket: every command, every exit code, SIGHUP, SIGTERM.
 */

import fs from 'node:fs';
import t from 'tap';
import type { HandoffEvent, HandoffRecord } from '../../src/supervisor/types.js';
import { admin, cli, httpGet, KV, pidAlive, portOf, Proc, startRun, status, BIN } from './harness.js';

t.test('handoff run + every client command', async (t) => {
  const run = await startRun(t);
  const { env, sock, dataDir } = run;
  const kv = (...extra: string[]): string[] => ['--exec', process.execPath, '--', KV, '--data', dataDir, ...extra];

  const s0 = await status(env);
  const port = portOf(s0);
  const first = s0.incumbent?.pid ?? 0;

  t.test('status: the incumbent, its real port, nothing in flight', async (t) => {
    t.equal(s0.state, 'serving');
    t.ok(first > 0);
    t.match(s0.listeners, [{ name: 'http', address: /^tcp:\/\/127\.0\.0\.1:\d+$/ }]);
    t.not(port, 0);
    t.equal(s0.inflight, null);
    const info = await httpGet(port, '/info');
    t.equal(info.status, 200);
    t.equal((JSON.parse(info.body) as { pid: number }).pid, first);
    const human = await cli(['status'], env);
    t.equal(human.code, 0);
    t.match(human.stdout, new RegExp(`^incumbent +pid ${first}, build .*, up `, 'm'));
    t.match(human.stdout, new RegExp(`^listeners +http  tcp://127\\.0\\.0\\.1:${port}$`, 'm'));
  });

  t.test('the admin socket is 0600', async (t) => {
    const st = fs.statSync(sock);
    t.ok(st.isSocket());
    t.equal(st.mode & 0o777, 0o600);
  });

  t.test('upgrade commits: exit 0, a new incumbent serves on the same port', async (t) => {
    const r = await cli(['upgrade', '--', KV, '--data', dataDir, '--build-id', 'v2'], env);
    t.equal(r.code, 0, r.stderr);
    t.match(r.stdout, /started: successor pid \d+/);
    t.match(r.stdout, /phase drain \(hello took (\d+ ms|\d+\.\d+ s)\)/);
    t.match(r.stdout, /committed in [\d.]+ (ms|s) \(hello .*commit .*\)/);
    const s = await status(env);
    t.not(s.incumbent?.pid, first);
    t.equal(s.incumbent?.build_id, 'v2');
    t.match(s.last, { outcome: 'committed' });
    const info = JSON.parse((await httpGet(port, '/info')).body) as { pid: number; build_id: string };
    t.equal(info.pid, s.incumbent?.pid);
    t.equal(info.build_id, 'v2');
    t.notOk(pidAlive(first), 'the old incumbent exited');
  });

  t.test('upgrade aborts: exit 1 with the reason; the incumbent keeps serving', async (t) => {
    const before = (await status(env)).incumbent?.pid;
    const r = await cli(['upgrade', '--json', ...kv('--fault', 'unhealthy')], env);
    t.equal(r.code, 1);
    const lines = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as Partial<HandoffEvent> & { record?: HandoffRecord });
    t.same(lines[0]?.phase, 'spawn');
    t.ok(lines.some((l) => l.phase === 'rollback'), 'a rollback event');
    const rec = lines.at(-1)?.record;
    t.equal(rec?.outcome, 'aborted');
    t.equal(rec?.reason_kind, 'successor_unhealthy');
    t.equal((await status(env)).incumbent?.pid, before);

    const crash = await cli(['upgrade', ...kv('--fault', 'crash-on-begin')], env);
    t.equal(crash.code, 1);
    t.match(crash.stdout, /aborted after .*: successor_failed: /);
    const s = await status(env);
    t.equal(s.incumbent?.pid, before);
    t.equal((JSON.parse((await httpGet(port, '/info')).body) as { pid: number }).pid, before);
  });

  t.test('a command outside the allowlist: 403, exit 2, and a log line', async (t) => {
    const from = run.p.logs().length;
    const r = await cli(['upgrade', '--exec', '/bin/sh', '--', '-c', 'true'], env);
    t.equal(r.code, 2);
    t.match(r.stderr, /^handoff: command not allowed: \/bin\/sh/);
    const line = await run.p.waitLog(/command not in the allowlist/, 10_000, from);
    t.equal(line['command'], '/bin/sh');
    const raw = await admin(sock, 'POST', '/v1/handoffs', JSON.stringify({ command: '/usr/bin/env' }));
    t.equal(raw.status, 403);
    t.match(JSON.parse(raw.body), { error: { kind: 'exec_not_allowed' } });
  });

  t.test('bad bodies: 400 with a JSON error, S unharmed', async (t) => {
    for (const body of ['{', '[1]', '{"nope": 1}', '{"args": [1]}', '{"deadline_ms": "5s"}']) {
      const r = await admin(sock, 'POST', '/v1/handoffs', body);
      t.equal(r.status, 400, body);
      t.match(JSON.parse(r.body), { error: { kind: /^(invalid_json|invalid_request|unknown_field)$/, message: String } });
      t.notMatch(r.body, / {4}at /);
    }
    t.equal((await admin(sock, 'POST', '/v1/handoffs', 'x'.repeat(70_000))).status, 413);
    t.equal((await admin(sock, 'GET', '/v1/nothing')).status, 404);
    t.equal((await status(env)).state, 'serving');
  });

  t.test('abort with nothing in flight: exit 1, said so', async (t) => {
    const r = await cli(['abort'], env);
    t.equal(r.code, 1);
    t.equal(r.stderr, 'handoff: no handoff in flight: nothing to abort\n');
  });

  t.test('a handoff in flight: a second upgrade gets exit 3; abort rolls it back', async (t) => {
    const before = (await status(env)).incumbent?.pid;
    const slow = new Proc([BIN, 'upgrade', '--json', '--deadline', '60s', ...kv('--fault', 'hang-on-begin')], env);
    t.teardown(() => slow.signal('SIGKILL'));
    await slow.waitStdout(/"phase":"begin"/);

    const second = await cli(['upgrade'], env);
    t.equal(second.code, 3);
    t.match(second.stderr, /^handoff: another handoff is in flight: handoff_in_progress: handoff .* is in phase begin\n$/);
    const s = await status(env);
    t.match(s.inflight, { phase: 'begin' });
    const human = await cli(['status'], env);
    t.match(human.stdout, /^handoff +[0-9a-f]{8} in phase begin for /m);
    const metrics = await admin(sock, 'GET', '/metrics');
    t.match(metrics.body, /^handoff_current_phase\{phase="begin"\} 1$/m);
    t.match(metrics.body, /^handoff_in_progress 1$/m);

    const ab = await cli(['abort', '--reason', 'testing the abort'], env);
    t.equal(ab.code, 0, ab.stderr);
    t.match(ab.stdout, /aborted handoff .* \(in phase begin\)/);
    const { code } = await slow.exit();
    t.equal(code, 1);
    const rec = (JSON.parse(slow.out.at(-1) ?? '{}') as { record?: HandoffRecord }).record;
    t.equal(rec?.reason, 'operator_abort: testing the abort');
    const after = await status(env);
    t.equal(after.inflight, null);
    t.equal(after.incumbent?.pid, before, 'the incumbent resumed');
    t.equal((await httpGet(port, '/info')).status, 200);
  });

  t.test('history and metrics', async (t) => {
    const r = await cli(['history', '--json'], env);
    t.equal(r.code, 0);
    const recs = JSON.parse(r.stdout) as HandoffRecord[];
    t.same(
      recs.map((x) => x.outcome),
      ['committed', 'aborted', 'aborted', 'aborted'],
    );
    t.equal(recs[3]?.reason_kind, 'operator_abort');
    const two = await cli(['history', '-n', '2'], env);
    t.equal(two.code, 0);
    const rows = two.stdout.trim().split('\n');
    t.equal(rows.length, 3, 'header and two rows');
    t.match(rows[0], /^ENDED +ID +OUTCOME +TOTAL +PHASES +BUILD +REASON$/);
    t.match(rows[2], /aborted .*operator_abort: testing the abort$/);
    const m = await admin(sock, 'GET', '/metrics');
    t.equal(m.status, 200);
    t.match(m.body, /^handoff_handoffs_total\{outcome="committed"\} 1$/m);
    t.match(m.body, /^handoff_handoffs_total\{outcome="aborted"\} 3$/m);
    t.match(m.body, /^handoff_phase_duration_seconds_count\{phase="drain"\} [1-9]\d*$/m);
    t.match(m.body, /^handoff_in_progress 0$/m);
  });

  t.test("upgrade --hello-timeout: this handoff's own (run's is 5s)", async (t) => {
    const before = (await status(env)).incumbent?.pid;
    const silent = await cli(['upgrade', '--hello-timeout', '300ms', '--exec', process.execPath, '--', '-e', 'setTimeout(() => {}, 60000)'], env);
    t.equal(silent.code, 1);
    t.match(silent.stdout, /deadline_exceeded: no Hello from the successor within 300 ms/, 'a successor that never says Hello is given up on after 300 ms');
    t.equal((await status(env)).incumbent?.pid, before);
  });

  t.test('SIGHUP starts a handoff with the serving command (an upgrade sticks)', async (t) => {
    const before = (await status(env)).incumbent?.pid;
    const from = run.p.logs().length;
    run.p.signal('SIGHUP');
    const line = await run.p.waitLog(/^SIGHUP handoff /, 20_000, from);
    t.equal(line.msg, 'SIGHUP handoff committed');
    const s = await status(env);
    t.not(s.incumbent?.pid, before);
    t.equal(s.incumbent?.build_id, 'v2', 'the command that last committed (--build-id v2), not the configured one');

  });

  t.test('SIGTERM stops cleanly: exit 0, no child left, no socket left', async (t) => {
    const inc = (await status(env)).incumbent?.pid ?? 0;
    t.ok(pidAlive(inc));
    run.p.signal('SIGTERM');
    const { code, signal } = await run.p.exit();
    t.equal(code, 0);
    t.equal(signal, null);
    t.notOk(pidAlive(inc), 'the incumbent is gone');
    t.notOk(fs.existsSync(sock), 'the admin socket is removed');
    t.notOk(fs.existsSync(`${run.stateDir}/supervisor.pid`), 'the state dir is released');
    const after = await cli(['status'], env);
    t.equal(after.code, 2, 'no supervisor to talk to');
  });
});
