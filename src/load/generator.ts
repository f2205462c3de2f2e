/**
 * The load generator of the demo and the handoff bench: a bounded number of paced clients sending
 * a PUT/GET mix to the kv example over loopback, recording every request's latency and outcome,
 * and remembering every acknowledged write so that it can be read back at the end.
 *
 * Two kinds of clients:
 * - keep-alive clients: one `http.Agent({ keepAlive: true, maxSockets: 1 })` each, so each holds (at
 *   most) one persistent connection and reuses it across requests, across handoffs;
 * - new-connection clients: `agent: false`, one connection per request (`Connection: close`).
 *
 * Clients never retry. The product promise is "no failed request from a well-behaved client", and
 * a retry would hide exactly the failures the demo exists to show: a refused connection while the
 * listener changes hands, a reset of a keep-alive connection the draining incumbent closed, a 5xx
 * from a half-started successor. Every failed attempt is counted and described (when, which
 * client, what error, in which handoff phase), and the demo fails on any of them. A client that
 * follows HTTP would retry an idempotent request that failed on a reused keep-alive connection
 * before any response byte (browsers and undici do): that race is the one case the incumbent's
 * drain cannot rule out, so it is reported separately (`resetOnReuse`) to tell it from the rest.
 *
 * Each client owns its keys (`c<i>-k<j>`) and sends one request at a time, so the value a key must
 * hold is known exactly: the last acknowledged PUT (2xx), or one of the PUTs sent after it whose
 * outcome is unknown because they failed.
 */

import http from 'node:http';
import { performance } from 'node:perf_hooks';

export interface LoadOptions {
  port: number;
  host?: string;
  /** Clients with one persistent connection each. */
  keepAliveClients: number;
  /** Clients opening a new connection per request. */
  newConnectionClients: number;
  /** Each client starts at most one request per interval (it waits for the previous one first). */
  intervalMs: number;
  /** A hard cap on requests over all clients; the load stops by itself when it is reached. */
  maxRequests: number;
  keysPerClient: number;
  /** Probability that a request is a PUT (the rest are GETs of one of the client's own keys). */
  putRatio: number;
  /** A request without a complete response by then is a failure (`timeout`). */
  timeoutMs: number;
  /** Bytes of filler in each value, after a unique prefix. */
  valueBytes?: number;
}

export type RequestMethod = 'PUT' | 'GET';

export interface Failure {
  /** ms since the load started (performance clock of this process). */
  at: number;
  /** ms the request took until it failed. */
  ms: number;
  client: string;
  method: RequestMethod;
  key: string;
  /** `ECONNREFUSED`, `ECONNRESET`, `timeout`, `status 503`, `lost write` (404 of an acknowledged key), `stale read`, … */
  kind: string;
  detail: string;
  /** True when the request went out on a reused keep-alive connection. */
  reusedSocket: boolean;
}

export interface Sample {
  /** ms since the load started. */
  start: number;
  end: number;
  ok: boolean;
}

export interface LoadResult {
  requests: number;
  puts: number;
  gets: number;
  /** PUTs answered 2xx. */
  acknowledged: number;
  /** GETs that found a key this run had written (and checked its value). */
  checkedReads: number;
  failures: Failure[];
  refused: number;
  /** Failures that were ECONNRESET/`socket hang up` of a request on a reused keep-alive connection. */
  resetOnReuse: number;
  samples: Sample[];
  /** True when `maxRequests` stopped the load before `stop()` did. */
  capped: boolean;
  elapsedMs: number;
  /** Keep-alive connections opened (1 per keep-alive client when none were ever closed). */
  keepAliveConnections: number;
}

export interface VerifyResult {
  /** Keys with at least one acknowledged PUT. */
  keys: number;
  /** Keys that read back with their last acknowledged value (or a later, unacknowledged one). */
  survived: number;
  lost: Array<{ key: string; expected: string; got: string }>;
  /** Reads of the verification pass that failed (error, non-2xx except the expected 404). */
  errors: number;
}

interface KeyState {
  acked: string | undefined;
  /** Values sent after the last acknowledgement whose PUT failed: the store may hold any of them. */
  pending: string[];
}

interface Response {
  status: number;
  body: string;
  reusedSocket: boolean;
}

class RequestError extends Error {
  constructor(
    readonly kind: string,
    message: string,
    readonly reusedSocket: boolean,
  ) {
    super(message);
  }
}

