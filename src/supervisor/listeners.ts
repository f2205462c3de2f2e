/**
 * The listening sockets S holds for its whole life.
 *
 * S must never accept a connection: one that arrives while no child is accepting waits in the
 * kernel's queue for the next child. A `net.Server` that S listened on would accept (libuv accepts
 * eagerly as soon as the socket is readable), and Node 20 has no way to create a listening socket
 * without a libuv watcher. So a short-lived helper process binds and listens, and sends each
 * listening handle to S over a Node IPC channel. S receives it as a raw handle (a TCP or Pipe wrap
 * around a fresh close-on-exec fd) that it never listens on, so it never polls for connections; it
 * only passes the fd to children in `spawn`'s stdio array. The helper closes its own copy in the same
 * tick it started listening (before its event loop could poll), so it never accepts either.
 *
 * Under systemd socket activation the fds are inherited instead (`inheritedListeners`).
 */

import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import type { Logger } from 'pino';
import type { ListenerInfo } from './types.js';

/** The listen queue length asked for each socket (the kernel caps it at net.core.somaxconn). */
export const LISTEN_BACKLOG = 511;
/** sun_path holds 108 bytes including the terminating NUL. */
export const MAX_UNIX_PATH_BYTES = 107;
/** Mode of the unix socket files S creates: owner and group may connect. */
export const UNIX_SOCKET_MODE = 0o660;
const MAX_NAME_LENGTH = 255;
const DEFAULT_BIND_TIMEOUT_MS = 10_000;
const SD_LISTEN_FDS_START = 3;

export type ListenerSpec =
  | { name: string; kind: 'tcp'; host: string; port: number; spec: string }
  | { name: string; kind: 'unix'; path: string; spec: string };

/** A listening socket S holds: pass `fd` to children; `close()` releases it (and its unix path). */
export interface HeldListener extends ListenerInfo {
  readonly fd: number;
  /** Idempotent. Closes S's fd; for a unix socket S created, also removes its path (if it is still that socket). */
  close(): void;
}

export type ListenerErrorCode = 'bad_spec' | 'duplicate_name' | 'bind_failed' | 'helper_failed' | 'bad_inherited';

/** Every failure of this module: a one-line message naming the listener when there is one. */
export class ListenerError extends Error {
  readonly code: ListenerErrorCode;
  /** The listener's name, when the error is about one. */
  readonly listener: string | undefined;
  /** The errno code (`EADDRINUSE`, `EACCES`, ...) for `bind_failed`. */
  readonly errno: string | undefined;

  constructor(code: ListenerErrorCode, message: string, listener?: string, errno?: string) {
    super(oneLine(message));
    this.name = 'ListenerError';
    this.code = code;
    this.listener = listener;
    this.errno = errno;
  }
}

function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return (s.split(/\r?\n/, 1)[0] ?? '').replace(/[\x00-\x1f\x7f]/g, ' ');
}

// --- parsing ------------------------------------------------------------------------------------

/** A valid LISTEN_FDNAMES name (as systemd's fdname_is_valid), non-empty, and without '=' (our separator). */
export function isValidListenerName(name: string): boolean {
  if (name.length === 0 || name.length > MAX_NAME_LENGTH) return false;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x3a /* : */ || c === 0x3d /* = */) return false;
  }
  return true;
}

/** Parses `NAME=tcp://HOST:PORT` (HOST an IPv4 address or `[IPv6]`, PORT 0-65535) or `NAME=unix:/PATH`. */
export function parseListen(spec: string): ListenerSpec {
  const shown = JSON.stringify(spec.length > 300 ? `${spec.slice(0, 300)}...` : spec);
  const bad = (why: string, name?: string): ListenerError =>
    new ListenerError('bad_spec', `bad listener ${shown}: ${why}`, name);
  const eq = spec.indexOf('=');
  if (eq < 0) throw bad('expected NAME=tcp://HOST:PORT or NAME=unix:/PATH');
  const name = spec.slice(0, eq);
  const url = spec.slice(eq + 1);
  if (!isValidListenerName(name)) {
    throw bad(`name must be 1-${MAX_NAME_LENGTH} printable ASCII characters without ':' or '='`);
  }
  if (url.startsWith('tcp://')) {
    const rest = url.slice('tcp://'.length);
    const colon = rest.lastIndexOf(':');
    if (colon < 0) throw bad('missing :PORT', name);
    let host = rest.slice(0, colon);
    const portText = rest.slice(colon + 1);
    if (host.startsWith('[') && host.endsWith(']')) {
      host = host.slice(1, -1);
      if (!net.isIPv6(host)) throw bad(`${JSON.stringify(host)} is not an IPv6 address`, name);
    } else if (!net.isIPv4(host)) {
      throw bad('host must be an IPv4 address or an IPv6 address in brackets, not a host name', name);
    }
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) > 65535) throw bad('port must be 0-65535', name);
    return { name, kind: 'tcp', host, port: Number(portText), spec };
  }
  if (url.startsWith('unix:')) {
    const p = url.slice('unix:'.length);
    if (!p.startsWith('/')) throw bad('unix path must be absolute', name);
    if (p.includes('\0')) throw bad('unix path contains a NUL byte', name);
    if (p.endsWith('/')) throw bad('unix path names a directory', name);
    const bytes = Buffer.byteLength(p);
    if (bytes > MAX_UNIX_PATH_BYTES) throw bad(`unix path is ${bytes} bytes, at most ${MAX_UNIX_PATH_BYTES}`, name);
    return { name, kind: 'unix', path: p, spec };
  }
  throw bad('address must start with tcp:// or unix:', name);
}

