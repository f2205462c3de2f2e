/**
 * Binding listeners through a short-lived helper process.
 *
 * S must never accept a connection: one that arrives while no child is accepting waits in the
 * kernel's queue for the next child. A `net.Server` that S listened on would accept (libuv accepts
 * eagerly as soon as the socket is readable), and Node 20 has no way to create a listening socket
 * without a libuv watcher. So a short-lived helper process binds and listens, and sends each
 * listening handle to S over a Node IPC channel. S receives it as a raw handle (a TCP or Pipe wrap
 * around a fresh close-on-exec fd) that it never listens on, so it never polls for connections; it
 * only passes the fd to children in `spawn`'s stdio array. The helper closes its own copy in the same
 * tick it started listening (before its event loop could poll), so it never accepts either.
 */

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import type { Logger } from 'pino';
import { ListenerError, oneLine } from './error.js';
import type { HeldListener } from './held.js';
import { HELPER_SOURCE, isHelperMessage } from './helper.js';
import { MAX_UNIX_PATH_BYTES, checkUniqueNames, type ListenerSpec } from './spec.js';

/** The listen queue length asked for each socket (the kernel caps it at net.core.somaxconn). */
export const LISTEN_BACKLOG = 511;
/** Mode of the unix socket files S creates: owner and group may connect. */
export const UNIX_SOCKET_MODE = 0o660;
const DEFAULT_BIND_TIMEOUT_MS = 10_000;

interface RawHandle {
  fd: number;
  close(cb?: () => void): void;
}

function isRawHandle(h: unknown): h is RawHandle {
  if (typeof h !== 'object' || h === null) return false;
  const r = h as { fd?: unknown; close?: unknown };
  return typeof r.fd === 'number' && r.fd >= 0 && typeof r.close === 'function';
}

export interface BindOptions {
  logger?: Logger;
  /** How long the helper may take for all listeners together. Default 10 s. */
  timeoutMs?: number;
}

/**
 * Binds every spec through a helper process and resolves with the held listeners, in spec order.
 * On any failure, closes whatever was already received and rejects with one ListenerError.
 */
export async function bindListeners(specs: readonly ListenerSpec[], opts: BindOptions = {}): Promise<HeldListener[]> {
  checkUniqueNames(specs);
  if (specs.length === 0) return [];
  const log = opts.logger;
  const timeoutMs = opts.timeoutMs ?? DEFAULT_BIND_TIMEOUT_MS;
  const held: HeldListener[] = [];
  const child = spawn(
    process.execPath,
    ['-e', HELPER_SOURCE, JSON.stringify(specs), String(LISTEN_BACKLOG), String(MAX_UNIX_PATH_BYTES), String(UNIX_SOCKET_MODE)],
    // An empty environment: no NODE_OPTIONS (loaders, inspectors) for a helper that only binds.
    { stdio: ['ignore', 'ignore', 'pipe', 'ipc'], env: {}, serialization: 'json' },
  );
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    if (stderr.length < 4096) stderr += d;
  });
  const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('close', (code, signal) => resolve({ code, signal }));
    // A child that could not be spawned at all emits 'error' and never 'close'.
    child.once('error', () => {
      if (child.pid === undefined) resolve({ code: null, signal: null });
    });
  });

  let failure: ListenerError | null = null;
  const done = new Promise<void>((resolve) => {
    const timer = setTimeout(() => {
      failure ??= new ListenerError('helper_failed', `binding listeners took longer than ${timeoutMs} ms`);
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.on('message', (msg: unknown, handle: unknown) => {
      if (!isHelperMessage(msg) || msg.index !== held.length || msg.name !== specs[msg.index]?.name) {
        if (isRawHandle(handle)) handle.close();
        failure ??= new ListenerError('helper_failed', 'the bind helper sent an unexpected message');
        child.kill('SIGKILL');
        return;
      }
      const spec = specs[msg.index] as ListenerSpec;
      if (msg.type === 'error') {
        failure ??= new ListenerError(
          'bind_failed',
          `cannot listen on ${JSON.stringify(spec.name)} (${spec.spec.slice(spec.name.length + 1)}): ${msg.code}: ${msg.message}`,
          spec.name,
          msg.code,
        );
        return; // the helper disconnects and exits
      }
      if (!isRawHandle(handle)) {
        failure ??= new ListenerError('helper_failed', `the bind helper sent no socket for ${JSON.stringify(spec.name)}`, spec.name);
        child.kill('SIGKILL');
        return;
      }
      const l = holdHandle(spec, msg.address, handle, msg.ino);
      held.push(l);
      log?.debug({ listener: l.name, address: l.address, fd: l.fd }, 'listener bound');
      child.send({ type: 'ack', index: msg.index });
    });
    child.on('error', (err) => {
      failure ??= new ListenerError('helper_failed', `cannot run the bind helper: ${err.message}`);
    });
    void closed.then(() => {
      clearTimeout(timer);
      resolve();
    });
  });
  await done;
  const exit = await closed;
  if (failure === null && held.length !== specs.length) {
    const why = oneLine(stderr.trim()) || `exit code ${String(exit.code)}, signal ${String(exit.signal)}`;
    failure = new ListenerError('helper_failed', `the bind helper ended after ${held.length} of ${specs.length} listeners: ${why}`);
  }
  if (failure !== null) {
    for (const l of held) l.close();
    throw failure;
  }
  return held;
}

function holdHandle(spec: ListenerSpec, address: string, handle: RawHandle, ino: number | null): HeldListener {
  // `handle` stays referenced by this closure for as long as the listener is held.
  const fd = handle.fd;
  let open = true;
  return {
    name: spec.name,
    fd,
    address,
    close(): void {
      if (!open) return;
      open = false;
      handle.close();
      if (spec.kind === 'unix' && ino !== null) unlinkIfSame(spec.path, ino);
    },
  };
}

function unlinkIfSame(p: string, ino: number): void {
  try {
    const st = fs.lstatSync(p);
    if (st.isSocket() && st.ino === ino) fs.unlinkSync(p);
  } catch {
    // gone already, or not ours to remove
  }
}
