/**
 * The admin server over a real Unix socket, against a scriptable SupervisorApi: routes, status codes,
 * hostile bodies, the socket file's mode and life cycle. The real supervisor behind it is covered by
 * test/cli/*.test.ts.
 */

import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { ProtocolError } from '../../src/protocol/errors.js';
import { ConfigReloadError } from '../../src/supervisor/types.js';
import { AdminStartError, MAX_BODY_BYTES, resolveGroup, startAdminServer, type AdminServer } from '../../src/supervisor/admin.js';
import { event, FakeSupervisor, inProgress, NotAllowed, openStream, rawExchange, record, request } from './fake.js';

const silent = pino({ level: 'silent' });

function tmpdir(t: Tap): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hadm-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

type Tap = Test;

async function serve(t: Tap, sup = new FakeSupervisor(), group?: string): Promise<{ sup: FakeSupervisor; admin: AdminServer; sock: string }> {
  const sock = path.join(tmpdir(t), 'admin.sock');
  const admin = await startAdminServer(sup, { socketPath: sock, logger: silent, ...(group !== undefined ? { group } : {}) });
  t.teardown(() => admin.close());
  return { sup, admin, sock };
}

function json(body: string): unknown {
  return JSON.parse(body);
}

function errorOf(body: string): { kind: string; message: string } {
  return (json(body) as { error: { kind: string; message: string } }).error;
}

t.test('the socket is 0600, answers status, and is removed on close', async (t) => {
  const { admin, sock } = await serve(t);
  const st = fs.statSync(sock);
  t.ok(st.isSocket());
  t.equal(st.mode & 0o777, 0o600);
  t.equal(admin.mode, 0o600);
  const r = await request(sock, 'GET', '/v1/status');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /application\/json/);
  t.match(json(r.body), { state: 'serving', incumbent: { pid: 100, build_id: 'v1' }, listeners: [{ name: 'http' }] });
  await admin.close();
  t.notOk(fs.existsSync(sock), 'socket file removed');
  await admin.close();
});

t.test('with a group the socket is 0660 and belongs to it', async (t) => {
  const gid = process.getgid?.() ?? 0;
  const { sock, admin } = await serve(t, new FakeSupervisor(), String(gid));
  const st = fs.statSync(sock);
  t.equal(st.mode & 0o777, 0o660);
  t.equal(st.gid, gid);
  t.equal(admin.mode, 0o660);
});

t.test('group names resolve; unknown ones are refused before anything is created', async (t) => {
  const name = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim();
  if (name !== '') t.equal(resolveGroup(name), process.getgid?.());
  t.throws(() => resolveGroup('no-such-group-hopefully-xyz'), AdminStartError);
  t.throws(() => resolveGroup('bad name!'), AdminStartError);
  const sock = path.join(tmpdir(t), 'a.sock');
  await t.rejects(startAdminServer(new FakeSupervisor(), { socketPath: sock, logger: silent, group: 'no-such-group-hopefully-xyz' }), AdminStartError);
  t.notOk(fs.existsSync(sock));
});

