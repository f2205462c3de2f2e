// The kv example without the service library, for the library's throughput cost in
// `npm run bench:compare`: the same store (dist/examples/kv/store.js), the same request handler
// (copied from examples/kv/service.ts: keep the two in step), a plain node:http server listening on
// its own. What it lacks is what the library adds: the connection tracking of HttpDrain on every
// connection and request, the data-dir lock, the logger, signal handling. It stops the way a
// plain Node service does: server.close() (which, since Node 19, also closes idle keep-alive
// connections), then exit once the requests in flight are answered. `npm run bench:compare` also
// runs it under PM2 (with BENCH_DATA_PER_PROCESS=1: a data directory per process) to show a
// reload of a service without the library's drain. Bench-only.
//
//   node bench/compare-plain-kv.mjs --data DIR --listen HOST:PORT [--shards 4]

import http from 'node:http';
import { parseArgs } from 'node:util';

const { KvStore, SealedError } = await import(new URL('../dist/examples/kv/store.js', import.meta.url).href);

const { values } = parseArgs({ options: { data: { type: 'string' }, listen: { type: 'string' }, shards: { type: 'string', default: '4' } } });
if (!values.data || !values.listen) {
  process.stderr.write('usage: compare-plain-kv.mjs --data DIR --listen HOST:PORT [--shards N]\n');
  process.exit(2);
}
const m = /^(.*):(\d+)$/.exec(values.listen);
if (!m) process.exit(2);
const shards = Number(values.shards);
import path from 'node:path';
const dataDir = process.env.BENCH_DATA_PER_PROCESS === '1' ? path.join(values.data, `p${process.pid}`) : values.data;
const store = new KvStore(dataDir, shards);
const MAX_BODY = 1 << 20;

// --- from examples/kv/main.ts --------------------------------------------------------------------
function json(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url ?? '/', 'http://kv');
  if (url.pathname === '/healthz') return json(res, store.healthy() ? 200 : 503, { ok: store.healthy() });
  if (url.pathname === '/info') return json(res, 200, { pid: process.pid, build_id: 'plain', shards, revisions: store.revisions(), sealed: store.isSealed });
  if (!url.pathname.startsWith('/kv/')) return json(res, 404, { error: 'not found' });
  let key;
  try {
    key = decodeURIComponent(url.pathname.slice(4));
  } catch {
    return json(res, 400, { error: 'bad key encoding' });
  }
  if (key === '') return json(res, 400, { error: 'empty key' });
  if (req.method === 'GET') {
    const v = store.get(key);
    if (!v) return json(res, 404, { error: 'no such key' });
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': v.length });
    res.end(v);
    return;
  }
  if (req.method === 'PUT') {
    const body = await readBody(req);
    if (!body) return json(res, 413, { error: `value larger than ${MAX_BODY} bytes` });
    try {
      const r = await store.put(key, body);
      return json(res, r.created ? 201 : 200, { rev: r.rev, shard: r.shard });
    } catch (err) {
      if (err instanceof SealedError) {
        res.setHeader('retry-after', '1');
        return json(res, 503, { error: err.message });
      }
      throw err;
    }
  }
  res.setHeader('allow', 'GET, PUT');
  return json(res, 405, { error: 'method not allowed' });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch(() => {
    if (!res.headersSent) json(res, 500, { error: 'internal error' });
    else res.destroy();
  });
});
// -------------------------------------------------------------------------------------------------

await store.open();
server.listen({ host: m[1] || '127.0.0.1', port: Number(m[2]) });
const stop = () => {
  server.close(() => store.close().finally(() => process.exit(0)));
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
