/**
 * What the tests of S under systemd share: the real `handoff run` (bin/handoff on dist/), a notify
 * socket bound here as systemd's would be, and waits bounded by a clear failure, never by a sleep.
 */

import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type t from 'tap';
import { procState } from '../lib/proc.js';
import { tmpdir } from '../lib/tmpdir.js';
import { within } from '../lib/within.js';

export { launch, type Launched } from '../lib/launch.js';
export { within };

export type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = path.join(ROOT, 'bin/handoff');
export const KV_MAIN = path.join(ROOT, 'dist/examples/kv/main.js');
/** The longest any one step may take on a slow, busy machine. */
export const STEP_MS = 30_000;

/** What `handoff run` needs built; a message when something is missing. */
export function notBuilt(): string | null {
  const missing = [path.join(ROOT, 'dist/src/cli/main.js'), KV_MAIN].filter((f) => !fs.existsSync(f));
  return missing.length === 0 ? null : `not built: ${missing.map((f) => path.relative(ROOT, f)).join(', ')} (npm test builds dist/ first)`;
}

export function tmpDir(t: TapTest): string {
  return tmpdir(t, 'handoff-sd-');
}

/** Polls a state only /proc shows (a process stopped); the poll observes, it does not wait for time to pass. */
export async function until(what: string, probe: () => boolean): Promise<void> {
  const end = performance.now() + STEP_MS;
  while (!probe()) {
    if (performance.now() > end) throw new Error(`timed out after ${STEP_MS} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** True when the process is stopped (SIGSTOP, or a breakpoint). */
export function isStopped(pid: number): boolean {
  const state = procState(pid);
  return state !== undefined && 'Tt'.includes(state);
}

/** The environment a process started with. */
export function environOf(pid: number): Record<string, string> {
  const out: Record<string, string> = {};
  for (const kv of fs.readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0')) {
    const eq = kv.indexOf('=');
    if (eq > 0) out[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return out;
}

/** The test's environment without what systemd would set for S, and without test loaders. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['NODE_OPTIONS', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'LISTEN_FDS', 'LISTEN_PID', 'LISTEN_FDNAMES']) delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith('HANDOFF_')) delete env[k];
  return { ...env, ...extra };
}

/** pino JSON lines of a stderr, the ones that parse. */
export function logLines(stderr: string): Array<Record<string, unknown>> {
  const out: Array<Record<string, unknown>> = [];
  for (const line of stderr.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      // a partial line
    }
  }
  return out;
}

interface DgramSocket {
  bind(path: string): void;
  connect(path: string): void;
  send(buf: Buffer, cb?: (err?: Error) => void): void;
  close(): void;
  on(event: 'message', listener: (buf: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
}

export interface NotifySocket {
  path: string;
  /** Every datagram so far, in arrival order (systemd-notify's BARRIER=1 left out). */
  list: string[];
  /** Resolves when `pred` holds on the datagrams so far. */
  wait(pred: (list: string[]) => boolean, what: string): Promise<void>;
  /**
   * Sends `MARK=<n>` to the socket from here and resolves with its index once it is read: every
   * datagram sent before it (by anyone) is in the list by then, since the socket's queue is FIFO.
   */
  mark(): Promise<number>;
}

/** A datagram socket bound on a temp path, as systemd's notify socket is. Needs unix-dgram. */
export function notifySocket(t: TapTest, dir: string): NotifySocket {
  const dg = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): DgramSocket };
  const p = path.join(dir, 'notify.sock');
  const rx = dg.createSocket('unix_dgram');
  const list: string[] = [];
  const waiters: Array<() => void> = [];
  rx.on('message', (b) => {
    const text = b.toString('utf8');
    if (text === 'BARRIER=1') return;
    list.push(text);
    waiters.splice(0).forEach((w) => w());
  });
  rx.on('error', (err) => t.fail(`notify socket: ${err.message}`));
  rx.bind(p);
  const tx = dg.createSocket('unix_dgram');
  tx.on('error', (err) => t.fail(`notify marker: ${err.message}`));
  tx.connect(p);
  t.teardown(() => {
    tx.close();
    rx.close();
  });
  let marks = 0;
  const wait = (pred: (l: string[]) => boolean, what: string): Promise<void> =>
    within(
      STEP_MS,
      what,
      new Promise<void>((resolve) => {
        const check = (): void => (pred(list) ? resolve() : void waiters.push(check));
        check();
      }),
    ).catch((err: Error) => {
      throw new Error(`${err.message}; got ${JSON.stringify(list.slice(-12))}`);
    });
  return {
    path: p,
    list,
    wait,
    async mark(): Promise<number> {
      const m = `MARK=${++marks}`;
      tx.send(Buffer.from(m), (err) => {
        if (err) t.fail(`${m} not sent: ${err.message}`);
      });
      await wait((l) => l.includes(m), m);
      return list.indexOf(m);
    },
  };
}