t.test('a stale socket file is replaced; a live one refuses the start', async (t) => {
  const dir = tmpdir(t);
  const sock = path.join(dir, 'admin.sock');
  // A process that listened and died without cleaning up leaves a socket nobody answers.
  const r = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.exit(0))`]);
  t.equal(r.status, 0);
  t.ok(fs.statSync(sock).isSocket(), 'stale socket present');
  const admin = await startAdminServer(new FakeSupervisor(), { socketPath: sock, logger: silent });
  t.teardown(() => admin.close());
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200);

  await t.rejects(startAdminServer(new FakeSupervisor(), { socketPath: sock, logger: silent }), { name: 'AdminStartError', message: `another supervisor is listening on ${sock}` });
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200, 'the first server is untouched');
});

t.test('a path that is not a socket is not replaced; over-long paths are refused', async (t) => {
  const dir = tmpdir(t);
  const file = path.join(dir, 'not-a-socket');
  fs.writeFileSync(file, 'keep me');
  await t.rejects(startAdminServer(new FakeSupervisor(), { socketPath: file, logger: silent }), { message: /exists and is not a socket/ });
  t.equal(fs.readFileSync(file, 'utf8'), 'keep me');
  await t.rejects(startAdminServer(new FakeSupervisor(), { socketPath: path.join(dir, 'x'.repeat(120)), logger: silent }), { message: /longer than 107 bytes/ });
  await t.rejects(startAdminServer(new FakeSupervisor(), { socketPath: path.join(dir, 'missing', 'a.sock'), logger: silent }), { message: /cannot listen on admin socket/ });
});

t.test('history honours limit and checks it', async (t) => {
  const { sock, sup } = await serve(t);
  const r = await request(sock, 'GET', '/v1/handoffs?limit=1');
  t.equal(r.status, 200);
  t.equal((json(r.body) as unknown[]).length, 1);
  t.equal((await request(sock, 'GET', '/v1/handoffs')).status, 200);
  t.same(sup.historyLimits, [1, 100]);
  for (const bad of ['0', '-1', 'abc', '1.5', '100001', '99999999999999']) {
    const b = await request(sock, 'GET', `/v1/handoffs?limit=${bad}`);
    t.equal(b.status, 400, `limit=${bad}`);
    t.equal(errorOf(b.body).kind, 'invalid_request');
  }
});

t.test('metrics are Prometheus text', async (t) => {
  const { sock } = await serve(t);
  const r = await request(sock, 'GET', '/metrics');
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /^text\/plain; version=0\.0\.4/);
  const b = r.body;
  t.match(b, /# TYPE handoff_handoffs_total counter\n/);
  t.match(b, /handoff_handoffs_total\{outcome="committed"\} 2\n/);
  t.match(b, /handoff_handoffs_total\{outcome="aborted"\} 1\n/);
  t.match(b, /# TYPE handoff_phase_duration_seconds histogram\n/);
  t.match(b, /handoff_phase_duration_seconds_bucket\{phase="drain",le="0.005"\} 1\n/);
  t.match(b, /handoff_phase_duration_seconds_bucket\{phase="drain",le="1"\} 2\n/);
  t.match(b, /handoff_phase_duration_seconds_bucket\{phase="drain",le="\+Inf"\} 2\n/);
  t.match(b, /handoff_phase_duration_seconds_sum\{phase="drain"\} 0.703\n/);
  t.match(b, /handoff_phase_duration_seconds_count\{phase="seal"\} 1\n/);
  t.match(b, /handoff_incumbent_restarts_total 4\n/);
  t.match(b, /handoff_incumbent_failures_total\{reason_kind="incumbent_hung"\} 1\n/);
  t.match(b, /handoff_current_phase\{phase="seal"\} 1\n/);
  t.match(b, /handoff_current_phase\{phase="drain"\} 0\n/);
  t.match(b, /handoff_in_progress 1\n/);
  t.match(b, /handoff_incumbent_up 1\n/);
  // Every sample line is `name{labels} value` or `name value`.
  for (const line of b.trim().split('\n')) {
    if (line.startsWith('#')) continue;
    t.match(line, /^[a-z_]+(\{[^}]*\})? [0-9.e+-]+$|^[a-z_]+(\{[^}]*\})? \+Inf$/, line);
  }
});

t.test('POST /v1/handoffs streams NDJSON events, then the record', async (t) => {
  const { sock, sup } = await serve(t);
  sup.script = { events: [event('spawn', { detail: 'successor pid 200' }), event('hello'), event('drain', { previous: { phase: 'hello', ms: 5 } }), event('done', { outcome: 'committed' })], result: record() };
  const body = JSON.stringify({ command: '/usr/bin/env', args: ['a', 'b'], deadline_ms: 1000, drain_grace_ms: 500, hello_timeout_ms: 30000 });
  const r = await request(sock, 'POST', '/v1/handoffs', body, { 'Content-Type': 'application/json' });
  t.equal(r.status, 200);
  t.match(r.headers['content-type'], /application\/x-ndjson/);
  const lines = r.body.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(lines.length, 5);
  t.same(lines.slice(0, 4).map((l) => l['phase']), ['spawn', 'hello', 'drain', 'done']);
  t.match(lines[4], { record: { outcome: 'committed', handoff_id: record().handoff_id } });
  t.same(sup.upgrades, [{ command: '/usr/bin/env', args: ['a', 'b'], deadlineMs: 1000, drainGraceMs: 500, helloTimeoutMs: 30000 }]);
});

t.test('an empty body asks for the configured command', async (t) => {
  const { sock, sup } = await serve(t);
  sup.script = { events: [event('spawn')], result: record({ outcome: 'aborted', reason: 'successor_failed: x' }) };
  const r = await request(sock, 'POST', '/v1/handoffs');
  t.equal(r.status, 200);
  t.match(r.body, /"outcome":"aborted"/);
  t.same(sup.upgrades, [{}]);
});

t.test('refusals: 409 in flight, 403 not allowed, 503 no incumbent, 500 without internals', async (t) => {
  const { sock, sup } = await serve(t);
  sup.script = { reject: inProgress() };
  let r = await request(sock, 'POST', '/v1/handoffs', '{}');
  t.equal(r.status, 409);
  t.same(errorOf(r.body), { kind: 'handoff_in_progress', message: 'handoff_in_progress: handoff abc is in phase seal' });

  sup.script = { reject: new NotAllowed('command not allowed: /bin/sh (start the supervisor with --allow-exec for it)') };
  r = await request(sock, 'POST', '/v1/handoffs', JSON.stringify({ command: '/bin/sh' }));
  t.equal(r.status, 403);
  t.equal(errorOf(r.body).kind, 'exec_not_allowed');
  t.match(errorOf(r.body).message, /not allowed: \/bin\/sh/);

  sup.script = { reject: new ProtocolError('incumbent_failed', 'no incumbent is serving (supervisor is restarting)') };
  r = await request(sock, 'POST', '/v1/handoffs', '{}');
  t.equal(r.status, 503);
  t.equal(errorOf(r.body).kind, 'incumbent_failed');

  sup.script = { reject: new ConfigReloadError('configuration not reloaded: config file /etc/handoff/kv.json is not valid JSON') };
  r = await request(sock, 'POST', '/v1/handoffs', '{}');
  t.equal(r.status, 400, 'an invalid configuration on reload is the caller’s to fix');
  t.same(errorOf(r.body), { kind: 'invalid_config', message: 'configuration not reloaded: config file /etc/handoff/kv.json is not valid JSON' });

  const secret = 'SECRET_VALUE_FROM_ENV';
  sup.script = { throwSync: new TypeError(`boom ${secret}`) };
  r = await request(sock, 'POST', '/v1/handoffs', '{}');
  t.equal(r.status, 500);
  t.same(errorOf(r.body), { kind: 'internal', message: 'internal error (see the supervisor log)' });
  t.notMatch(r.body, secret);
  t.notMatch(r.body, /at .*\.ts:\d+/);

  sup.statusThrows = new Error(`status ${secret}\n    at somewhere (file.ts:1:1)`);
  r = await request(sock, 'GET', '/v1/status');
  t.equal(r.status, 500);
  t.notMatch(r.body, secret);
  t.notMatch(r.body, /somewhere/);
});

t.test('a failure after the stream started ends it with an error line', async (t) => {
  const { sock, sup } = await serve(t);
  sup.script = { events: [event('spawn')], reject: new ProtocolError('supervisor_stopping', 'gone') };
  const r = await request(sock, 'POST', '/v1/handoffs', '{}');
  t.equal(r.status, 200);
  const lines = r.body.trim().split('\n');
  t.match(JSON.parse(lines.at(-1) ?? ''), { error: { kind: 'supervisor_stopping' } });
});

t.test('bad bodies are 400 or 413 with a JSON error, and the server goes on', async (t) => {
  const { sock, sup } = await serve(t);
  const cases: Array<[string | Buffer, number, string]> = [
    ['{', 400, 'invalid_json'],
    ['{"command": "x",}', 400, 'invalid_json'],
    ['[]', 400, 'invalid_request'],
    ['null', 400, 'invalid_request'],
    ['"str"', 400, 'invalid_request'],
    ['42', 400, 'invalid_request'],
    ['{"bogus": 1}', 400, 'unknown_field'],
    ['{"__proto__": {"x": 1}}', 400, 'unknown_field'],
    ['{"command": 5}', 400, 'invalid_request'],
    ['{"command": ""}', 400, 'invalid_request'],
    ['{"command": "a\\u0000b"}', 400, 'invalid_request'],
    ['{"args": "a b"}', 400, 'invalid_request'],
    ['{"args": [1]}', 400, 'invalid_request'],
    [`{"args": ${JSON.stringify(Array.from({ length: 1025 }, () => 'a'))}}`, 400, 'invalid_request'],
    [`{"command": "${'x'.repeat(5000)}"}`, 400, 'invalid_request'],
    ['{"deadline_ms": -1}', 400, 'invalid_request'],
    ['{"deadline_ms": 1.5}', 400, 'invalid_request'],
    ['{"deadline_ms": "5s"}', 400, 'invalid_request'],
    ['{"drain_grace_ms": 1e12}', 400, 'invalid_request'],
    ['{"hello_timeout_ms": 0}', 400, 'invalid_request'],
    [Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 400, 'invalid_json'],
    [`{"command": "${'x'.repeat(MAX_BODY_BYTES)}"}`, 413, 'body_too_large'],
  ];
  for (const [body, status, kind] of cases) {
    const r = await request(sock, 'POST', '/v1/handoffs', body);
    const shown = typeof body === 'string' ? body.slice(0, 40) : '<bytes>';
    t.equal(r.status, status, `${shown} → ${status}`);
    t.equal(errorOf(r.body).kind, kind, `${shown} → ${kind}`);
  }
  t.same(sup.upgrades, [], 'no bad body reached the supervisor');
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200, 'still serving');
});

t.test('an over-long chunked body is cut off with 413', async (t) => {
  const { sock } = await serve(t);
  const big = 'x'.repeat(MAX_BODY_BYTES + 10);
  const chunked = `POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${(big.length).toString(16)}\r\n${big}\r\n0\r\n\r\n`;
  const out = await rawExchange(sock, chunked);
  t.match(out, /^HTTP\/1\.1 413 /);
  t.match(out, /body_too_large/);
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200);
});

t.test('garbage on the wire gets a 400 and does not hurt the server', async (t) => {
  const { sock } = await serve(t);
  const out = await rawExchange(sock, 'NOT HTTP AT ALL\r\n\r\n');
  t.match(out, /400/);
  const out2 = await rawExchange(sock, `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
  t.match(out2, /431|400/);
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200);
});

