/**
 * The kv example: an HTTP key-value store on a sharded append-only log, handed over by `handoff`
 * without losing a request or an acknowledged write. It embeds the service library the way any
 * service would; everything about faults is opt-in test equipment (see README.md).
 *
 *   node dist/examples/kv/main.js --data DIR [--shards 4] [--build-id X] [--fault NAME]...
 */

import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';
// In your own service: import { createService, SealError } from 'handoff-supervisor/service';
import { HttpDrain, SealError, createService, defaultLogger, type ServiceOptions } from '../../src/service/index.js';
import { KvStore, SealedError } from './store.js';

const FAULTS = [
  'crash-before-hello',
  'crash-on-prepare',
  'slow-drain',
  'seal-fail',
  'slow-seal',
  'crash-in-seal',
  'exit-in-seal',
  'crash-after-seal',
  'ignore-commit',
  'crash-on-begin',
  'abort-on-begin',
  'hang-on-begin',
  'open-fail',
  'slow-open',
  'hang-in-open',
  'unhealthy',
  'bad-revisions',
  'crash-after-ready',
  'silent',
] as const;
type Fault = (typeof FAULTS)[number];

const MAX_BODY = 1 << 20;

// --- test equipment: an event log and breakpoints (opt-in, see README.md) ---------------------------
// KV_EVENTS=<file>: one JSON line per event, appended synchronously, so that a test can follow this
// process's protocol steps from outside, without sleeping. KV_BREAK=<file>: lines `<pid|build> <event>`;
// at a listed event this process stops itself (SIGSTOP) right after logging it, so that a test can
// inject a fault at that exact point, then SIGCONT it. The file is read at every event: the test edits it.
const eventsFile = process.env.KV_EVENTS;
const breakFile = process.env.KV_BREAK;
let eventBuild: string | null = null;