/** Parses all specs, rejecting duplicate names. */
export function parseListens(specs: readonly string[]): ListenerSpec[] {
  const out = specs.map((s) => parseListen(s));
  checkUniqueNames(out);
  return out;
}

function checkUniqueNames(specs: readonly ListenerSpec[]): void {
  const seen = new Set<string>();
  for (const s of specs) {
    if (seen.has(s.name)) throw new ListenerError('duplicate_name', `duplicate listener name ${JSON.stringify(s.name)}`, s.name);
    seen.add(s.name);
  }
}

// --- binding through a helper process -----------------------------------------------------------

/**
 * The helper, run as `node -e HELPER_SOURCE <specs JSON>` (CommonJS; no file to find, so it works
 * the same from the sources, from dist/ and from an installed package). For each spec in turn: bind
 * and listen, send the handle, close the helper's own copy in the send callback (same tick: its
 * event loop never polls the socket, so it never accepts), wait for S's ack. A unix socket is bound
 * under a temporary name and renamed into place before it is sent: libuv unlinks a pipe's bound path
 * when the pipe is closed, and the rename also replaces a stale socket file atomically.
 */
const HELPER_SOURCE = String.raw`'use strict';
const net = require('node:net');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const specs = JSON.parse(process.argv[1]);
const BACKLOG = Number(process.argv[2]);
const MAXPATH = Number(process.argv[3]);
process.umask(Number(process.argv[4]) ^ 0o777);
let index = 0;
function fail(spec, err) {
  const code = (err && typeof err.code === 'string') ? err.code : 'EUNKNOWN';
  const message = String((err && err.message) || err).split('\n')[0].replace(/^[a-z]+ E[A-Z]+: /, '');
  process.send({ type: 'error', index, name: spec.name, code, message }, () => process.disconnect());
}
function checkStale(spec, done) {
  // libuv reports a missing directory as EACCES; say what is wrong instead.
  const dir = path.dirname(spec.path);
  let dst;
  try { dst = fs.statSync(dir); } catch (e) { e.message = 'directory ' + dir + ': ' + (e.code === 'ENOENT' ? 'does not exist' : e.message); return fail(spec, e); }
  if (!dst.isDirectory()) { const e = new Error(dir + ' is not a directory'); e.code = 'ENOTDIR'; return fail(spec, e); }
  let st;
  try { st = fs.lstatSync(spec.path); } catch (e) { return e.code === 'ENOENT' ? done() : fail(spec, e); }
  if (!st.isSocket()) { const e = new Error(spec.path + ' exists and is not a socket'); e.code = 'EEXIST'; return fail(spec, e); }
  const c = net.connect(spec.path);
  c.once('connect', () => { c.destroy(); const e = new Error('another process listens on ' + spec.path); e.code = 'EADDRINUSE'; fail(spec, e); });
  c.once('error', (e) => e.code === 'ECONNREFUSED' ? done() : fail(spec, e));
}
function listen(spec) {
  const server = net.createServer();
  server.on('connection', (c) => c.destroy());
  let tmp = null;
  server.once('error', (e) => {
    if (tmp) { try { fs.unlinkSync(tmp); } catch {} e.message = String(e.message).split(tmp).join(spec.path); }
    fail(spec, e);
  });
  const onListening = () => {
    let address, ino = null;
    if (spec.kind === 'unix') {
      try { ino = fs.lstatSync(tmp).ino; fs.renameSync(tmp, spec.path); } catch (e) { server.close(); return fail(spec, e); }
      address = 'unix:' + spec.path;
    } else {
      const a = server.address();
      address = a.family === 'IPv6' ? 'tcp://[' + a.address + ']:' + a.port : 'tcp://' + a.address + ':' + a.port;
    }
    process.send({ type: 'bound', index, name: spec.name, address, ino }, server._handle, (err) => {
      server.close();
      if (err) fail(spec, err);
    });
  };
  if (spec.kind === 'tcp') {
    server.listen({ host: spec.host, port: spec.port, backlog: BACKLOG }, onListening);
  } else {
    tmp = path.join(path.dirname(spec.path), '.' + crypto.randomBytes(4).toString('hex') + '.tmp');
    if (Buffer.byteLength(tmp) > MAXPATH) { const e = new Error('no room for a temporary name next to ' + spec.path + '; use a shorter path'); e.code = 'ENAMETOOLONG'; return fail(spec, e); }
    server.listen({ path: tmp, backlog: BACKLOG }, onListening);
  }
}
function next() {
  if (index >= specs.length) { process.disconnect(); return; }
  const spec = specs[index];
  if (spec.kind === 'unix') checkStale(spec, () => listen(spec)); else listen(spec);
}
process.on('message', (m) => { if (m && m.type === 'ack' && m.index === index) { index++; next(); } });
process.on('disconnect', () => process.exit(0));
next();
`;

