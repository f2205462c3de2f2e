/**
 * The load generator is what the demo's verdict rests on: these tests show it sees each kind of
 * failure it claims to (a refused connection, a reset, a 5xx, a lost or stale write, a timeout), and
 * that a correct server produces none.
 */

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import t from 'tap';
import { renderReport, buildReport } from '../../src/cli/demo/report.js';
import { LoadGenerator, clientSplit, fmtMs, percentile, placeInTime, splitLatency, summarize, type HandoffRun, type LoadOptions } from '../../src/load/index.js';

type Mode = 'ok' | 'forget' | 'stale' | 'error500' | 'reset' | 'hang';

/** A tiny in-memory kv server whose misbehaviour is chosen per test. */
async function kvServer(mode: () => Mode): Promise<{ port: number; close: () => Promise<void>; store: Map<string, string> }> {
  const store = new Map<string, string>();
  const server = http.createServer((req, res) => {
    const m = mode();
    if (m === 'reset') {
      req.socket.destroy();
      return;
    }
    if (m === 'hang') return;
    if (m === 'error500') {
      res.writeHead(500).end('boom');
      return;
    }
    const key = (req.url ?? '').replace(/^\/kv\//, '');
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.method === 'PUT') {
        if (m !== 'forget') store.set(key, Buffer.concat(chunks).toString());
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"rev":1,"shard":0}');
        return;
      }
      const v = store.get(key);
      if (v === undefined) res.writeHead(404).end();
      else res.writeHead(200).end(m === 'stale' ? `${v}-old` : v);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    store,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function opts(port: number, over: Partial<LoadOptions> = {}): LoadOptions {
  return { port, keepAliveClients: 3, newConnectionClients: 1, intervalMs: 5, maxRequests: 200, keysPerClient: 4, putRatio: 0.5, timeoutMs: 2_000, ...over };
}

/** Runs the load until `n` requests completed (Infinity: until the clients end at the cap). */
async function runUntil(lg: LoadGenerator, n: number): ReturnType<LoadGenerator['stop']> {
  lg.start();
  await lg.completed(n);
  return lg.stop();
}

t.test('a correct server: no failures, every write read back, keep-alive connections reused', async (t) => {
  const s = await kvServer(() => 'ok');
  t.teardown(s.close);
  const lg = new LoadGenerator(opts(s.port));
  const r = await runUntil(lg, 40);
  t.equal(r.failures.length, 0, JSON.stringify(r.failures.slice(0, 3)));
  t.equal(r.refused, 0);
  t.ok(r.requests > 20, `${r.requests} requests`);
  t.equal(r.requests, r.puts + r.gets);
  t.equal(r.samples.length, r.requests);
  t.ok(r.acknowledged > 0);
  t.equal(r.keepAliveConnections, 3, 'one connection per keep-alive client');
  const v = await lg.verify(2);
  t.ok(v.keys > 0);
  t.equal(v.survived, v.keys);
  t.same(v.lost, []);
  t.equal(v.errors, 0);
});

t.test('the request cap stops the load by itself', async (t) => {
  const s = await kvServer(() => 'ok');
  t.teardown(s.close);
  const lg = new LoadGenerator(opts(s.port, { maxRequests: 10, intervalMs: 1 }));
  const r = await runUntil(lg, Infinity);
  t.ok(r.capped);
  t.ok(r.requests >= 10 && r.requests <= 10 + 4, `${r.requests} requests`);
});

t.test('a server that forgets writes: lost writes during the load and in the read-back', async (t) => {
  let mode: Mode = 'ok';
  const s = await kvServer(() => mode);
  t.teardown(s.close);
  const lg = new LoadGenerator(opts(s.port, { putRatio: 1 }));
  await runUntil(lg, 10);
  s.store.clear();
  mode = 'forget';
  const v = await lg.verify();
  t.ok(v.keys > 0);
  t.equal(v.survived, 0);
  t.equal(v.lost.length, v.keys);
  t.match(v.lost[0]?.got, /status 404/);
});

t.test('stale reads and lost writes are failures of the GETs that see them', async (t) => {
  let mode: Mode = 'ok';
  const s = await kvServer(() => mode);
  t.teardown(s.close);
  const lg = new LoadGenerator(opts(s.port, { keysPerClient: 1, putRatio: 0.5 }));
  lg.start();
  await lg.completed(10);
  mode = 'stale';
  await lg.completed(30);
  const r = await lg.stop();
  t.ok(r.failures.some((f) => f.kind === 'stale read' && f.method === 'GET'), JSON.stringify(r.failures.slice(0, 2)));
  const v = await lg.verify();
  t.ok(v.lost.length > 0);
  t.match(v.lost[0]?.got, /-old$/);
});

t.test('5xx answers, resets and timeouts are failures; a closed port is refused', async (t) => {
  for (const [mode, kind] of [
    ['error500', /^status 500$/],
    ['reset', /^(ECONNRESET|socket hang up)$/],
    ['hang', /^timeout$/],
  ] as const) {
    const s = await kvServer(() => mode);
    // Only the hang needs a short timeout; elsewhere a busy machine must not turn an answer into one.
    const lg = new LoadGenerator(opts(s.port, { timeoutMs: mode === 'hang' ? 100 : 10_000, maxRequests: 8 }));
    const r = await runUntil(lg, Infinity);
    await s.close();
    t.ok(r.failures.length > 0, mode);
    t.ok(
      r.failures.every((f) => kind.test(f.kind)),
      `${mode}: ${[...new Set(r.failures.map((f) => f.kind))].join(',')}`,
    );
    t.equal(r.refused, 0);
  }
  const s = await kvServer(() => 'ok');
  const port = s.port;
  await s.close();
  const lg = new LoadGenerator(opts(port, { maxRequests: 8 }));
  const r = await runUntil(lg, Infinity);
  t.ok(r.refused > 0);
  t.equal(r.refused, r.failures.length);
  t.ok(r.failures.every((f) => f.kind === 'ECONNREFUSED'));
  const v = await lg.verify();
  t.equal(v.keys, 0, 'nothing was acknowledged');
});

t.test('stats', async (t) => {
  t.ok(Number.isNaN(percentile([], 50)));
  t.equal(percentile([1, 2, 3, 4], 50), 2);
  t.equal(percentile([1, 2, 3, 4], 99), 4);
  t.same(summarize([3, 1, 2]), { count: 3, p50: 2, p99: 3, max: 3 });
  t.equal(fmtMs(Number.NaN), '-');
  t.equal(fmtMs(1.234), '1.2 ms');
  t.equal(fmtMs(123.4), '123 ms');
  t.same(clientSplit(20), { keepAlive: 16, newConnection: 4 });
  t.same(clientSplit(1), { keepAlive: 1, newConnection: 0 });
  t.same(clientSplit(2), { keepAlive: 1, newConnection: 1 });
});

t.test('the report: latency split, failures placed in time, the verdict', async (t) => {
  const runs: HandoffRun[] = [
    {
      n: 1,
      build: 'b2',
      start: 100,
      end: 200,
      marks: [
        { phase: 'hello', at: 100 },
        { phase: 'drain', at: 150 },
      ],
      servingAfter: 'b2',
      record: {
        handoff_id: 'x',
        outcome: 'committed',
        started_at: '',
        ended_at: '',
        incumbent_pid: 1,
        successor_pid: 2,
        command: [],
        phases: [
          { phase: 'hello', ms: 50 },
          { phase: 'drain', ms: 50 },
        ],
        total_ms: 100,
        rolled_forward: false,
        revisions_checked: true,
      },
    },
  ];
  t.equal(placeInTime(50, runs), 'before the first handoff');
  t.equal(placeInTime(160, runs), 'handoff 1 (drain)');
  t.equal(placeInTime(300, runs), 'after handoff 1');
  const split = splitLatency(
    [
      { start: 0, end: 10, ok: true },
      { start: 90, end: 110, ok: true },
      { start: 250, end: 251, ok: true },
    ],
    runs,
  );
  t.equal(split.during.count, 1);
  t.equal(split.outside.count, 2);
  const base = {
    port: 1,
    tempDir: '/tmp/x',
    logFile: '/tmp/x/log',
    load: { keepAliveClients: 1, newConnectionClients: 1, intervalMs: 25, putRatio: 0.5, elapsedMs: 1000, capped: false },
    runs,
  };
  const clean = { requests: 3, puts: 1, gets: 2, acknowledged: 1, checkedReads: 1, failures: [], refused: 0, resetOnReuse: 0, samples: [], capped: false, elapsedMs: 1000, keepAliveConnections: 1 };
  const good = buildReport({ ...base, result: clean, verify: { keys: 1, survived: 1, lost: [], errors: 0 } });
  t.ok(good.ok);
  const text = renderReport(good);
  t.match(text, /^ {2}failures {12}0$/m);
  t.match(text, /^ {2}refused {13}0$/m);
  t.match(text, /writes survived\s+yes/);
  t.match(text, /PASS/);
  const failure = { at: 160, ms: 3, client: 'ka0', method: 'GET' as const, key: 'k', kind: 'ECONNRESET', detail: 'read ECONNRESET', reusedSocket: true };
  const bad = buildReport({ ...base, result: { ...clean, failures: [failure], resetOnReuse: 1 }, verify: { keys: 1, survived: 0, lost: [{ key: 'k', expected: 'v', got: 'status 404' }], errors: 0 } });
  t.notOk(bad.ok);
  t.ok(bad.kept);
  const badText = renderReport(bad);
  t.match(badText, /handoff 1 \(drain\)/);
  t.match(badText, /writes survived\s+no/);
  t.match(badText, /resets on reuse/);
  t.match(badText, /FAIL/);
  const none = buildReport({ ...base, runs: [], result: clean, verify: null, error: 'the supervisor host exited with code 1' });
  t.notOk(none.ok);
  t.match(renderReport(none), /error: the supervisor host/);
});