/** One HTTP request with a deadline; rejects with a RequestError naming the error code. */
export function httpRequest(
  port: number,
  host: string,
  method: string,
  path: string,
  body: string | undefined,
  agent: http.Agent | false,
  timeoutMs: number,
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const headers: http.OutgoingHttpHeaders = {};
    if (body !== undefined) {
      headers['content-type'] = 'application/octet-stream';
      headers['content-length'] = Buffer.byteLength(body);
    }
    let settled = false;
    const req = http.request({ host, port, method, path, agent, headers });
    const timer = setTimeout(() => req.destroy(new RequestError('timeout', `no complete response within ${timeoutMs} ms`, req.reusedSocket)), timeoutMs);
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (err instanceof RequestError) reject(err);
      else {
        const code = (err as NodeJS.ErrnoException).code;
        reject(new RequestError(code ?? err.message, err.message, req.reusedSocket));
      }
    };
    req.on('error', fail);
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', fail);
      res.on('aborted', () => fail(new RequestError('aborted', 'the response was cut short', req.reusedSocket)));
      res.on('end', () => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8'), reusedSocket: req.reusedSocket });
      });
    });
    req.end(body);
  });
}

export class LoadGenerator {
  private readonly keys = new Map<string, KeyState>();
  private readonly samples: Sample[] = [];
  private readonly failures: Failure[] = [];
  private readonly agents: http.Agent[] = [];
  private requests = 0;
  private puts = 0;
  private gets = 0;
  private acknowledged = 0;
  private checkedReads = 0;
  private refused = 0;
  private resetOnReuse = 0;
  private keepAliveConnections = 0;
  private capped = false;
  private stopping = false;
  private wake: Array<() => void> = [];
  private waiters: Array<{ n: number; resolve: () => void }> = [];
  private loops: Array<Promise<void>> = [];
  private t0 = 0;
  private stoppedAt = 0;
  private readonly host: string;
  private readonly filler: string;

  constructor(private readonly o: LoadOptions) {
    this.host = o.host ?? '127.0.0.1';
    this.filler = 'x'.repeat(o.valueBytes ?? 64);
  }

  /** ms since the load started, on this process's monotonic clock. */
  now(): number {
    return performance.now() - this.t0;
  }

  start(): void {
    this.t0 = performance.now();
    for (let i = 0; i < this.o.keepAliveClients; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      this.loops.push(this.client(`ka${i}`, agent));
    }
    for (let i = 0; i < this.o.newConnectionClients; i++) this.loops.push(this.client(`nc${i}`, false));
    void Promise.all(this.loops).then(() => this.settle(true));
  }

  /** Stops sending, waits for the requests in flight, and returns what was recorded. */
  async stop(): Promise<LoadResult> {
    this.stopping = true;
    for (const w of this.wake.splice(0)) w();
    await Promise.all(this.loops);
    this.stoppedAt = this.now();
    for (const a of this.agents) a.destroy();
    return {
      requests: this.requests,
      puts: this.puts,
      gets: this.gets,
      acknowledged: this.acknowledged,
      checkedReads: this.checkedReads,
      failures: this.failures,
      refused: this.refused,
      resetOnReuse: this.resetOnReuse,
      samples: this.samples,
      capped: this.capped,
      elapsedMs: this.stoppedAt,
      keepAliveConnections: this.keepAliveConnections,
    };
  }

