/**
 * The admin API's routes, declared once in ROUTES: method, path, body schema and handler. Everything
 * else that knows the routes (404 for an unknown path, 405 and its Allow header for a known path
 * with another method) is derived from that table.
 */

import type http from 'node:http';
import type { Logger } from 'pino';
import { ProtocolError } from '../../protocol/errors.js';
import { ExecNotAllowedError } from '../allowlist.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from '../metrics.js';
import { ConfigReloadError, type HandoffEvent, type HandoffRecord, type SupervisorApi, type UpgradeRequest } from '../types.js';
import { HttpError, internalError } from './errors.js';
import { ABORT_BODY, UPGRADE_BODY, parseLimit, readBodyAs, type BodySchema } from './validate.js';

type Method = 'GET' | 'POST';

/** One request as a handler sees it. */
export interface Exchange {
  readonly req: http.IncomingMessage;
  readonly res: http.ServerResponse;
  readonly url: URL;
  readonly sup: SupervisorApi;
  readonly log: Logger;
}

/** A route as declared: a body schema when it reads a body (its handler gets the checked body). */
type RouteSpec<B> =
  | { method: Method; path: string; handle(x: Exchange): void | Promise<void> }
  | { method: Method; path: string; body: BodySchema<B>; handle(x: Exchange, body: B): void | Promise<void> };

/** A route as served: its body (if it has one) read and checked, then its handler. */
export interface Route {
  readonly method: Method;
  readonly path: string;
  serve(x: Exchange): Promise<void>;
}

function route<B>(spec: RouteSpec<B>): Route {
  if ('body' in spec) return { method: spec.method, path: spec.path, serve: async (x) => spec.handle(x, await readBodyAs(x.req, spec.body)) };
  return { method: spec.method, path: spec.path, serve: async (x) => spec.handle(x) };
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { kind: err.kind, message: err.message } }, err.headers);
}

// --- the table --------------------------------------------------------------------------------

/** Every route of the admin API; a 405's Allow header lists a path's methods in this order. */
export const ROUTES: readonly Route[] = [
  // The supervisor, its incumbent, listeners, in-flight and last handoff.
  route({ method: 'GET', path: '/v1/status', handle: ({ res, sup }: Exchange) => sendJson(res, 200, sup.status()) }),
  // Past handoffs (and restarts), oldest first; `?limit=N`, the last 100 by default.
  route({ method: 'GET', path: '/v1/handoffs', handle: ({ res, sup, url }: Exchange) => sendJson(res, 200, sup.history(parseLimit(url))) }),
  // Starts a handoff; streams NDJSON HandoffEvents, then `{"record": …}`.
  route({ method: 'POST', path: '/v1/handoffs', body: UPGRADE_BODY, handle: streamHandoff }),
  // Aborts the in-flight handoff (`operator_abort`).
  route({ method: 'POST', path: '/v1/handoffs/current/abort', body: ABORT_BODY, handle: abortHandoff }),
  // Prometheus text format.
  route({ method: 'GET', path: '/metrics', handle: metrics }),
];

const BY_PATH = new Map<string, Route[]>();
for (const r of ROUTES) BY_PATH.set(r.path, [...(BY_PATH.get(r.path) ?? []), r]);

