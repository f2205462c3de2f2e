/** A scriptable SupervisorApi and a raw HTTP-over-Unix-socket client for the admin server tests. */

import http from 'node:http';
import net from 'node:net';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { HandoffEvent, HandoffRecord, SupervisorApi, SupervisorMetrics, SupervisorStatus, UpgradeRequest } from '../../src/supervisor/types.js';
import { ExecNotAllowedError } from '../../src/supervisor/allowlist.js';
import { PhaseHistograms } from '../../src/supervisor/metrics.js';

export function record(over: Partial<HandoffRecord> = {}): HandoffRecord {
  return {
    handoff_id: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0',
    outcome: 'committed',
    started_at: '2026-01-01T00:00:00.000Z',
    ended_at: '2026-01-01T00:00:01.500Z',
    incumbent_pid: 100,
    successor_pid: 200,
    command: ['node', 'main.js'],
    phases: [
      { phase: 'hello', ms: 100 },
      { phase: 'drain', ms: 300 },
      { phase: 'seal', ms: 400 },
      { phase: 'begin', ms: 500 },
      { phase: 'commit', ms: 200 },
    ],
    total_ms: 1500,
    rolled_forward: false,
    revisions_checked: true,
    ...over,
  };
}

export function event(phase: HandoffEvent['phase'], over: Partial<HandoffEvent> = {}): HandoffEvent {
  return { handoff_id: '0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0', phase, at: '2026-01-01T00:00:00.000Z', elapsed_ms: 0, ...over };
}

/** upgrade()'s refusal of a command outside the allowlist (the server knows it by its class), with the given message. */
export class NotAllowed extends ExecNotAllowedError {
  constructor(message: string) {
    super('');
    this.message = message;
  }
}

/** What the fake does on upgrade: emit these events (one per tick), then settle. */
export interface UpgradeScript {
  events?: HandoffEvent[];
  result?: HandoffRecord;
  reject?: Error;
  /** Throw synchronously from upgrade(). */
  throwSync?: Error;
  /** Resolve only when this promise does (for in-flight tests). */
  gate?: Promise<void>;
}

function sampleHistograms(): SupervisorMetrics['phaseHistograms'] {
  const h = new PhaseHistograms();
  h.observe('drain', 3);
  h.observe('drain', 700);
  h.observe('seal', 40);
  return h.snapshot();
}

export class FakeSupervisor implements SupervisorApi {
  upgrades: UpgradeRequest[] = [];
  aborts: string[] = [];
  historyLimits: Array<number | undefined> = [];
  script: UpgradeScript = {};
  abortResult = false;
  inflight: SupervisorStatus['inflight'] = null;
  statusThrows: Error | undefined;
  records: HandoffRecord[] = [record(), record({ outcome: 'aborted', reason: 'successor_unhealthy: no' })];
  metricsValue: SupervisorMetrics = {
    handoffs: { committed: 2, aborted: 1, interrupted: 0 },
    phaseHistograms: sampleHistograms(),
    incumbentRestarts: 4,
    incumbentFailures: { incumbent_hung: 1 },
    phase: 'seal',
  };

  status(): SupervisorStatus {
    if (this.statusThrows) throw this.statusThrows;
    return {
      pid: process.pid,
      state: 'serving',
      incumbent: { pid: 100, build_id: 'v1', command: ['/usr/bin/node', 'main.js'], started_at: '2026-01-01T00:00:00.000Z', uptime_ms: 61_000 },
      listeners: [{ name: 'http', address: 'tcp://127.0.0.1:8080' }],
      inflight: this.inflight,
      last: null,
      incumbent_restarts: 0,
      last_failure: null,
      recovered: null,
    };
  }

  history(limit?: number): HandoffRecord[] {
    this.historyLimits.push(limit);
    return limit === undefined ? this.records : this.records.slice(-limit);
  }

  metrics(): SupervisorMetrics {
    return this.metricsValue;
  }

  upgrade(req: UpgradeRequest, onEvent?: (e: HandoffEvent) => void): Promise<HandoffRecord> {
    this.upgrades.push(req);
    const s = this.script;
    if (s.throwSync) throw s.throwSync;
    if (s.reject && !s.events?.length) return Promise.reject(s.reject);
    return (async () => {
      for (const e of s.events ?? []) {
        await new Promise((r) => setImmediate(r));
        onEvent?.(e);
      }
      if (s.gate) await s.gate;
      if (s.reject) throw s.reject;
      return s.result ?? record();
    })();
  }

  abort(reason: string): boolean {
    this.aborts.push(reason);
    return this.abortResult;
  }

  async stop(): Promise<void> {}
}

export const inProgress = (): ProtocolError => new ProtocolError('handoff_in_progress', 'handoff abc is in phase seal');

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP request over the socket; body as given (string or Buffer), no JSON encoding. */
export function request(socketPath: string, method: string, path: string, body?: string | Buffer, headers: Record<string, string | number> = {}): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath, method, path, agent: false, headers: { ...(body !== undefined ? { 'Content-Length': Buffer.byteLength(body) } : {}), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Sends raw bytes and collects whatever comes back until the server closes (or `ms` pass). */
export function rawExchange(socketPath: string, bytes: string | Buffer, ms = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let out = '';
    const t = setTimeout(() => sock.destroy(), ms);
    sock.on('data', (d) => (out += d.toString('utf8')));
    sock.on('close', () => {
      clearTimeout(t);
      resolve(out);
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return;
      reject(err);
    });
    sock.write(bytes);
  });
}

/** Sends raw bytes and resolves once the first response bytes arrive; `closed` resolves with everything read. */
export function openStream(socketPath: string, bytes: string): Promise<{ first: string; sock: net.Socket; closed: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let out = '';
    let first = true;
    const closed = new Promise<string>((r) => sock.on('close', () => r(out)));
    sock.on('data', (d) => {
      out += d.toString('utf8');
      if (first) {
        first = false;
        resolve({ first: out, sock, closed });
      }
    });
    sock.on('error', (err: NodeJS.ErrnoException) => {
      if (first) reject(err);
    });
    sock.write(bytes);
  });
}
