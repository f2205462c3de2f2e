/** The CLI's only way to a running supervisor: HTTP/1.1 + JSON over the admin Unix socket. */

import http from 'node:http';
import { CliError, EXIT } from './errors.js';

/** Longest response body the client reads for a plain JSON answer. */
const MAX_RESPONSE_BYTES = 32 * 1024 * 1024;
/** Longest NDJSON line of a handoff stream. */
const MAX_LINE_BYTES = 1024 * 1024;
/** How long a plain request may take before the client gives up. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** An error the supervisor answered (`{"error": {kind, message}}`) with its HTTP status. */
export class AdminError extends Error {
  override name = 'AdminError';
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

function connectError(err: NodeJS.ErrnoException, socketPath: string): CliError {
  switch (err.code) {
    case 'ENOENT':
      return new CliError(`no supervisor at ${socketPath} (no such socket: is 'handoff run' running? pass --name or --admin-socket)`, EXIT.usage);
    case 'ECONNREFUSED':
      return new CliError(`no supervisor listening on ${socketPath} (connection refused: a stale socket?)`, EXIT.usage);
    case 'EACCES':
    case 'EPERM':
      return new CliError(`permission denied on ${socketPath} (the admin socket is for the supervisor's user and --admin-group)`, EXIT.usage);
    case 'ENOTSOCK':
    case 'ENOTDIR':
      return new CliError(`${socketPath} is not a socket`, EXIT.usage);
    default:
      return new CliError(`cannot talk to the supervisor on ${socketPath}: ${err.code ?? err.message}`, EXIT.usage);
  }
}

function errorFromBody(status: number, text: string): AdminError {
  try {
    const v = JSON.parse(text) as { error?: { kind?: unknown; message?: unknown } };
    if (v.error && typeof v.error.kind === 'string' && typeof v.error.message === 'string') return new AdminError(status, v.error.kind, v.error.message);
  } catch {
    // Not JSON: fall through.
  }
  return new AdminError(status, 'http_error', `the supervisor answered HTTP ${status}`);
}

export interface StreamResult {
  /** False when the connection ended before the stream did (the supervisor went away). */
  complete: boolean;
}

export class AdminClient {
  constructor(readonly socketPath: string) {}

  private open(method: string, path: string, body: unknown, timeoutMs: number | undefined): Promise<http.IncomingMessage> {
    return new Promise((resolve, reject) => {
      const payload = body === undefined ? undefined : JSON.stringify(body);
      const req = http.request({
        socketPath: this.socketPath,
        method,
        path,
        agent: false,
        headers: {
          Host: 'handoff',
          Accept: 'application/json',
          ...(payload !== undefined ? { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(payload) } : {}),
        },
      });
      let connected = false;
      req.on('socket', (s) => s.once('connect', () => (connected = true)));
      let timedOut = false;
      req.once('error', (err: NodeJS.ErrnoException) => {
        if (timedOut) reject(new CliError(`the supervisor on ${this.socketPath} did not answer within ${Math.round((timeoutMs ?? 0) / 1000)} s`, EXIT.failed));
        else if (connected) reject(new CliError(`lost the connection to the supervisor on ${this.socketPath}: ${err.code ?? err.message}`, EXIT.failed));
        else reject(connectError(err, this.socketPath));
      });
      if (timeoutMs !== undefined) {
        req.setTimeout(timeoutMs, () => {
          timedOut = true;
          req.destroy();
        });
      }
      req.once('response', resolve);
      req.end(payload);
    });
  }

  /** One request, one JSON answer; an error status rejects with AdminError. */
  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.open(method, path, body, REQUEST_TIMEOUT_MS);
    const text = await readAll(res, this.socketPath);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw errorFromBody(status, text);
    try {
      return JSON.parse(text) as T;
    } catch {
      throw new CliError(`the supervisor on ${this.socketPath} sent an answer that is not JSON`, EXIT.failed);
    }
  }

  /** Text answers (GET /metrics). */
  async text(method: string, path: string): Promise<string> {
    const res = await this.open(method, path, undefined, REQUEST_TIMEOUT_MS);
    const text = await readAll(res, this.socketPath);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw errorFromBody(status, text);
    return text;
  }

  /**
   * A request answered with NDJSON: each parsed line goes to `onLine` as it arrives. An error
   * status rejects with AdminError before any line.
   */
  async stream(method: string, path: string, body: unknown, onLine: (v: unknown) => void): Promise<StreamResult> {
    const res = await this.open(method, path, body, undefined);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw errorFromBody(status, await readAll(res, this.socketPath));
    return new Promise((resolve, reject) => {
      let buf = '';
      let failed = false;
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        if (failed) return;
        buf += chunk;
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl).trim();
          buf = buf.slice(nl + 1);
          if (line === '') continue;
          let v: unknown;
          try {
            v = JSON.parse(line);
          } catch {
            failed = true;
            res.destroy();
            reject(new CliError('the supervisor sent a line that is not JSON', EXIT.failed));
            return;
          }
          try {
            onLine(v);
          } catch (err) {
            failed = true;
            res.destroy();
            reject(err instanceof Error ? err : new Error(String(err)));
            return;
          }
        }
        if (buf.length > MAX_LINE_BYTES) {
          failed = true;
          res.destroy();
          reject(new CliError('the supervisor sent an over-long line', EXIT.failed));
        }
      });
      res.once('end', () => {
        if (!failed) resolve({ complete: res.complete });
      });
      res.once('aborted', () => {
        if (!failed) resolve({ complete: false });
      });
      res.once('error', () => {
        if (!failed) resolve({ complete: false });
      });
      res.once('close', () => {
        if (!failed) resolve({ complete: res.complete });
      });
    });
  }
}

function readAll(res: http.IncomingMessage, socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    res.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_RESPONSE_BYTES) {
        res.destroy();
        reject(new CliError(`the answer of the supervisor on ${socketPath} is too large`, EXIT.failed));
        return;
      }
      chunks.push(c);
    });
    res.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    res.once('error', (err: NodeJS.ErrnoException) => reject(new CliError(`lost the connection to the supervisor on ${socketPath}: ${err.code ?? err.message}`, EXIT.failed)));
  });
}