/** The route for a request, or the 404 or 405 that says why there is none. */
function find(pathname: string, method: string): Route {
  const here = BY_PATH.get(pathname);
  if (!here) throw new HttpError(404, 'not_found', `no such endpoint: ${pathname.slice(0, 200).replace(/[^\x20-\x7e]/g, '?')}`);
  const found = here.find((r) => r.method === method);
  if (found) return found;
  const allowed = here.map((r) => r.method).join(', ');
  throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${pathname} (allowed: ${allowed})`, { Allow: allowed });
}

/** Answers one request; whatever fails, the client gets a JSON error and never S's internals. */
export function serveRequest(sup: SupervisorApi, log: Logger, req: http.IncomingMessage, res: http.ServerResponse): void {
  const answer = async (): Promise<void> => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'invalid_request', 'bad request target');
    }
    const method = req.method ?? 'GET';
    const r = find(url.pathname, method);
    log.debug({ method, path: url.pathname }, 'admin request');
    await r.serve({ req, res, url, sup, log });
  };
  answer().catch((err: unknown) => {
    const e = err instanceof HttpError ? err : undefined;
    if (!e) log.error({ err }, 'admin request failed');
    if (res.headersSent) {
      res.destroy();
      return;
    }
    sendError(res, e ?? internalError());
  });
}

// --- handlers ---------------------------------------------------------------------------------

function metrics({ res, sup }: Exchange): void {
  const text = renderMetrics(sup.metrics(), sup.status());
  res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
  res.end(text);
}

/** Turns what upgrade() rejects with into an answer; never passes a stack or an unknown message on. */
function upgradeError(err: unknown, log: Logger, req: UpgradeRequest): HttpError {
  if (err instanceof ExecNotAllowedError) {
    log.warn({ command: req.command }, 'refused a handoff request: command not in the allowlist');
    return new HttpError(403, 'exec_not_allowed', err.message);
  }
  if (err instanceof ConfigReloadError) return new HttpError(400, 'invalid_config', err.message);
  if (err instanceof ProtocolError) {
    if (err.kind === 'handoff_in_progress') return new HttpError(409, err.kind, err.toReason());
    return new HttpError(503, err.kind, err.toReason());
  }
  log.error({ err }, 'handoff request failed');
  return internalError();
}

async function streamHandoff({ res, sup, log }: Exchange, body: UpgradeRequest): Promise<void> {
  let started = false;
  let gone = false;
  res.on('close', () => {
    if (!res.writableFinished) {
      gone = true;
      log.info('the client of a handoff request went away; the handoff goes on');
    }
  });
  const line = (obj: unknown): void => {
    if (!gone && !res.writableEnded && !res.destroyed) res.write(`${JSON.stringify(obj)}\n`);
  };
  const begin = (): void => {
    if (started) return;
    started = true;
    res.writeHead(200, { 'Content-Type': 'application/x-ndjson', 'Cache-Control': 'no-store', 'X-Content-Type-Options': 'nosniff' });
    res.flushHeaders();
  };
  const onEvent = (e: HandoffEvent): void => {
    begin();
    line(e);
  };
  let record: HandoffRecord;
  try {
    // The status is decided by whether the handoff started (an event came) before any rejection.
    record = await sup.upgrade(body, onEvent);
  } catch (err) {
    const e = upgradeError(err, log, body);
    if (!started) {
      sendError(res, e);
      return;
    }
    line({ error: { kind: e.kind, message: e.message } });
    res.end();
    return;
  }
  begin();
  line({ record });
  res.end();
}

function abortHandoff({ res, sup, log }: Exchange, body: { reason: string | undefined }): void {
  const reason = body.reason ?? 'aborted by the operator';
  const before = sup.status().inflight;
  if (sup.abort(reason.trim() === '' ? 'aborted by the operator' : reason)) {
    log.info({ handoff_id: before?.handoff_id, reason }, 'handoff aborted by the operator');
    sendJson(res, 200, { aborted: true, handoff_id: before?.handoff_id ?? null, phase: before?.phase ?? null });
    return;
  }
  const now = sup.status().inflight;
  if (!now) throw new HttpError(404, 'no_handoff', 'no handoff in flight: nothing to abort');
  // Already rolling back (S aborted it for another reason): not "too late", but nothing left to do.
  if (now.phase === 'rollback') throw new HttpError(409, 'too_late', `handoff ${now.handoff_id} is already being rolled back`);
  throw new HttpError(409, 'too_late', `handoff ${now.handoff_id} is in phase ${now.phase}, past the point where it can be aborted`);
}
