/**
 * The demo's processes as /proc shows them (Linux): what the host waits for before it exits, and
 * what the demo kills if a host itself had to be killed and left its services behind.
 */

import fs from 'node:fs';

function readProc(pid: string, file: string): string | undefined {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return undefined; // gone, or not ours to read
  }
}

function pids(): string[] {
  return fs.readdirSync('/proc').filter((d) => /^\d+$/.test(d));
}

/** Pids whose parent is `ppid`. */
export function childrenOf(ppid: number): number[] {
  return pids()
    .filter((d) => {
      const s = readProc(d, 'stat');
      return s !== undefined && Number(s.slice(s.lastIndexOf(')') + 2).split(' ')[1]) === ppid;
    })
    .map(Number);
}

/** Every process below `pid` (children, their children, …): the services and their own helpers. */
export function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((c) => [c, ...descendantsOf(c)]);
}

/** Pids whose command line mentions `text` (the demo's temp dir: every kv process it started). */
export function processesMentioning(text: string): number[] {
  return pids()
    .filter((d) => Number(d) !== process.pid && (readProc(d, 'cmdline')?.split('\0').some((a) => a.includes(text)) ?? false))
    .map(Number);
}

/** Alive and not a zombie (a zombie is dead: only its exit status waits for its parent). */
export function running(pid: number): boolean {
  const s = readProc(String(pid), 'stat');
  return s !== undefined && s.slice(s.lastIndexOf(')') + 2, s.lastIndexOf(')') + 3) !== 'Z';
}

/** Resolves once none of `list` runs any more, or after `limitMs` (with those still running). */
export async function waitGone(list: readonly number[], limitMs: number): Promise<number[]> {
  const until = Date.now() + limitMs;
  for (;;) {
    const left = list.filter(running);
    if (left.length === 0 || Date.now() >= until) return left;
    // No exit event reaches us for processes that are not our children: look again shortly.
    await new Promise((r) => setTimeout(r, 20));
  }
}
