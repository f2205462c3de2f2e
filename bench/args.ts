/**
 * The benches' command lines: `--flag value` pairs and bare switches, each applied by an entry of a
 * table; anything else (an unknown flag, a missing or bad value) is refused with the usage line.
 */

/** Applies a flag's value to the arguments; false when the value is bad. */
export type ApplyValue<A> = (a: A, value: string) => boolean;

export function parseFlags<A>(argv: readonly string[], a: A, flags: Readonly<Record<string, ApplyValue<A>>>, switches: Readonly<Record<string, (a: A) => void>>, usage: string): A {
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i] ?? '';
    if (Object.hasOwn(switches, k)) {
      switches[k]?.(a);
      continue;
    }
    const v = argv[i + 1];
    const apply = Object.hasOwn(flags, k) ? flags[k] : undefined;
    if (apply === undefined || v === undefined || !apply(a, v)) throw new Error(`unknown or bad argument: ${k} ${String(v)} (${usage})`);
    i++;
  }
  return a;
}

/** A number for which `ok` holds. */
export function numberFlag<A>(ok: (n: number) => boolean, set: (a: A, n: number) => void): ApplyValue<A> {
  return (a, v) => {
    const n = Number(v);
    if (!ok(n)) return false;
    set(a, n);
    return true;
  };
}

/** A count of at least `min` (a fraction is rounded down). */
export function countFlag<A>(min: number, set: (a: A, n: number) => void): ApplyValue<A> {
  return numberFlag((n) => n >= min, (a, n) => set(a, Math.floor(n)));
}

/** What the handoff runs (bench/handoff.ts, bench/stress.ts) share: how many, how far apart, how many clients, and whether to write RESULTS.md. */
export interface RunArgs {
  handoffs: number;
  gapMs: number;
  clients: number;
  write: boolean;
}

export const RUN_FLAGS: Readonly<Record<string, ApplyValue<RunArgs>>> = {
  '--handoffs': countFlag(1, (a, n) => (a.handoffs = n)),
  '--gap': numberFlag((n) => n >= 0, (a, n) => (a.gapMs = n)),
  '--clients': countFlag(1, (a, n) => (a.clients = n)),
};

/** `--no-write`: print the section, leave bench/RESULTS.md alone. */
export const NO_WRITE: Readonly<Record<string, (a: { write: boolean }) => void>> = {
  '--no-write': (a) => (a.write = false),
};