interface RawHandle {
  fd: number;
  close(cb?: () => void): void;
}

function isRawHandle(h: unknown): h is RawHandle {
  if (typeof h !== 'object' || h === null) return false;
  const r = h as { fd?: unknown; close?: unknown };
  return typeof r.fd === 'number' && r.fd >= 0 && typeof r.close === 'function';
}

type HelperMessage =
  | { type: 'bound'; index: number; name: string; address: string; ino: number | null }
  | { type: 'error'; index: number; name: string; code: string; message: string };

function isHelperMessage(m: unknown): m is HelperMessage {
  if (typeof m !== 'object' || m === null) return false;
  const r = m as Record<string, unknown>;
  if (typeof r['index'] !== 'number' || typeof r['name'] !== 'string') return false;
  if (r['type'] === 'bound') return typeof r['address'] === 'string' && (r['ino'] === null || typeof r['ino'] === 'number');
  if (r['type'] === 'error') return typeof r['code'] === 'string' && typeof r['message'] === 'string';
  return false;
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

// --- systemd socket activation ------------------------------------------------------------------

/**
 * The listeners systemd passed (LISTEN_FDS, LISTEN_FDNAMES, LISTEN_PID), at fds 3..3+n-1; null when
 * none were passed to this process. Removes the three variables from `env` in every case, so that
 * children never see stale ones (S sets its own per child). Names default to `fdN` when
 * LISTEN_FDNAMES is missing. The address is read from /proc/net: `fd:N` when not found there, or when
 * the unix path it shows is no longer a socket (a socket S bound itself was bound under a temporary
 * name, see HELPER_SOURCE).
 */
export function inheritedListeners(env: NodeJS.ProcessEnv = process.env, opts: { logger?: Logger } = {}): HeldListener[] | null {
  const fdsText = env['LISTEN_FDS'];
  const pidText = env['LISTEN_PID'];
  const namesText = env['LISTEN_FDNAMES'];
  delete env['LISTEN_FDS'];
  delete env['LISTEN_PID'];
  delete env['LISTEN_FDNAMES'];
  if (fdsText === undefined) return null;
  if (pidText !== undefined && pidText !== String(process.pid)) {
    opts.logger?.warn({ LISTEN_PID: pidText, pid: process.pid }, 'LISTEN_FDS is meant for another process; ignored');
    return null;
  }
  if (!/^[0-9]{1,6}$/.test(fdsText)) throw new ListenerError('bad_inherited', `LISTEN_FDS=${JSON.stringify(fdsText.slice(0, 20))} is not a count`);
  const n = Number(fdsText);
  if (n === 0) return null;
  let names: string[];
  if (namesText === undefined) {
    names = Array.from({ length: n }, (_, i) => `fd${SD_LISTEN_FDS_START + i}`);
  } else {
    names = namesText.split(':');
    if (names.length !== n) {
      throw new ListenerError('bad_inherited', `LISTEN_FDNAMES has ${names.length} names for LISTEN_FDS=${n}`);
    }
    names = names.map((name, i) => (isValidListenerName(name) ? name : `fd${SD_LISTEN_FDS_START + i}`));
  }
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) throw new ListenerError('duplicate_name', `LISTEN_FDNAMES names ${JSON.stringify(name)} twice`, name);
    seen.add(name);
  }
  const table = new SocketTable();
  return names.map((name, i) => {
    const fd = SD_LISTEN_FDS_START + i;
    let isSocket: boolean;
    try {
      isSocket = fs.fstatSync(fd).isSocket();
    } catch (e) {
      throw new ListenerError('bad_inherited', `inherited fd ${fd} (${JSON.stringify(name)}) is not open: ${(e as Error).message}`, name);
    }
    if (!isSocket) throw new ListenerError('bad_inherited', `inherited fd ${fd} (${JSON.stringify(name)}) is not a socket`, name);
    const address = table.addressOf(fd) ?? `fd:${fd}`;
    opts.logger?.debug({ listener: name, fd, address }, 'listener inherited');
    let open = true;
    return {
      name,
      fd,
      address,
      close(): void {
        if (!open) return;
        open = false;
        try {
          fs.closeSync(fd);
        } catch {
          // already closed
        }
      },
    };
  });
}

