/**
 * The admin API: HTTP/1.1 with JSON on a Unix socket, in Docker's style (`curl --unix-socket`).
 *
 *   GET  /v1/status                    the supervisor, its incumbent, listeners, in-flight and last handoff
 *   POST /v1/handoffs                  start a handoff; streams NDJSON HandoffEvents, then `{"record": …}`
 *   POST /v1/handoffs/current/abort    abort the in-flight handoff (`operator_abort`)
 *   GET  /v1/handoffs?limit=N          past handoffs, oldest first (default the last 100)
 *   GET  /metrics                      Prometheus text format
 *
 * Errors are `{"error": {"kind", "message"}}` with a 4xx/5xx status. Whatever a client sends, the
 * server answers with one of those and goes on: bodies are capped, JSON is checked field by field,
 * and no stack trace or environment value ever reaches a response.
 *
 * The socket is created 0600 (0660 and chgrp'd with a group). A stale socket file (nothing answers a
 * connect) is removed at start; a live one makes the start fail; close() removes the socket.
 */

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.js';
import { TIMER_MAX_MS } from '../shared/constants.js';
import { METRICS_CONTENT_TYPE, renderMetrics } from './metrics.js';
import { ConfigReloadError, type HandoffEvent, type HandoffRecord, type SupervisorApi, type UpgradeRequest } from './types.js';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Default and largest `limit` of GET /v1/handoffs. */
export const DEFAULT_HISTORY_LIMIT = 100;
export const MAX_HISTORY_LIMIT = 100_000;
/** Longest Unix socket path Linux accepts (sun_path is 108 bytes with the NUL). */
export const MAX_SOCKET_PATH_BYTES = 107;
const MAX_DURATION_MS = TIMER_MAX_MS;
const MAX_STRING_BYTES = 4096;
const MAX_ARGS = 1024;

/** Default time a client has to send a request's line and headers (then 408). */
export const HEADERS_TIMEOUT_MS = 10_000;
/** Default time a client has to send a whole request, body included (then 408). */
export const REQUEST_TIMEOUT_MS = 30_000;
/** Longest period of the check of both timeouts: they fire at most this long after they are due. */
export const MAX_TIMEOUT_CHECK_MS = 1000;

export interface AdminServerOptions {
  socketPath: string;
  /** Group (name or numeric gid) that may use the socket: mode 0660 instead of 0600. */
  group?: string;
  logger: Logger;
  /** Time to receive a request's line and headers; default HEADERS_TIMEOUT_MS. */
  headersTimeoutMs?: number;
  /** Time to receive a whole request (not to answer it: a handoff stream may last minutes); default REQUEST_TIMEOUT_MS. */
  requestTimeoutMs?: number;
}

export interface AdminServer {
  readonly socketPath: string;
  /** The mode the socket file was given (0o600 or 0o660). */
  readonly mode: number;
  /** Stops accepting, ends open connections, removes the socket file. */
  close(): Promise<void>;
}

/** The admin server could not start; the message is one line for the operator. */
export class AdminStartError extends Error {
  override name = 'AdminStartError';
}

/** An error answered to the client as `{"error": {kind, message}}`. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

// --- the socket file --------------------------------------------------------------------------

/** True when something accepts a connection on `p`; false when nothing does (a stale file). */
function probe(p: string, timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(p);
    const timer = setTimeout(() => {
      sock.destroy();
      // A socket that neither accepts nor refuses is held by a live (if stuck) process.
      resolve(true);
    }, timeoutMs);
    sock.once('connect', () => {
      clearTimeout(timer);
      sock.destroy();
      resolve(true);
    });
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      if (err.code === 'ECONNREFUSED' || err.code === 'ENOENT') resolve(false);
      else reject(new AdminStartError(`cannot check whether ${p} is in use: ${err.code ?? err.message}`));
    });
  });
}

