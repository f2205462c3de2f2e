/**
 * A bounded HTTP load for the examples: keep-alive clients (one persistent connection each, reused
 * across requests and, after a drain closes it, replaced) and new-connection clients, each sending
 * one GET at a time to a path that answers `{"pid", "build"}`. Clients never retry: every failed
 * request (an error, a timeout, a non-2xx) is recorded. It stops by itself after `maxRequests`
 * requests or `maxMs`, whichever comes first.
 *
 * The requests themselves are the load kit's (`httpRequest`: deadline, error kinds, reused-socket
 * flag), and the caps, waits and stop are test/lib/bounded-load.ts's; what is added is what the
 * examples' tests wait on: who answered each client.
 */

import http from 'node:http';
import { httpRequest } from '../../src/load/index.js';
import { BoundedLoad, ClientStats, type LoadFailure } from '../lib/bounded-load.js';

export interface HttpLoadOptions {
  port: number;
  path: string;
  keepAliveClients: number;
  newConnectionClients: number;
  /** Each client starts at most one request per interval. */
  intervalMs: number;
  maxRequests: number;
  maxMs: number;
  /** A request without a complete response by then is a failure. */
  timeoutMs?: number;
}

export interface HttpFailure extends LoadFailure {
  reusedSocket: boolean;
}

/** `connections`: a keep-alive client's is 1 until a drain closes it. */
export class HttpClientStats extends ClientStats {
  constructor(
    name: string,
    readonly keepAlive: boolean,
  ) {
    super(name);
  }
}

export interface HttpLoadResult {
  ok: number;
  failures: HttpFailure[];
  /** True when maxRequests or maxMs stopped the load before stop() did. */
  capped: boolean;
}

export class HttpLoad extends BoundedLoad<HttpFailure, HttpLoadResult> {
  readonly clients: HttpClientStats[] = [];
  private readonly agents: http.Agent[] = [];
  private ok = 0;

  constructor(private readonly o: HttpLoadOptions) {
    super({ maxSends: o.maxRequests, maxMs: o.maxMs, unit: 'requests' });
  }

  start(): void {
    const loops: Array<Promise<void>> = [];
    for (let i = 0; i < this.o.keepAliveClients; i++) {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      this.agents.push(agent);
      loops.push(this.client(new HttpClientStats(`ka${i}`, true), agent));
    }
    for (let i = 0; i < this.o.newConnectionClients; i++) loops.push(this.client(new HttpClientStats(`nc${i}`, false), false));
    this.begin(loops);
  }

  /** One request on a new connection, outside the load. */
  once(): Promise<{ status: number; body: string }> {
    return httpRequest(this.o.port, '127.0.0.1', 'GET', this.o.path, undefined, false, this.o.timeoutMs ?? 10_000);
  }

  protected result(): HttpLoadResult {
    for (const a of this.agents) a.destroy();
    return { ok: this.ok, failures: this.failures, capped: this.capped };
  }

  private async client(c: HttpClientStats, agent: http.Agent | false): Promise<void> {
    this.clients.push(c);
    // Spread the clients over one interval so that they do not all fire together.
    await this.pause(Math.random() * this.o.intervalMs);
    while (this.next()) {
      const started = performance.now();
      try {
        const r = await httpRequest(this.o.port, '127.0.0.1', 'GET', this.o.path, undefined, agent, this.o.timeoutMs ?? 10_000);
        if (!r.reusedSocket) c.connections++;
        if (r.status !== 200) {
          this.failures.push({ client: c.name, kind: `status ${r.status}`, detail: r.body.slice(0, 200), reusedSocket: r.reusedSocket });
        } else {
          const who = JSON.parse(r.body) as { pid: number };
          c.answeredBy(who.pid);
          this.ok++;
        }
      } catch (err) {
        const e = err as Error & { kind?: string; reusedSocket?: boolean };
        this.failures.push({ client: c.name, kind: e.kind ?? 'error', detail: e.message, reusedSocket: e.reusedSocket ?? false });
      }
      this.wake();
      await this.pause(this.o.intervalMs - (performance.now() - started));
    }
  }
}
