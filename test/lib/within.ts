/** Bounding a wait on an event: the one timeout the tests allow, which turns a hang into a clear failure. */

/** Resolves or rejects as `p` does, or rejects after `ms` naming `what` (not a sleep: it ends as soon as `p` does). */
export function within<T>(ms: number, what: string, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]);
}