async function clearStaleSocket(p: string, log: Logger): Promise<void> {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AdminStartError(`cannot use admin socket ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  if (!st.isSocket()) throw new AdminStartError(`admin socket path ${p} exists and is not a socket: refusing to replace it`);
  if (await probe(p)) throw new AdminStartError(`another supervisor is listening on ${p}`);
  log.warn({ socket: p }, 'removing a stale admin socket (nothing answers on it)');
  try {
    fs.unlinkSync(p);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new AdminStartError(`cannot remove stale admin socket ${p}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
}

/** A group name or numeric gid to a gid, through NSS (getent) and then /etc/group. */
export function resolveGroup(group: string): number {
  if (/^\d+$/.test(group)) return Number(group);
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(group)) throw new AdminStartError(`invalid group name '${group}'`);
  const fromLine = (line: string): number | undefined => {
    const [name, , gid] = line.split(':');
    return name === group && gid !== undefined && /^\d+$/.test(gid) ? Number(gid) : undefined;
  };
  try {
    const out = execFileSync('getent', ['group', group], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5000 });
    const gid = fromLine(out.trim().split('\n')[0] ?? '');
    if (gid !== undefined) return gid;
  } catch {
    // No getent, or no such group in NSS: try the file.
  }
  try {
    for (const line of fs.readFileSync('/etc/group', 'utf8').split('\n')) {
      const gid = fromLine(line);
      if (gid !== undefined) return gid;
    }
  } catch {
    // No /etc/group.
  }
  throw new AdminStartError(`unknown group '${group}' (--admin-group)`);
}

// --- requests ---------------------------------------------------------------------------------

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) {
    return Promise.reject(new HttpError(413, 'body_too_large', `request body over ${MAX_BODY_BYTES} bytes`, { Connection: 'close' }));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        reject(new HttpError(413, 'body_too_large', `request body over ${MAX_BODY_BYTES} bytes`, { Connection: 'close' }));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (!failed) resolve(Buffer.concat(chunks));
    });
    req.on('error', () => {
      if (failed) return;
      failed = true;
      reject(new HttpError(400, 'invalid_request', 'the request body could not be read'));
    });
  });
}

/** The body as a JSON object with only `allowed` keys; an empty body is `{}`. */
async function readJsonObject(req: http.IncomingMessage, allowed: readonly string[]): Promise<Record<string, unknown>> {
  const raw = await readBody(req);
  if (raw.length === 0 || raw.toString('latin1').trim() === '') return {};
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(raw);
  } catch {
    throw new HttpError(400, 'invalid_json', 'the request body is not valid UTF-8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'invalid_json', 'the request body is not valid JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new HttpError(400, 'invalid_request', 'the request body must be a JSON object');
  const obj = value as Record<string, unknown>;
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      const shown = key.length > 64 ? `${key.slice(0, 64)}…` : key;
      throw new HttpError(400, 'unknown_field', `unknown field '${shown.replace(/[^\x20-\x7e]/g, '?')}' (allowed: ${allowed.join(', ')})`);
    }
  }
  return obj;
}

function checkString(v: unknown, field: string): string {
  if (typeof v !== 'string') throw new HttpError(400, 'invalid_request', `${field} must be a string`);
  if (v.includes('\0')) throw new HttpError(400, 'invalid_request', `${field} must not contain NUL`);
  if (Buffer.byteLength(v) > MAX_STRING_BYTES) throw new HttpError(400, 'invalid_request', `${field} is longer than ${MAX_STRING_BYTES} bytes`);
  return v;
}

function checkDuration(v: unknown, field: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > MAX_DURATION_MS) {
    throw new HttpError(400, 'invalid_request', `${field} must be an integer number of milliseconds between 1 and ${MAX_DURATION_MS}`);
  }
  return v;
}

export const UPGRADE_FIELDS = ['command', 'args', 'deadline_ms', 'drain_grace_ms'] as const;

export function parseUpgradeBody(obj: Record<string, unknown>): UpgradeRequest {
  const req: UpgradeRequest = {};
  if (obj['command'] !== undefined) {
    const c = checkString(obj['command'], 'command');
    if (c === '') throw new HttpError(400, 'invalid_request', 'command must not be empty');
    req.command = c;
  }
  if (obj['args'] !== undefined) {
    const a = obj['args'];
    if (!Array.isArray(a)) throw new HttpError(400, 'invalid_request', 'args must be an array of strings');
    if (a.length > MAX_ARGS) throw new HttpError(400, 'invalid_request', `args has more than ${MAX_ARGS} entries`);
    req.args = a.map((x, i) => checkString(x, `args[${i}]`));
  }
  if (obj['deadline_ms'] !== undefined) req.deadlineMs = checkDuration(obj['deadline_ms'], 'deadline_ms');
  if (obj['drain_grace_ms'] !== undefined) req.drainGraceMs = checkDuration(obj['drain_grace_ms'], 'drain_grace_ms');
  return req;
}

