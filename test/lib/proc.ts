/** Processes as /proc shows them: what the tests and the benches check about children, fds and liveness. */

import fs from 'node:fs';

/** The fields of /proc/PID/stat after the command name (which may hold spaces and parentheses). */
function statFields(pid: number): string[] | undefined {
  try {
    const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined; // gone (or never was)
  }
}

/** The state letter of /proc/PID/stat (R, S, D, T, Z, ...), undefined when there is no such process. */
export function procState(pid: number): string | undefined {
  return statFields(pid)?.[0];
}

export function ppidOf(pid: number): number | undefined {
  const f = statFields(pid)?.[1];
  return f === undefined ? undefined : Number(f);
}

/** Pids whose parent is `ppid` (zombies included: a child not reaped yet is still one). */
export function childPids(ppid: number = process.pid): number[] {
  const out: number[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (/^\d+$/.test(d) && ppidOf(Number(d)) === ppid) out.push(Number(d));
  }
  return out;
}

/** Open fds of a process (this one by default). */
export function fdCount(pid: number = process.pid): number {
  return fs.readdirSync(`/proc/${pid}/fd`).length;
}

/** True while `pid` exists (a zombie too: signal 0 reaches it). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
