/**
 * The admin API's transport: an HTTP/1.1 server on a Unix socket created 0600 (0660 and chgrp'd
 * with a group), with bounded time to send a request, and a JSON answer even to a client that broke
 * HTTP itself. What a request means is routes.ts's business.
 */

import fs from 'node:fs';
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import type { SupervisorApi } from '../types.js';
import { AdminStartError } from './errors.js';
import { serveRequest } from './routes.js';
import { MAX_SOCKET_PATH_BYTES, clearStaleSocket, resolveGroup } from './socket-file.js';

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
  // Node checks both timeouts only every connectionsCheckingInterval (30 s by default), so a 10 s
  // timeout fired after up to 40 s; checked this often, each fires within a second of its value.
  const options: http.ServerOptions = { headersTimeout, requestTimeout, connectionsCheckingInterval: timeoutCheckIntervalMs(headersTimeout, requestTimeout) };
  const server = http.createServer(options, (req, res) => serveRequest(supervisor, log, req, res));
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