function sendJson(res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store', ...headers });
  res.end(text);
}

function sendError(res: http.ServerResponse, err: HttpError): void {
  sendJson(res, err.status, { error: { kind: err.kind, message: err.message } }, err.headers);
}

/** Turns what upgrade() rejects with into an answer; never passes a stack or an unknown message on. */
function upgradeError(err: unknown, log: Logger, req: UpgradeRequest): HttpError {
  if (err instanceof Error && err.name === 'ExecNotAllowedError') {
    log.warn({ command: req.command }, 'refused a handoff request: command not in the allowlist');
    return new HttpError(403, 'exec_not_allowed', err.message);
  }
  if (err instanceof ConfigReloadError) return new HttpError(400, 'invalid_config', err.message);
  if (err instanceof ProtocolError) {
    if (err.kind === 'handoff_in_progress') return new HttpError(409, err.kind, err.toReason());
    return new HttpError(503, err.kind, err.toReason());
  }
  log.error({ err }, 'handoff request failed');
  return new HttpError(500, 'internal', 'internal error (see the supervisor log)');
}

const ROUTES: Record<string, readonly string[]> = {
  '/v1/status': ['GET'],
  '/v1/handoffs': ['GET', 'POST'],
  '/v1/handoffs/current/abort': ['POST'],
  '/metrics': ['GET'],
};

function parseLimit(url: URL): number {
  const raw = url.searchParams.get('limit');
  if (raw === null) return DEFAULT_HISTORY_LIMIT;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_HISTORY_LIMIT) {
    throw new HttpError(400, 'invalid_request', `limit must be an integer between 1 and ${MAX_HISTORY_LIMIT}`);
  }
  return Number(raw);
}

