/** The client commands: each talks to a running supervisor through the admin API only. */

import path from 'node:path';
import type { HandoffEvent, HandoffRecord, HistoryEntry, SupervisorStatus } from '../supervisor/types.js';
import { AdminClient, AdminError } from './client.js';
import { DurationError, parseDuration } from './duration.js';
import { CliError, EXIT, usageError } from './errors.js';
import { clientAdminSocket, resolveCommand } from './paths.js';
import { ProgressRenderer, renderHistory, renderStatus, type Out, type ProgressMode } from './render.js';

export interface Io {
  stdout: Out;
  stderr: Out;
  env: NodeJS.ProcessEnv;
  cwd: string;
}

export interface ClientFlags {
  adminSocket?: string;
  name?: string;
}

function client(flags: ClientFlags, io: Io): AdminClient {
  return new AdminClient(clientAdminSocket(flags.adminSocket, io.env, flags.name));
}

/** An answer of the supervisor that is not a success, as a CliError with the exit code it means. */
function adminFailure(err: unknown): never {
  if (err instanceof AdminError) {
    switch (err.status) {
      case 400:
      case 403:
      case 404:
      case 405:
      case 413:
        throw new CliError(err.message, EXIT.usage);
      case 409:
        throw new CliError(err.message, err.kind === 'handoff_in_progress' ? EXIT.busy : EXIT.failed);
      default:
        throw new CliError(err.message, EXIT.failed);
    }
  }
  throw err;
}

function duration(v: string | undefined, flag: string): number | undefined {
  if (v === undefined) return undefined;
  try {
    return parseDuration(v);
  } catch (err) {
    throw usageError(`${flag}: ${err instanceof DurationError ? err.message : 'invalid duration'}`);
  }
}

// --- upgrade ----------------------------------------------------------------------------------

export interface UpgradeFlags extends ClientFlags {
  exec?: string;
  deadline?: string;
  drainGrace?: string;
  helloTimeout?: string;
  json?: boolean;
}

/** The request body of `handoff upgrade`: `--exec` resolved against the caller's directory. */
export function upgradeBody(flags: UpgradeFlags, args: readonly string[], cwd: string, env: NodeJS.ProcessEnv = {}): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (flags.exec !== undefined) {
    if (flags.exec === '') throw usageError('--exec: empty command');
    // Resolved here, as `handoff run` resolves its own command: a path against the caller's
    // directory (the supervisor's may differ), a bare name through PATH.
    body['command'] = flags.exec.includes('/') ? path.resolve(cwd, flags.exec) : (resolveCommand(flags.exec, env, cwd) ?? flags.exec);
  }
  if (args.length > 0) body['args'] = [...args];
  const deadline = duration(flags.deadline, '--deadline');
  if (deadline !== undefined) body['deadline_ms'] = deadline;
  const grace = duration(flags.drainGrace, '--drain-grace');
  if (grace !== undefined) body['drain_grace_ms'] = grace;
  const hello = duration(flags.helloTimeout, '--hello-timeout');
  if (hello !== undefined) body['hello_timeout_ms'] = hello;
  return body;
}

function isRecordLine(v: unknown): v is { record: HandoffRecord } {
  return typeof v === 'object' && v !== null && 'record' in v;
}

function isErrorLine(v: unknown): v is { error: { kind: string; message: string } } {
  return typeof v === 'object' && v !== null && 'error' in v;
}

export async function upgradeCommand(flags: UpgradeFlags, args: readonly string[], io: Io): Promise<number> {
  const body = upgradeBody(flags, args, io.cwd, io.env);
  const c = client(flags, io);
  const mode: ProgressMode = flags.json === true ? 'json' : io.stdout.isTTY === true ? 'tty' : 'plain';
  const renderer = new ProgressRenderer(io.stdout, mode, { color: mode === 'tty' && io.env['NO_COLOR'] === undefined });
  let record: HandoffRecord | undefined;
  let streamError: { kind: string; message: string } | undefined;
  let handoffId: string | undefined;
  try {
    const res = await c.stream('POST', '/v1/handoffs', body, (line) => {
      if (isRecordLine(line)) record = line.record;
      else if (isErrorLine(line)) streamError = line.error;
      else {
        const e = line as HandoffEvent;
        handoffId ??= e.handoff_id;
        renderer.event(e);
      }
    });
    renderer.stop();
    if (record) {
      // A record that did not commit names only the rejected build: status says which one still serves.
      const now = record.outcome === 'committed' || mode === 'json' ? undefined : await c.request<SupervisorStatus>('GET', '/v1/status').then((st) => st.incumbent, () => undefined);
      renderer.record(record, now);
      return record.outcome === 'committed' ? EXIT.ok : EXIT.failed;
    }
    if (streamError) throw new CliError(streamError.message, EXIT.failed);
    throw new CliError(
      `the connection to the supervisor ended before the outcome${res.complete ? '' : ' (the supervisor went away)'}${handoffId ? `: see 'handoff status' for handoff ${handoffId}` : ''}`,
      EXIT.failed,
    );
  } catch (err) {
    renderer.stop();
    if (mode === 'json' && err instanceof AdminError) io.stdout.write(`${JSON.stringify({ error: { kind: err.kind, message: err.message } })}\n`);
    if (err instanceof AdminError && err.status === 409) throw new CliError(`another handoff is in flight: ${err.message}`, EXIT.busy);
    if (err instanceof AdminError && err.status === 503) throw new CliError(`cannot start a handoff: ${err.message}`, EXIT.failed);
    return adminFailure(err);
  }
}

// --- status, abort, history -------------------------------------------------------------------

export async function statusCommand(flags: ClientFlags & { json?: boolean }, io: Io): Promise<number> {
  let s: SupervisorStatus;
  try {
    s = await client(flags, io).request<SupervisorStatus>('GET', '/v1/status');
  } catch (err) {
    return adminFailure(err);
  }
  io.stdout.write(flags.json === true ? `${JSON.stringify(s, null, 2)}\n` : renderStatus(s));
  return EXIT.ok;
}

export async function abortCommand(flags: ClientFlags & { reason?: string }, io: Io): Promise<number> {
  const body = flags.reason !== undefined ? { reason: flags.reason } : {};
  try {
    const r = await client(flags, io).request<{ aborted: boolean; handoff_id: string | null; phase: string | null }>('POST', '/v1/handoffs/current/abort', body);
    io.stdout.write(`aborted handoff ${r.handoff_id ?? '?'} (in phase ${r.phase ?? '?'}): it rolls back and the incumbent keeps serving\n`);
    return EXIT.ok;
  } catch (err) {
    if (err instanceof AdminError && (err.status === 404 || err.status === 409)) throw new CliError(err.message, EXIT.failed);
    return adminFailure(err);
  }
}

export const MAX_HISTORY = 100_000;

export function parseCount(v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  if (!/^\d{1,6}$/.test(v) || Number(v) < 1 || Number(v) > MAX_HISTORY) throw usageError(`-n: expected a whole number from 1 to ${MAX_HISTORY}, got '${v}'`);
  return Number(v);
}

export async function historyCommand(flags: ClientFlags & { n?: string; json?: boolean }, io: Io): Promise<number> {
  const limit = parseCount(flags.n, 10);
  let records: HistoryEntry[];
  try {
    records = await client(flags, io).request<HistoryEntry[]>('GET', `/v1/handoffs?limit=${limit}`);
  } catch (err) {
    return adminFailure(err);
  }
  io.stdout.write(flags.json === true ? `${JSON.stringify(records, null, 2)}\n` : renderHistory(records));
  return EXIT.ok;
}