function note(event: string, detail: Record<string, unknown> = {}): void {
  if (eventsFile) {
    const rec = { event, pid: process.pid, build: eventBuild, t_ns: process.hrtime.bigint().toString(), ...detail };
    try {
      fs.appendFileSync(eventsFile, `${JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    } catch {
      // A test aid must never take the service down.
    }
  }
  if (breakFile !== undefined && breakpointAt(event)) process.kill(process.pid, 'SIGSTOP');
}

function breakpointAt(event: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(breakFile!, 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((line) => {
    const [who, ev] = line.trim().split(/\s+/);
    return ev === event && (who === String(process.pid) || (eventBuild !== null && who === eventBuild));
  });
}

// The build before the arguments are parsed, so that a breakpoint at `start` can name it.
const buildArg = process.argv.findIndex((a) => a === '--build-id' || a.startsWith('--build-id='));
eventBuild = buildArg < 0 ? 'kv-dev' : (process.argv[buildArg]!.split('=')[1] ?? process.argv[buildArg + 1] ?? null);
note('start', { argv: process.argv.slice(2) });
process.on('exit', (code) => note('exit', { code }));

function usage(msg: string): never {
  process.stderr.write(`kv: ${msg}\nusage: main.js --data DIR [--shards N] [--build-id ID] [--lock PATH] [--listen HOST:PORT] [--fault NAME]... [--fault-ms MS]\n`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        data: { type: 'string' },
        shards: { type: 'string', default: '4' },
        'build-id': { type: 'string', default: 'kv-dev' },
        lock: { type: 'string' },
        listen: { type: 'string' },
        fault: { type: 'string', multiple: true, default: [] },
        'fault-ms': { type: 'string', default: '2000' },
      },
      strict: true,
    });
  } catch (err) {
    return usage((err as Error).message);
  }
})();

if (!values.data) usage('--data is required');
const shards = Number(values.shards);
if (!Number.isInteger(shards) || shards < 1 || shards > 1024) usage('--shards must be an integer from 1 to 1024');
const faultMs = Number(values['fault-ms']);
if (!Number.isFinite(faultMs) || faultMs < 0) usage('--fault-ms must be a non-negative number');
const faults = new Set<Fault>();
for (const f of values.fault) {
  if (!(FAULTS as readonly string[]).includes(f)) usage(`unknown fault ${f} (known: ${FAULTS.join(', ')})`);
  faults.add(f as Fault);
}
const fault = (f: Fault): boolean => faults.has(f);

if (fault('crash-before-hello')) process.exit(1);
// No heartbeats from us: S must notice the silence.
if (fault('silent')) process.env.HANDOFF_HEARTBEAT_MS = String(2 ** 31 - 1);

const dataDir = path.resolve(values.data);
// The default lock lives in the data directory, so it must exist before the lock is taken.
fs.mkdirSync(dataDir, { recursive: true });
const buildId = values['build-id'];
eventBuild = buildId;
const log = defaultLogger().child({ svc: 'kv', build_id: buildId });
const store = new KvStore(dataDir, shards);
const never = <T>(): Promise<T> => new Promise<T>(() => undefined);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const die = (): never => process.kill(process.pid, 'SIGKILL') as never;

function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= MAX_BODY) chunks.push(c);
    });
    req.on('end', () => resolve(size > MAX_BODY ? undefined : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  // Who answered: a load generator can prove which process and which build served each request.
  res.setHeader('x-kv-pid', String(process.pid));
  res.setHeader('x-kv-build', buildId);
  const url = new URL(req.url ?? '/', 'http://kv');
  if (url.pathname === '/healthz') return json(res, store.healthy() ? 200 : 503, { ok: store.healthy() });
  if (url.pathname === '/info') return json(res, 200, { pid: process.pid, build_id: buildId, shards, revisions: store.revisions(), sealed: store.isSealed });
  if (!url.pathname.startsWith('/kv/')) return json(res, 404, { error: 'not found' });
  let key: string;
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
  handle(req, res).catch((err: unknown) => {
    log.error({ err: (err as Error).message, url: req.url }, 'request failed');
    if (!res.headersSent) json(res, 500, { error: 'internal error' });
    else res.destroy();
  });
});

const options: ServiceOptions = {
  buildId,
  servers: { http: server },
  lockPath: values.lock ?? (process.env.HANDOFF_LOCK_PATH ? undefined : path.join(dataDir, 'kv.lock')),
  standaloneListen: values.listen ? { http: parseListen(values.listen) } : undefined,
  logger: log,

  async open() {
    note('open-start');
    if (fault('open-fail')) throw new Error('fault injection: open-fail');
    if (fault('hang-in-open')) await never();
    if (fault('slow-open')) await sleep(faultMs);
    const revisions = await store.open();
    log.info({ revisions }, 'replayed');
    if (fault('bad-revisions')) revisions[0] = (revisions[0] ?? 0) + 1;
    note('open-end', { revisions });
    return { revisions };
  },

  async seal(progress) {
    if (fault('exit-in-seal')) process.exit(1);
    const perShard = async (i: number): Promise<void> => {
      // Writes are stopped and shard i is fsynced; the lock is still held: inside the seal.
      note('seal-shard', { shard: i });
      if (fault('crash-in-seal') && i === 0) die();
      if (fault('slow-seal')) await sleep(faultMs / shards);
    };
    const r = await store.seal(progress, perShard);
    if (fault('seal-fail')) throw new SealError('fault injection: seal-fail', 'writes stopped, all shards fsynced, lock kept');
    return { revisions: r.revisions, fingerprint: r.fingerprint };
  },

  async resume() {
    const revisions = await store.reopen();
    log.info({ revisions }, 'writable again');
  },

  health: () => !fault('unhealthy') && store.healthy(),

  async begin() {
    if (fault('crash-on-begin')) process.exit(1);
    if (fault('abort-on-begin')) throw new Error('fault injection: abort-on-begin');
    if (fault('hang-on-begin')) await never();
  },

  async close() {
    if (fault('ignore-commit')) await never();
    await store.close();
  },
};

if (fault('slow-drain')) {
  // The drain lasts the whole grace, however quickly the connections go (until called off).
  const drainer = new HttpDrain(server);
  let cancel: (() => void) | undefined;
  options.drain = async (graceMs) => {
    const until = Date.now() + graceMs;
    const left = await drainer.drain(graceMs);
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, Math.max(0, until - Date.now()));
      cancel = () => {
        clearTimeout(timer);
        resolve();
      };
    });
    return left;
  };
  options.undrain = () => {
    cancel?.();
    drainer.undrain();
  };
}

function parseListen(s: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) usage('--listen takes HOST:PORT');
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}

const service = createService(options);
if (eventsFile !== undefined || breakFile !== undefined) {
  const events = ['hello', 'accepting', 'accept-closed', 'prepare', 'drained', 'seal', 'sealed', 'seal-failed', 'begin', 'ready', 'committed', 'aborted', 'resumed', 'supervisor-lost'] as const;
  for (const ev of events) {
    service.on(ev, (...args: unknown[]) => {
      const detail = (args[0] ?? {}) as Record<string, unknown>;
      // Where a standalone copy listens (it is not told its port otherwise).
      const addr = ev === 'accepting' ? server.address() : undefined;
      note(ev, addr && typeof addr === 'object' ? { ...detail, port: addr.port } : detail);
    });
  }
}
if (fault('crash-on-prepare')) service.on('prepare', die);
if (fault('crash-after-seal')) service.on('sealed', () => process.exit(1));
if (fault('crash-after-ready')) service.on('ready', die);
if (faults.size > 0) log.warn({ faults: [...faults], fault_ms: faultMs }, 'fault injection enabled');

await service.start();
log.info({ role: service.contract.role, supervised: service.supervised }, 'serving');