class Api {
  constructor(
    private readonly sup: SupervisorApi,
    private readonly log: Logger,
  ) {}

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      throw new HttpError(400, 'invalid_request', 'bad request target');
    }
    const methods = ROUTES[url.pathname];
    if (!methods) throw new HttpError(404, 'not_found', `no such endpoint: ${url.pathname.slice(0, 200).replace(/[^\x20-\x7e]/g, '?')}`);
    const method = req.method ?? 'GET';
    if (!methods.includes(method)) throw new HttpError(405, 'method_not_allowed', `${method} is not allowed on ${url.pathname} (allowed: ${methods.join(', ')})`, { Allow: methods.join(', ') });
    this.log.debug({ method, path: url.pathname }, 'admin request');

    switch (`${method} ${url.pathname}`) {
      case 'GET /v1/status':
        sendJson(res, 200, this.sup.status());
        return;
      case 'GET /v1/handoffs':
        sendJson(res, 200, this.sup.history(parseLimit(url)));
        return;
      case 'GET /metrics': {
        const text = renderMetrics(this.sup.metrics(), this.sup.status());
        res.writeHead(200, { 'Content-Type': METRICS_CONTENT_TYPE, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' });
        res.end(text);
        return;
      }
      case 'POST /v1/handoffs':
        await this.upgrade(req, res);
        return;
      case 'POST /v1/handoffs/current/abort':
        await this.abort(req, res);
        return;
    }
  }

  private async upgrade(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = parseUpgradeBody(await readJsonObject(req, UPGRADE_FIELDS));
    let started = false;
    let gone = false;
    res.on('close', () => {
      if (!res.writableFinished) {
        gone = true;
        this.log.info('the client of a handoff request went away; the handoff goes on');
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
      record = await this.sup.upgrade(body, onEvent);
    } catch (err) {
      const e = upgradeError(err, this.log, body);
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

  private async abort(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readJsonObject(req, ['reason']);
    const reason = body['reason'] === undefined ? 'aborted by the operator' : checkString(body['reason'], 'reason');
    const before = this.sup.status().inflight;
    if (this.sup.abort(reason.trim() === '' ? 'aborted by the operator' : reason)) {
      this.log.info({ handoff_id: before?.handoff_id, reason }, 'handoff aborted by the operator');
      sendJson(res, 200, { aborted: true, handoff_id: before?.handoff_id ?? null, phase: before?.phase ?? null });
      return;
    }
    const now = this.sup.status().inflight;
    if (!now) throw new HttpError(404, 'no_handoff', 'no handoff in flight: nothing to abort');
    // Already rolling back (S aborted it for another reason): not "too late", but nothing left to do.
    if (now.phase === 'rollback') throw new HttpError(409, 'too_late', `handoff ${now.handoff_id} is already being rolled back`);
    throw new HttpError(409, 'too_late', `handoff ${now.handoff_id} is in phase ${now.phase}, past the point where it can be aborted`);
  }
}

// --- errors Node's HTTP parser catches ---------------------------------------------------------

/** What a client that broke HTTP itself is told: [status, kind, message], by Node's error code. */
function parserError(code: string | undefined): [number, string, string] {
  switch (code) {
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return [408, 'request_timeout', 'the request did not arrive in time'];
    case 'HPE_HEADER_OVERFLOW':
      return [431, 'headers_too_large', 'the request line and headers are too large'];
    case 'HPE_INVALID_CONTENT_LENGTH':
    case 'HPE_UNEXPECTED_CONTENT_LENGTH':
      return [400, 'invalid_request', 'invalid Content-Length'];
    case 'HPE_INVALID_TRANSFER_ENCODING':
      return [400, 'invalid_request', 'invalid Transfer-Encoding'];
    case 'HPE_INVALID_CHUNK_SIZE':
    case 'HPE_CHUNK_EXTENSIONS_OVERFLOW':
      return [400, 'invalid_request', 'invalid chunked body'];
    case 'HPE_INVALID_METHOD':
    case 'HPE_INVALID_URL':
    case 'HPE_INVALID_VERSION':
    case 'HPE_PAUSED_H2_UPGRADE':
      return [400, 'invalid_request', 'invalid request line (this API speaks HTTP/1.1)'];
    case 'HPE_INVALID_HEADER_TOKEN':
    case 'HPE_LF_EXPECTED':
    case 'HPE_CR_EXPECTED':
      return [400, 'invalid_request', 'invalid header'];
    default:
      // Node's codes are [A-Z0-9_] words: safe to show, and they tell a client author what broke.
      return [400, 'invalid_request', `malformed HTTP request${code !== undefined && /^[A-Z0-9_]{1,64}$/.test(code) ? ` (${code})` : ''}`];
  }
}

/**
 * Answers a client whose request Node's parser refused (or that ran out of time) with the same JSON
 * error as every other answer, as a whole HTTP/1.1 response, then closes: no request or response
 * object exists at this point, so it is written on the socket itself. Nothing is written in the middle
 * of a response already begun on this connection (it would corrupt it): the connection just closes.
 */
function answerClientError(err: NodeJS.ErrnoException, socket: Duplex, log: Logger): void {
  // The response of this connection's current request, if one is under way (Node's own handler looks
  // at it too). One that is complete is no obstacle: an answer after it is well-formed pipelining.
  const inFlight = (socket as Duplex & { _httpMessage?: { headersSent?: boolean; writableEnded?: boolean } | null })._httpMessage;
  const midResponse = inFlight?.headersSent === true && inFlight.writableEnded !== true;
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE' || !socket.writable || midResponse) {
    socket.destroy();
    return;
  }
  const [status, kind, message] = parserError(err.code);
  log.debug({ code: err.code, status }, 'admin request refused by the HTTP parser');
  const body = `${JSON.stringify({ error: { kind, message } })}\n`;
  const head = [
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}`,
    'Content-Type: application/json',
    `Content-Length: ${Buffer.byteLength(body)}`,
    'Cache-Control: no-store',
    'Connection: close',
  ].join('\r\n');
  // Close once the answer is out; a peer that does not read it gets a bounded grace.
  const timer = setTimeout(() => socket.destroy(), 1000);
  timer.unref();
  socket.end(`${head}\r\n\r\n${body}`, () => {
    clearTimeout(timer);
    socket.destroy();
  });
}

/** How often Node checks both timeouts: a tenth of the shorter, at most MAX_TIMEOUT_CHECK_MS. */
export function timeoutCheckIntervalMs(headersTimeoutMs: number, requestTimeoutMs: number): number {
  const shorter = Math.min(...[headersTimeoutMs, requestTimeoutMs].filter((ms) => ms > 0));
  if (!Number.isFinite(shorter)) return MAX_TIMEOUT_CHECK_MS;
  return Math.max(10, Math.min(MAX_TIMEOUT_CHECK_MS, Math.floor(shorter / 10)));
}

// --- the server -------------------------------------------------------------------------------

export async function startAdminServer(supervisor: SupervisorApi, opts: AdminServerOptions): Promise<AdminServer> {
  const { socketPath, logger: log } = opts;
  if (socketPath === '') throw new AdminStartError('the admin socket path is empty');
  if (Buffer.byteLength(socketPath) > MAX_SOCKET_PATH_BYTES) {
    throw new AdminStartError(`admin socket path ${socketPath} is longer than ${MAX_SOCKET_PATH_BYTES} bytes (a Unix socket limit): choose a shorter one`);
  }
  const gid = opts.group !== undefined ? resolveGroup(opts.group) : undefined;
  await clearStaleSocket(socketPath, log);

  const headersTimeout = opts.headersTimeoutMs ?? HEADERS_TIMEOUT_MS;
  const requestTimeout = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS;
  if (!Number.isInteger(headersTimeout) || !Number.isInteger(requestTimeout) || headersTimeout < 1 || requestTimeout < headersTimeout) {
    throw new AdminStartError(`admin timeouts must be whole milliseconds with 1 <= headers (${headersTimeout}) <= request (${requestTimeout})`);
  }
  const api = new Api(supervisor, log);
  // Node checks both timeouts only every connectionsCheckingInterval (30 s by default), so a 10 s
  // timeout fired after up to 40 s; checked this often, each fires within a second of its value.
  const options: http.ServerOptions = { headersTimeout, requestTimeout, connectionsCheckingInterval: timeoutCheckIntervalMs(headersTimeout, requestTimeout) };
  const server = http.createServer(options, (req, res) => {
    api.handle(req, res).catch((err: unknown) => {
      const e = err instanceof HttpError ? err : undefined;
      if (!e) log.error({ err }, 'admin request failed');
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendError(res, e ?? new HttpError(500, 'internal', 'internal error (see the supervisor log)'));
    });
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => answerClientError(err, socket, log));

  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException): void => {
      reject(
        err.code === 'EADDRINUSE'
          ? new AdminStartError(`another supervisor is listening on ${socketPath}`)
          : new AdminStartError(`cannot listen on admin socket ${socketPath}: ${err.code ?? err.message}`),
      );
    };
    server.once('error', onError);
    // The socket file is created inside listen(): no moment exists when others could connect.
    const old = process.umask(0o177);
    try {
      server.listen(socketPath, () => {
        server.off('error', onError);
        resolve();
      });
    } finally {
      process.umask(old);
    }
  });
  server.on('error', (err) => log.error({ err }, 'admin server error'));

  const ino = fs.statSync(socketPath).ino;
  let mode = 0o600;
  try {
    fs.chmodSync(socketPath, 0o600);
    if (gid !== undefined) {
      fs.chownSync(socketPath, -1, gid);
      fs.chmodSync(socketPath, 0o660);
      mode = 0o660;
    }
  } catch (err) {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    fs.rmSync(socketPath, { force: true });
    throw new AdminStartError(`cannot give admin socket ${socketPath} to group ${opts.group ?? ''}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`);
  }
  log.info({ socket: socketPath, mode: `0${mode.toString(8)}`, ...(opts.group !== undefined ? { group: opts.group } : {}) }, 'admin API listening');

  let closing: Promise<void> | undefined;
  return {
    socketPath,
    mode,
    close(): Promise<void> {
      closing ??= new Promise<void>((resolve) => {
        const force = setTimeout(() => server.closeAllConnections(), 1000);
        server.close(() => {
          clearTimeout(force);
          resolve();
        });
        server.closeIdleConnections();
      }).then(() => {
        // Remove the file only if it is still ours (a new supervisor may have replaced it).
        try {
          if (fs.lstatSync(socketPath).ino === ino) fs.unlinkSync(socketPath);
        } catch {
          // Already gone.
        }
      });
      return closing;
    },
  };
}
