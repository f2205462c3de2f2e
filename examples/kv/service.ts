/**
 * The kv service as a function: its HTTP server and the options it gives the service library, for
 * a given data directory. main.ts runs it as a process; a test runs it in-process under the fake
 * supervisor of `handoff-supervisor/testing` (test/testing/kv.test.ts). Building the options in a
 * function of their inputs (no argv, no environment read here) is what makes a service testable.
 */

import http from 'node:http';
import type net from 'node:net';
// In your own service: import { HttpDrain, SealError, ... } from 'handoff-supervisor/service';
import { HttpDrain, SealError, type Logger, type ServiceOptions } from '../../src/service/index.js';
import { KvStore, SealedError } from './store.js';

/** Fault injection (test equipment, off unless asked for): see README.md. */
export const FAULTS = [
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
export type Fault = (typeof FAULTS)[number];

export interface KvConfig {
  dataDir: string;
  shards: number;
  buildId: string;
  /** The data-dir lock (S's HANDOFF_LOCK_PATH wins when both are set); none when unset. */
  lockPath?: string;
  /** Without a supervisor and without LISTEN_FDS: where to listen. */
  listen?: net.ListenOptions;
  logger: Logger;
  /** The faults asked for (none by default), and the duration of the slow-* ones. */
  faults?: ReadonlySet<Fault>;
  faultMs?: number;
  /** The event log's hook points inside the hooks (main.ts writes them to KV_EVENTS). */
  note?: (event: string, detail?: Record<string, unknown>) => void;
}

export interface Kv {
  options: ServiceOptions;
  store: KvStore;
  server: http.Server;
}

const MAX_BODY = 1 << 20;

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

export function kvService(cfg: KvConfig): Kv {
  const { buildId, shards, logger: log } = cfg;
  const faultMs = cfg.faultMs ?? 2000;
  const fault = (f: Fault): boolean => cfg.faults?.has(f) ?? false;
  const note = cfg.note ?? (() => undefined);
  const store = new KvStore(cfg.dataDir, shards);

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
    lockPath: cfg.lockPath,
    standaloneListen: cfg.listen ? { http: cfg.listen } : undefined,
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

  return { options, store, server };
}
