/**
 * Any program (not only node) in its own process group, its output collected and awaitable, and a
 * guaranteed end: at teardown the whole group it started is killed, so a tool's exec()ed child
 * (systemd-socket-activate's service, S's incumbent) cannot outlive the test.
 */

import { spawn } from 'node:child_process';
import type { Test } from 'tap';
import { within } from './within.js';

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Launched {
  pid: number;
  exit: Promise<Exit>;
  out(): string;
  err(): string;
  /** Resolves when `pred` holds on stderr so far; rejects if the process exits first, or after `ms`. */
  untilErr(pred: (err: string) => boolean, what: string, ms?: number): Promise<void>;
}

/** The longest a wait on a launched process's stderr takes by default, on a slow, busy machine. */
const UNTIL_MS = 30_000;

export function launch(t: Test, cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Launched {
  const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  const waiters: Array<() => void> = [];
  const poke = (): void => waiters.splice(0).forEach((w) => w());
  child.stdout?.setEncoding('utf8').on('data', (d: string) => ((stdout += d), poke()));
  child.stderr?.setEncoding('utf8').on('data', (d: string) => ((stderr += d), poke()));
  const exit = new Promise<Exit>((resolve) =>
    child.once('exit', (code, signal) => {
      resolve({ code, signal });
      poke();
    }),
  );
  const pid = child.pid;
  if (pid === undefined) throw new Error(`cannot start ${cmd}`);
  const exited = (): boolean => child.exitCode !== null || child.signalCode !== null;
  t.teardown(() => {
    if (exited()) return;
    try {
      process.kill(-pid, 'SIGCONT');
      process.kill(-pid, 'SIGKILL'); // the group this test started
    } catch {
      // gone
    }
  });
  return {
    pid,
    exit,
    out: () => stdout,
    err: () => stderr,
    untilErr(pred, what, ms = UNTIL_MS) {
      return within(
        ms,
        what,
        new Promise<void>((resolve, reject) => {
          const check = (): void => {
            if (pred(stderr)) resolve();
            else if (exited()) reject(new Error(`exited before ${what}; stderr:\n${stderr.slice(-2000)}`));
            else waiters.push(check);
          };
          check();
        }),
      );
    },
  };
}
