/**
 * Admin API abuse over the real Unix socket with raw clients: what Node's HTTP parser refuses (bad
 * Content-Length, a 100 KB URL, garbage), slow clients and the header/request timeouts, hundreds of
 * held connections, oversized and hostile bodies; and against a real Supervisor (the in-process rig
 * of test/abuse): 200 concurrent status requests during a handoff, and an abort racing a commit.
 * Every refusal is a whole HTTP/1.1 response with the documented `{"error": {kind, message}}` body.
 */

import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { HEADERS_TIMEOUT_MS, MAX_BODY_BYTES, REQUEST_TIMEOUT_MS, startAdminServer, timeoutCheckIntervalMs, type AdminServer, type AdminServerOptions } from '../../src/supervisor/admin.js';
import type { SupervisorApi } from '../../src/supervisor/types.js';
import { GoodPeer, REVS, Rig, helloOf, within, type PeerEnd } from '../abuse/harness.js';
import { FakeSupervisor, event, record, request } from './fake.js';

const silent = pino({ level: 'silent' });

async function serve(t: Test, sup: SupervisorApi = new FakeSupervisor(), over: Partial<AdminServerOptions> = {}): Promise<{ admin: AdminServer; sock: string }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hadmab-'));
  const sock = path.join(dir, 'admin.sock');
  const admin = await startAdminServer(sup, { socketPath: sock, logger: silent, ...over });
  t.teardown(async () => {
    await admin.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { admin, sock };
}

interface Raw {
  /** Everything the server sent. */
  text: string;
  /** ms from the first byte written to the server's close. */
  ms: number;
  /** The server closed the connection (not our own bound). */
  closedByServer: boolean;
}

/**
 * Connects, writes `chunks` (a string is one chunk; `everyMs` spaces them), reads until the server
 * closes, or until `boundMs` (then destroys: closedByServer false).
 */
function raw(sock: string, chunks: Array<string | Buffer> | string | Buffer, opts: { everyMs?: number; boundMs?: number } = {}): Promise<Raw> {
  const list = Array.isArray(chunks) ? chunks : [chunks];
  return new Promise((resolve) => {
    const s = net.connect(sock);
    const bufs: Buffer[] = [];
    let byUs = false;
    let t0 = 0;
    let timer: NodeJS.Timeout | undefined;
    const bound = setTimeout(() => {
      byUs = true;
      s.destroy();
    }, opts.boundMs ?? 5000);
    s.on('data', (d: Buffer) => bufs.push(d));
    s.on('error', () => undefined);
    s.on('close', () => {
      clearTimeout(bound);
      clearTimeout(timer);
      resolve({ text: Buffer.concat(bufs).toString('latin1'), ms: performance.now() - t0, closedByServer: !byUs });
    });
    s.on('connect', () => {
      t0 = performance.now();
      let i = 0;
      const next = (): void => {
        if (i >= list.length || s.destroyed) return;
        s.write(list[i++]!);
        if (opts.everyMs !== undefined) timer = setTimeout(next, opts.everyMs);
        else next();
      };
      next();
    });
  });
}

interface Parsed {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** Bytes after the first response (a second response, or garbage). */
  rest: string;
}

/** Parses one HTTP/1.1 response with a Content-Length; throws on anything else. */
function parseResponse(text: string): Parsed {
  const end = text.indexOf('\r\n\r\n');
  if (end < 0) throw new Error(`no complete head in ${JSON.stringify(text.slice(0, 200))}`);
  const [statusLine, ...lines] = text.slice(0, end).split('\r\n');
  const m = /^HTTP\/1\.1 (\d{3}) [^\r\n]+$/.exec(statusLine ?? '');
  if (!m) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers: Record<string, string> = {};
  for (const l of lines) {
    const i = l.indexOf(':');
    headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
  }
  const len = Number(headers['content-length']);
  if (!Number.isInteger(len)) throw new Error('no Content-Length');
  const bodyStart = end + 4;
  return { status: Number(m[1]), headers, body: text.slice(bodyStart, bodyStart + len), rest: text.slice(bodyStart + len) };
}

/** Checks an error answer: status, JSON content type and length, `{"error": {kind, message}}`, no stack, closed. */
function checkError(t: Test, r: Raw, status: number, kind: string, what: string): void {
  let p: Parsed;
  try {
    p = parseResponse(r.text);
  } catch (err) {
    t.fail(`${what}: ${(err as Error).message}`);
    return;
  }
  t.equal(p.status, status, `${what}: status ${status}`);
  t.match(p.headers['content-type'], /^application\/json/, `${what}: JSON content type`);
  t.equal(Buffer.byteLength(p.body, 'latin1'), Number(p.headers['content-length']), `${what}: Content-Length is the body's`);
  let body: unknown;
  try {
    body = JSON.parse(p.body);
  } catch {
    t.fail(`${what}: the body is not JSON: ${JSON.stringify(p.body)}`);
    return;
  }
  t.match(body, { error: { kind, message: String } }, `${what}: {"error": {"kind": "${kind}", …}}`);
  t.same(Object.keys((body as { error: object }).error).sort(), ['kind', 'message'], `${what}: kind and message only`);
  t.notMatch(p.body, /\bat .+:\d+:\d+|node:internal|Error:/, `${what}: no stack trace`);
  t.equal(p.rest, '', `${what}: nothing after the answer`);
  t.ok(r.closedByServer, `${what}: the server closed the connection`);
}

t.test('errors caught by the HTTP parser get the documented JSON error as a whole HTTP/1.1 response', async (t) => {
  const { sock } = await serve(t);
  const cases: Array<[string, string | Buffer, number, string]> = [
    ['Content-Length: abc', 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n', 400, 'invalid_request'],
    ['Content-Length: -1', 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n', 400, 'invalid_request'],
    ['two Content-Lengths', 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}', 400, 'invalid_request'],
    ['Content-Length overflow', 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n', 400, 'invalid_request'],
    ['Content-Length with chunked', 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n', 400, 'invalid_request'],
    ['a bad chunk size', 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', 400, 'invalid_request'],
    ['a 100 KB URL', `GET /v1/status?${'a'.repeat(100_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'headers_too_large'],
    ['a 20 KB header', `GET /v1/status HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`, 431, 'headers_too_large'],
    ['a garbage request line', 'NOT HTTP AT ALL\r\n\r\n', 400, 'invalid_request'],
    ['binary', Buffer.from([0, 1, 2, 3, 0xff, 0xfe, 13, 10, 13, 10]), 400, 'invalid_request'],
    ['a TLS ClientHello', Buffer.from('16030100a5010000a10303', 'hex'), 400, 'invalid_request'],
    ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, 'invalid_request'],
    ['HTTP/9.9', 'GET /v1/status HTTP/9.9\r\nHost: x\r\n\r\n', 400, 'invalid_request'],
    ['a method alone', 'GET\r\n\r\n', 400, 'invalid_request'],
    ['a header without a colon', 'GET /v1/status HTTP/1.1\r\nHost x\r\n\r\n', 400, 'invalid_request'],
    ['a NUL in a header', 'GET /v1/status HTTP/1.1\r\nHost: x\r\nX: a\u0000b\r\n\r\n', 400, 'invalid_request'],
    ['bare LF line ends', 'GET /v1/status HTTP/1.1\nHost: x\n\n', 400, 'invalid_request'],
  ];
  for (const [name, bytes, status, kind] of cases) checkError(t, await raw(sock, bytes), status, kind, name);
  // A valid request, then garbage on the same connection: the first answer stands, the garbage gets its own.
  const both = await raw(sock, 'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE\r\n\r\n');
  const first = parseResponse(both.text);
  t.equal(first.status, 200, 'pipelined: the valid request is answered');
  checkError(t, { ...both, text: first.rest }, 400, 'invalid_request', 'pipelined garbage after it');
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200, 'the server goes on');
  t.comment(`figures: ${cases.length + 1} parser-level inputs tried`);
});

t.test('the timeouts are configurable and fire within a second of their value', async (t) => {
  t.equal(HEADERS_TIMEOUT_MS, 10_000, 'the documented header timeout');
  t.equal(REQUEST_TIMEOUT_MS, 30_000, 'the documented request timeout');
  t.equal(timeoutCheckIntervalMs(HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS), 1000, 'checked every second at the defaults');
  const headersTimeoutMs = 600;
  const requestTimeoutMs = 1500;
  const { sock } = await serve(t, new FakeSupervisor(), { headersTimeoutMs, requestTimeoutMs });
  const [partial, silentClient, slowHeaders, slowBody] = await Promise.all([
    raw(sock, 'GET /v1/status HTTP/1.1\r\nHost: x\r\n'),
    raw(sock, []),
    // Headers a byte every 100 ms: never complete within 600 ms.
    raw(sock, [...'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n'], { everyMs: 100 }),
    // Headers at once, a 20-byte body a byte every 100 ms: 2 s, over the request timeout.
    raw(sock, ['POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n', ...'{"deadline_ms": 1000}'.slice(0, 20)], { everyMs: 100 }),
  ]);
  for (const [name, r, due] of [
    ['partial headers, then nothing', partial, headersTimeoutMs],
    ['a connection that sends nothing', silentClient, headersTimeoutMs],
    ['headers a byte per 100 ms', slowHeaders, headersTimeoutMs],
    ['a body a byte per 100 ms', slowBody, requestTimeoutMs],
  ] as const) {
    checkError(t, r, 408, 'request_timeout', name);
    t.ok(r.ms >= due - 50 && r.ms < due + 1000, `${name}: 408 after ${r.ms.toFixed(0)} ms (due ${due})`);
  }
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200);
  await t.rejects(startAdminServer(new FakeSupervisor(), { socketPath: path.join(path.dirname(sock), 'b.sock'), logger: silent, headersTimeoutMs: 2000, requestTimeoutMs: 1000 }), { name: 'AdminStartError' }, 'a header timeout above the request timeout is refused');
});

t.test('a request that arrived in time is not cut off, however long its answer streams', async (t) => {
  const sup = new FakeSupervisor();
  const { sock } = await serve(t, sup, { headersTimeoutMs: 300, requestTimeoutMs: 600 });
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  sup.script = { events: [event('spawn'), event('hello')], gate, result: record() };
  const opened = performance.now();
  const streamed = raw(sock, 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n', { boundMs: 10_000 });
  // Hold the answer open for three request timeouts, then let the handoff end.
  await new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      if (performance.now() - opened > 1800) {
        clearInterval(iv);
        resolve();
      }
    }, 50);
  });
  release();
  const r = await streamed;
  t.match(r.text, /^HTTP\/1\.1 200 /, 'streamed');
  t.match(r.text, /"record":\{"handoff_id"/, 'to its record');
  t.notMatch(r.text, /request_timeout/, 'never timed out');
});

t.test('at the defaults: a silent client and a byte-per-second client get 408 at ~10 s; S answers meanwhile', async (t) => {
  const { sock } = await serve(t);
  let probes = 0;
  let slowest = 0;
  let stop = false;
  const prober = (async () => {
    while (!stop) {
      const t0 = performance.now();
      const r = await request(sock, 'GET', '/v1/status');
      slowest = Math.max(slowest, performance.now() - t0);
      if (r.status === 200) probes++;
      await new Promise((res) => setTimeout(res, 200));
    }
  })();
  const [silentClient, bytePerSecond] = await Promise.all([raw(sock, 'GET /v1/status HTTP/1.1\r\n', { boundMs: 15_000 }), raw(sock, [...'GET /v1/status HTTP/1.1\r\nHost: x\r\n\r\n'], { everyMs: 1000, boundMs: 15_000 })]);
  stop = true;
  await prober;
  for (const [name, r] of [
    ['partial headers, then nothing', silentClient],
    ['a byte per second', bytePerSecond],
  ] as const) {
    checkError(t, r, 408, 'request_timeout', name);
    t.ok(r.ms >= HEADERS_TIMEOUT_MS - 50 && r.ms < HEADERS_TIMEOUT_MS + 1500, `${name}: 408 after ${r.ms.toFixed(0)} ms (documented ${HEADERS_TIMEOUT_MS})`);
  }
  t.ok(probes >= 20, `${probes} status requests answered meanwhile`);
  t.ok(slowest < 2000, `the slowest took ${slowest.toFixed(0)} ms`);
  t.comment(`figures: default header timeout fired after ${silentClient.ms.toFixed(0)} / ${bytePerSecond.ms.toFixed(0)} ms; ${probes} probes, slowest ${slowest.toFixed(0)} ms`);
});

t.test('hundreds of held connections: S keeps answering, and each is closed by the header timeout', async (t) => {
  const { sock } = await serve(t, new FakeSupervisor(), { headersTimeoutMs: 1500, requestTimeoutMs: 3000 });
  const fds0 = fs.readdirSync('/proc/self/fd').length;
  const HELD = 400;
  const held = Array.from({ length: HELD }, (_, i) => raw(sock, i % 2 === 0 ? [] : 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Le', { boundMs: 15_000 }));
  // While they are held: answers, at once.
  const t0 = performance.now();
  const answers = await Promise.all(Array.from({ length: 50 }, () => request(sock, 'GET', '/v1/status')));
  const during = performance.now() - t0;
  t.ok(answers.every((a) => a.status === 200), `50 status requests answered while ${HELD} connections are held (${during.toFixed(0)} ms for all)`);
  const closed = await Promise.all(held);
  let ok408 = 0;
  for (const r of closed) {
    try {
      const p = parseResponse(r.text);
      if (p.status === 408 && r.closedByServer && (JSON.parse(p.body) as { error: { kind: string } }).error.kind === 'request_timeout') ok408++;
    } catch {
      // Counted as not ok below.
    }
  }
  t.equal(ok408, HELD, `all ${HELD} held connections got a JSON 408 and were closed`);
  const slowestClose = Math.max(...closed.map((r) => r.ms));
  t.ok(slowestClose < 1500 + 1500, `the last one within ${slowestClose.toFixed(0)} ms`);
  // The server's side of each is gone: our fds are back (a few may linger in the kernel's close).
  const fds1 = fs.readdirSync('/proc/self/fd').length;
  t.ok(fds1 <= fds0 + 5, `open fds ${fds0} → ${fds1}`);
  t.comment(`figures: ${HELD} held connections, 50 status answers in ${during.toFixed(0)} ms, all closed by ${slowestClose.toFixed(0)} ms`);
});

t.test('oversized and hostile bodies', async (t) => {
  const { sock } = await serve(t);
  // Declared too large: refused before a byte of body is read.
  let r = await raw(sock, 'POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 10000000000\r\n\r\n');
  checkError(t, r, 413, 'body_too_large', 'a declared 10 GB body');
  // Streamed past the limit without a length: cut off as it crosses it, not at its end.
  const chunk = 'x'.repeat(8192);
  const chunks = ['POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n', ...Array.from({ length: 40 }, () => `2000\r\n${chunk}\r\n`)];
  r = await raw(sock, chunks, { everyMs: 5, boundMs: 10_000 });
  checkError(t, r, 413, 'body_too_large', 'a chunked body growing past 64 KiB');
  t.ok(r.ms < 40 * 5, `cut off before the client finished (${r.ms.toFixed(0)} ms)`);
  // Hostile JSON that fits.
  const nested = '['.repeat(MAX_BODY_BYTES - 10);
  for (const [name, body, kind] of [
    ['64 KiB of [', nested, 'invalid_json'],
    ['deeply nested objects', `${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}`, 'unknown_field'],
    ['a huge number', `{"deadline_ms": 1${'0'.repeat(400)}}`, 'invalid_request'],
    ['a lone surrogate', '{"command": "\\ud800"}', undefined],
    ['duplicate keys', '{"deadline_ms": 1, "deadline_ms": "x"}', 'invalid_request'],
  ] as const) {
    const res = await request(sock, 'POST', '/v1/handoffs', body);
    if (kind === undefined) {
      t.ok(res.status === 200 || res.status === 400, `${name}: answered (${res.status})`);
      continue;
    }
    t.equal(res.status, kind === 'unknown_field' || kind === 'invalid_request' || kind === 'invalid_json' ? 400 : 413, `${name}: ${res.status}`);
    t.equal((JSON.parse(res.body) as { error: { kind: string } }).error.kind, kind, `${name}: ${kind}`);
  }
  t.equal((await request(sock, 'GET', '/v1/status')).status, 200, 'the server goes on');
});

// --- against a real supervisor ------------------------------------------------------------------

/** POST /v1/handoffs on a raw connection; resolves with every NDJSON line once the server ends the stream. */
function postHandoff(sock: string): Promise<Array<Record<string, unknown>>> {
  return new Promise((resolve, reject) => {
    const s = net.connect(sock);
    let text = '';
    s.on('data', (d: Buffer) => (text += d.toString('utf8')));
    s.on('error', reject);
    s.on('end', () => {
      const head = text.indexOf('\r\n\r\n');
      // Chunked: drop the chunk-size lines, keep the JSON lines.
      const lines = text
        .slice(head + 4)
        .split('\r\n')
        .flatMap((l) => l.split('\n'))
        .filter((l) => l.startsWith('{'));
      resolve(lines.map((l) => JSON.parse(l) as Record<string, unknown>));
    });
    s.write('POST /v1/handoffs HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
  });
}

t.test('200 concurrent status requests during a handoff: all answered, all see it in flight', async (t) => {
  const rig = await Rig.start();
  t.teardown(() => rig.stop());
  const { sock } = await serve(t, rig.sup);
  const inc = rig.incumbent();
  inc.hold = { drained: true };
  const prepared = inc.peer.next('PrepareHandoff');
  const stream = postHandoff(sock);
  await within(prepared, 10_000, 'the handoff to reach drain');
  const t0 = performance.now();
  const answers = await Promise.all([
    ...Array.from({ length: 200 }, () => request(sock, 'GET', '/v1/status')),
    request(sock, 'GET', '/metrics'),
    request(sock, 'GET', '/v1/handoffs?limit=5'),
  ]);
  const ms = performance.now() - t0;
  const statuses = answers.slice(0, 200).map((a) => JSON.parse(a.body) as { state: string; inflight: { phase: string } | null });
  t.ok(answers.every((a) => a.status === 200), 'every request answered 200');
  t.ok(statuses.every((s) => s.state === 'handoff' && s.inflight?.phase === 'drain'), 'every status shows the handoff in drain');
  t.match(answers[200]?.body, /handoff_in_progress 1/, 'metrics show it in progress');
  // A second handoff request meanwhile is refused with 409.
  const second = await request(sock, 'POST', '/v1/handoffs', '{}');
  t.equal(second.status, 409);
  inc.release();
  const lines = await within(stream, 10_000, 'the handoff stream to end');
  t.match(lines.at(-1), { record: { outcome: 'committed' } }, 'the streamed handoff committed');
  t.comment(`figures: 202 concurrent requests during a handoff answered in ${ms.toFixed(0)} ms`);
});

t.test('an abort racing a commit: the answer and the record always agree', async (t) => {
  const rig = await Rig.start();
  t.teardown(() => rig.stop());
  const { sock } = await serve(t, rig.sup);
  const ROUNDS = 40;
  const seen = { aborted: 0, tooLate: 0, nothing: 0 };
  for (let i = 0; i < ROUNDS; i++) {
    const oldPid = rig.incumbentPid();
    let successor: PeerEnd | undefined;
    let go!: () => void;
    const gate = new Promise<void>((r) => (go = r));
    let begun!: () => void;
    const beginSeen = new Promise<void>((r) => (begun = r));
    rig.onLaunch = (peer, spec) => {
      if (spec.role !== 'successor') return false;
      successor = peer;
      const g = new GoodPeer(peer);
      g.behaving = false;
      // Told Abort after Begin, it drains and leaves (as the library does).
      g.exitOnAbort = true;
      rig.good.set(peer.pid, g);
      void peer.attached.then(async () => {
        peer.send(helloOf(peer.pid, 'Successor'));
        const begin = await peer.waitFor('Begin');
        begun();
        await gate;
        peer.send({ type: 'Ready', handoff_id: begin.handoff_id, listening_on: [], healthz_ok: true, advertised_revision_per_shard: [...REVS] });
        g.behaving = true;
      });
      return true;
    };
    const stream = postHandoff(sock);
    await within(beginSeen, 10_000, 'Begin');
    // Ready and the abort leave together; which S sees first varies with the round.
    const lead = i % 4;
    const abortP = (async () => {
      for (let k = 0; k < 4 - lead; k++) await new Promise((r) => setImmediate(r));
      return request(sock, 'POST', '/v1/handoffs/current/abort', JSON.stringify({ reason: `race ${i}` }));
    })();
    for (let k = 0; k < lead; k++) await new Promise((r) => setImmediate(r));
    go();
    const [abort, lines] = await Promise.all([abortP, within(stream, 10_000, 'the stream')]);
    rig.onLaunch = undefined;
    const rec = lines.at(-1)?.['record'] as { outcome: string; reason_kind?: string } | undefined;
    const what = `round ${i}: abort ${abort.status}, record ${rec?.outcome ?? '?'}`;
    if (abort.status === 200) {
      seen.aborted++;
      t.equal(rec?.outcome, 'aborted', `${what}: an accepted abort aborts`);
      t.equal(rec?.reason_kind, 'operator_abort', `${what}: as operator_abort`);
      t.equal(rig.incumbentPid(), oldPid, `${what}: the incumbent stays`);
      t.ok(successor?.messages().some((m) => m.type === 'Abort'), `${what}: the successor was told`);
    } else {
      if (abort.status === 409) seen.tooLate++;
      else seen.nothing++;
      t.ok(abort.status === 409 || abort.status === 404, `${what}: a refused abort is 409 or 404`);
      t.equal(rec?.outcome, 'committed', `${what}: a refused abort means it committed`);
      t.equal(rig.incumbentPid(), successor?.pid, `${what}: the successor serves`);
    }
    t.equal(rig.sup.state, 'serving', `${what}: S serves`);
    rig.prune();
  }
  t.comment(`figures: abort vs commit, ${ROUNDS} rounds: ${seen.aborted} aborted, ${seen.tooLate} too late (409), ${seen.nothing} after the end (404)`);
});

t.test('an abort while S is already rolling back is refused for that reason, not as too late', async (t) => {
  const sup = new FakeSupervisor();
  const { sock } = await serve(t, sup);
  sup.inflight = { handoff_id: 'h2', phase: 'rollback', started_at: '2026-01-01T00:00:00.000Z', successor_pid: 5, elapsed_ms: 10 };
  sup.abortResult = false;
  const r = await request(sock, 'POST', '/v1/handoffs/current/abort');
  t.equal(r.status, 409);
  t.same(JSON.parse(r.body), { error: { kind: 'too_late', message: 'handoff h2 is already being rolled back' } });
});