t.test('unknown paths are 404, wrong methods 405', async (t) => {
  const { sock } = await serve(t);
  let r = await request(sock, 'GET', '/v2/nothing');
  t.equal(r.status, 404);
  t.equal(errorOf(r.body).kind, 'not_found');
  r = await request(sock, 'DELETE', '/v1/status');
  t.equal(r.status, 405);
  t.equal(r.headers['allow'], 'GET');
  r = await request(sock, 'GET', '/v1/handoffs/current/abort');
  t.equal(r.status, 405);
  r = await request(sock, 'PUT', '/v1/handoffs', '{}');
  t.equal(r.status, 405);
  t.equal(r.headers['allow'], 'GET, POST');
});

t.test('abort: 200 when aborted, 404 with nothing in flight, 409 past the point of no return', async (t) => {
  const { sock, sup } = await serve(t);
  sup.inflight = { handoff_id: 'h1', phase: 'seal', started_at: '2026-01-01T00:00:00.000Z', successor_pid: 5, elapsed_ms: 10 };
  sup.abortResult = true;
  let r = await request(sock, 'POST', '/v1/handoffs/current/abort', JSON.stringify({ reason: 'bad build' }));
  t.equal(r.status, 200);
  t.same(json(r.body), { aborted: true, handoff_id: 'h1', phase: 'seal' });
  r = await request(sock, 'POST', '/v1/handoffs/current/abort');
  t.equal(r.status, 200);
  t.same(sup.aborts, ['bad build', 'aborted by the operator']);

  sup.abortResult = false;
  sup.inflight = { handoff_id: 'h1', phase: 'commit', started_at: '2026-01-01T00:00:00.000Z', successor_pid: 5, elapsed_ms: 10 };
  r = await request(sock, 'POST', '/v1/handoffs/current/abort');
  t.equal(r.status, 409);
  t.equal(errorOf(r.body).kind, 'too_late');

  sup.inflight = null;
  r = await request(sock, 'POST', '/v1/handoffs/current/abort');
  t.equal(r.status, 404);
  t.same(errorOf(r.body), { kind: 'no_handoff', message: 'no handoff in flight: nothing to abort' });

  r = await request(sock, 'POST', '/v1/handoffs/current/abort', '{"reason": 7}');
  t.equal(r.status, 400);
  r = await request(sock, 'POST', '/v1/handoffs/current/abort', '{"why": "x"}');
  t.equal(r.status, 400);
  t.equal(errorOf(r.body).kind, 'unknown_field');
});

t.test('a client that goes away mid-stream does not stop the handoff or the server', async (t) => {
  const { sock, sup } = await serve(t);
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  sup.script = { events: [event('spawn'), event('hello')], gate, result: record() };
  const s = await openStream(sock, 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  t.match(s.first, /^HTTP\/1\.1 200 /);
  s.sock.destroy();
  await s.closed;
  release();
  await gate;
  await new Promise((r) => setImmediate(r));
  t.equal(sup.upgrades.length, 1);
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200);
});

t.test('close() ends open streams and removes only its own socket', async (t) => {
  const sup = new FakeSupervisor();
  const sock = path.join(tmpdir(t), 'admin.sock');
  const admin = await startAdminServer(sup, { socketPath: sock, logger: silent });
  sup.script = { events: [event('spawn')], gate: new Promise(() => undefined) };
  const s = await openStream(sock, 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n');
  t.match(s.first, /^HTTP\/1\.1 200 /);
  const t0 = Date.now();
  await admin.close();
  t.ok(Date.now() - t0 < 3000, 'close does not wait for a stream forever');
  await s.closed;
  t.notOk(fs.existsSync(sock));
});