  private pause(ms: number): Promise<void> {
    if (this.stopping || ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.wake.push(done);
    });
  }

  private async client(name: string, agent: http.Agent | false): Promise<void> {
    // Spread the clients over one interval so that they do not all fire together.
    await this.pause(Math.random() * this.o.intervalMs);
    let seq = 0;
    while (!this.stopping) {
      if (this.requests >= this.o.maxRequests) {
        this.capped = true;
        return;
      }
      const t = performance.now();
      const key = `${name}-k${Math.floor(Math.random() * this.o.keysPerClient)}`;
      if (Math.random() < this.o.putRatio) await this.put(name, agent, key, `${key}-v${seq++}-${this.filler}`);
      else await this.get(name, agent, key);
      await this.pause(this.o.intervalMs - (performance.now() - t));
    }
  }

  private state(key: string): KeyState {
    let s = this.keys.get(key);
    if (!s) {
      s = { acked: undefined, pending: [] };
      this.keys.set(key, s);
    }
    return s;
  }

  private record(start: number, ok: boolean): void {
    this.samples.push({ start: start - this.t0, end: this.now(), ok });
    this.settle();
  }

  /**
   * Resolves once `n` requests have completed (answered or failed), or once every client has
   * ended (stopped, or at the request cap): a caller waits on progress, not on a clock.
   */
  completed(n: number): Promise<void> {
    return new Promise((resolve) => {
      this.waiters.push({ n, resolve });
      this.settle();
    });
  }

  private settle(ended = false): void {
    this.waiters = this.waiters.filter((w) => {
      if (!ended && this.samples.length < w.n) return true;
      w.resolve();
      return false;
    });
  }

  private fail(client: string, method: RequestMethod, key: string, start: number, kind: string, detail: string, reusedSocket: boolean): void {
    if (kind === 'ECONNREFUSED') this.refused++;
    if (reusedSocket && (kind === 'ECONNRESET' || kind === 'ECONNABORTED' || detail === 'socket hang up')) this.resetOnReuse++;
    this.failures.push({ at: start - this.t0, ms: performance.now() - start, client, method, key, kind, detail, reusedSocket });
  }

  private async put(client: string, agent: http.Agent | false, key: string, value: string): Promise<void> {
    this.requests++;
    this.puts++;
    const s = this.state(key);
    const start = performance.now();
    try {
      const r = await httpRequest(this.o.port, this.host, 'PUT', `/kv/${key}`, value, agent, this.o.timeoutMs);
      this.noteSocket(agent, r.reusedSocket);
      const ok = r.status >= 200 && r.status < 300;
      this.record(start, ok);
      if (ok) {
        this.acknowledged++;
        s.acked = value;
        s.pending = [];
      } else {
        s.pending.push(value);
        this.fail(client, 'PUT', key, start, `status ${r.status}`, r.body.slice(0, 200), r.reusedSocket);
      }
    } catch (err) {
      const e = asRequestError(err);
      this.noteSocket(agent, e.reusedSocket);
      this.record(start, false);
      s.pending.push(value);
      this.fail(client, 'PUT', key, start, e.kind, e.message, e.reusedSocket);
    }
  }

  private async get(client: string, agent: http.Agent | false, key: string): Promise<void> {
    this.requests++;
    this.gets++;
    const s = this.keys.get(key);
    const start = performance.now();
    try {
      const r = await httpRequest(this.o.port, this.host, 'GET', `/kv/${key}`, undefined, agent, this.o.timeoutMs);
      this.noteSocket(agent, r.reusedSocket);
      const verdict = judgeRead(s, r.status, r.body);
      this.record(start, verdict === null);
      if (s?.acked !== undefined && r.status === 200) this.checkedReads++;
      if (verdict) this.fail(client, 'GET', key, start, verdict.kind, verdict.detail, r.reusedSocket);
    } catch (err) {
      const e = asRequestError(err);
      this.noteSocket(agent, e.reusedSocket);
      this.record(start, false);
      this.fail(client, 'GET', key, start, e.kind, e.message, e.reusedSocket);
    }
  }

  /** A keep-alive client's request on a fresh socket means its previous connection was closed. */
  private noteSocket(agent: http.Agent | false, reused: boolean): void {
    if (agent !== false && !reused) this.keepAliveConnections++;
  }

  /** Reads back every key that was ever written; run after `stop()`, against whatever serves now. */
  async verify(concurrency = 8): Promise<VerifyResult> {
    const written = [...this.keys.entries()].filter(([, s]) => s.acked !== undefined || s.pending.length > 0);
    const result: VerifyResult = { keys: 0, survived: 0, lost: [], errors: 0 };
    const agents = Array.from({ length: concurrency }, () => new http.Agent({ keepAlive: true, maxSockets: 1 }));
    let next = 0;
    const worker = async (agent: http.Agent): Promise<void> => {
      for (;;) {
        const entry = written[next++];
        if (!entry) return;
        const [key, s] = entry;
        if (s.acked !== undefined) result.keys++;
        let r: Response;
        try {
          r = await httpRequest(this.o.port, this.host, 'GET', `/kv/${key}`, undefined, agent, this.o.timeoutMs);
        } catch (err) {
          result.errors++;
          if (s.acked !== undefined) result.lost.push({ key, expected: s.acked, got: `error: ${err instanceof Error ? err.message : String(err)}` });
          continue;
        }
        const verdict = judgeRead(s, r.status, r.body);
        if (verdict === null) {
          if (s.acked !== undefined) result.survived++;
        } else if (s.acked !== undefined) {
          result.lost.push({ key, expected: s.acked, got: r.status === 200 ? r.body : `status ${r.status}` });
        } else result.errors++;
      }
    };
    await Promise.all(agents.map(worker));
    for (const a of agents) a.destroy();
    return result;
  }
}

function asRequestError(err: unknown): RequestError {
  return err instanceof RequestError ? err : new RequestError('error', err instanceof Error ? err.message : String(err), false);
}

/** null when a GET answer is consistent with what this run wrote; else what is wrong with it. */
function judgeRead(s: KeyState | undefined, status: number, body: string): { kind: string; detail: string } | null {
  const never = s === undefined || s.acked === undefined;
  if (status === 404) {
    if (never) return null;
    return { kind: 'lost write', detail: `404 for a key whose PUT was acknowledged` };
  }
  if (status < 200 || status >= 300) return { kind: `status ${status}`, detail: body.slice(0, 200) };
  if (s === undefined) return { kind: 'stale read', detail: 'a value for a key this run never wrote' };
  if (body === s.acked || s.pending.includes(body)) return null;
  return { kind: 'stale read', detail: `got ${body.slice(0, 40)}…, expected ${String(s.acked).slice(0, 40)}…` };
}