/** The address of the listening socket at `fd`, from /proc/net; null when it cannot be told. */
export function socketAddress(fd: number): string | null {
  return new SocketTable().addressOf(fd);
}

/** Finds a listening socket's address by its inode in /proc/net/{tcp,tcp6,unix}. Read lazily, once. */
class SocketTable {
  private byInode: Map<string, string> | null = null;

  addressOf(fd: number): string | null {
    let link: string;
    try {
      link = fs.readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      return null;
    }
    const m = /^socket:\[([0-9]+)\]$/.exec(link);
    if (!m?.[1]) return null;
    this.byInode ??= readSocketTable();
    const address = this.byInode.get(m[1]) ?? null;
    // /proc/net/unix shows the name the socket was bound to; it may have been renamed or removed since.
    if (address?.startsWith('unix:/') && !isSocketPath(address.slice('unix:'.length))) return null;
    return address;
  }
}

function isSocketPath(p: string): boolean {
  try {
    return fs.lstatSync(p).isSocket();
  } catch {
    return false;
  }
}

function readProc(p: string): string[] {
  try {
    return fs.readFileSync(p, 'utf8').split('\n').slice(1);
  } catch {
    return [];
  }
}

function readSocketTable(): Map<string, string> {
  const out = new Map<string, string>();
  for (const [file, v6] of [['/proc/net/tcp', false], ['/proc/net/tcp6', true]] as const) {
    for (const line of readProc(file)) {
      const f = line.trim().split(/\s+/);
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      const local = f[1];
      const state = f[3];
      const inode = f[9];
      if (!local || state !== '0A' || !inode) continue; // 0A: TCP_LISTEN
      const addr = parseProcTcpAddress(local, v6);
      if (addr) out.set(inode, addr);
    }
  }
  for (const line of readProc('/proc/net/unix')) {
    const f = line.trim().split(/\s+/);
    // Num RefCount Protocol Flags Type St Inode Path
    const flags = f[3];
    const inode = f[6];
    const p = f.slice(7).join(' ');
    if (!flags || !inode || !p) continue;
    if ((parseInt(flags, 16) & 0x10000) === 0) continue; // __SO_ACCEPTCON: listening
    out.set(inode, `unix:${p}`);
  }
  return out;
}

/** `0100007F:1F90` → `tcp://127.0.0.1:8080`; the address words are in host byte order. */
export function parseProcTcpAddress(text: string, v6: boolean): string | null {
  const [hex, portHex] = text.split(':');
  if (!hex || !portHex || hex.length !== (v6 ? 32 : 8)) return null;
  const bytes = Buffer.alloc(hex.length / 2);
  for (let w = 0; w < hex.length / 8; w++) {
    const word = parseInt(hex.slice(w * 8, w * 8 + 8), 16);
    if (os.endianness() === 'LE') bytes.writeUInt32LE(word, w * 4);
    else bytes.writeUInt32BE(word, w * 4);
  }
  const port = parseInt(portHex, 16);
  if (!v6) return `tcp://${Array.from(bytes).join('.')}:${port}`;
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i).toString(16));
  return `tcp://[${compressV6(groups)}]:${port}`;
}

function compressV6(groups: string[]): string {
  // the longest run of two or more zero groups becomes '::'
  let best = -1;
  let bestLen = 1;
  for (let i = 0; i < groups.length; ) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}
