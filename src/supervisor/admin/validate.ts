/**
 * What a client sends, checked before any route acts on it: the body is capped, must be a JSON
 * object with only its route's fields, and each field is checked; the query's `limit` likewise.
 * Every refusal is an HttpError 4xx whose message names the field, never the value's internals.
 */

import type http from 'node:http';
import type { UpgradeRequest } from '../types.js';
import { HttpError } from './errors.js';
import { TIMER_MAX_MS } from '../../shared/constants.js';

/** Largest request body accepted, in bytes. */
export const MAX_BODY_BYTES = 64 * 1024;
/** Default and largest `limit` of GET /v1/handoffs. */
export const DEFAULT_HISTORY_LIMIT = 100;
export const MAX_HISTORY_LIMIT = 100_000;
const MAX_DURATION_MS = TIMER_MAX_MS;
const MAX_STRING_BYTES = 4096;
const MAX_ARGS = 1024;

/** A route's body: the fields it may have, and how the checked object becomes what its handler gets. */
export interface BodySchema<B> {
  readonly fields: readonly string[];
  /** Throws an HttpError (400) for a field of the wrong shape. */
  parse(obj: Record<string, unknown>): B;
}

function tooLarge(): HttpError {
  return new HttpError(413, 'body_too_large', `request body over ${MAX_BODY_BYTES} bytes`, { Connection: 'close' });
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    req.on('data', (chunk: Buffer) => {
      if (failed) return;
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        failed = true;
        reject(tooLarge());
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

/** Reads the request's body and checks it against `schema`. */
export async function readBodyAs<B>(req: http.IncomingMessage, schema: BodySchema<B>): Promise<B> {
  return schema.parse(await readJsonObject(req, schema.fields));
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

export const UPGRADE_FIELDS = ['command', 'args', 'deadline_ms', 'drain_grace_ms', 'hello_timeout_ms'] as const;

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
  if (obj['hello_timeout_ms'] !== undefined) req.helloTimeoutMs = checkDuration(obj['hello_timeout_ms'], 'hello_timeout_ms');
  return req;
}

/** POST /v1/handoffs: the successor's command and the handoff's durations, all optional. */
export const UPGRADE_BODY: BodySchema<UpgradeRequest> = { fields: UPGRADE_FIELDS, parse: parseUpgradeBody };

/** POST /v1/handoffs/current/abort: an optional reason, recorded with the abort. */
export const ABORT_BODY: BodySchema<{ reason: string | undefined }> = {
  fields: ['reason'],
  parse: (obj) => ({ reason: obj['reason'] === undefined ? undefined : checkString(obj['reason'], 'reason') }),
};

/** GET /v1/handoffs?limit=N. */
export function parseLimit(url: URL): number {
  const raw = url.searchParams.get('limit');
  if (raw === null) return DEFAULT_HISTORY_LIMIT;
  if (!/^\d{1,9}$/.test(raw) || Number(raw) < 1 || Number(raw) > MAX_HISTORY_LIMIT) {
    throw new HttpError(400, 'invalid_request', `limit must be an integer between 1 and ${MAX_HISTORY_LIMIT}`);
  }
  return Number(raw);
}
