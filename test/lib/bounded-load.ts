/**
 * What every bounded load of the tests shares, whatever it sends: client loops started together,
 * a cap on what is sent and on how long it runs (whichever comes first stops it by itself), waits on
 * a predicate re-checked after every answer, and a stop that lets what is in flight finish.
 * A load says what one client does (`client`) and what its result is (`result`); never a sleep
 * but the pacing between one client's sends, which a stop cuts short.
 */

/** A send that failed, as a load records it: which client, what kind of failure, what was said. */
export interface LoadFailure {
  client: string;
  kind: string;
  detail: string;
}

/** What one client of a load saw: who answered it, and how many connections it opened. */
export class ClientStats {
  /** Answers per serving pid. */
  readonly byPid = new Map<number, number>();
  connections = 0;

  constructor(readonly name: string) {}

  answeredBy(pid: number): void {
    this.byPid.set(pid, (this.byPid.get(pid) ?? 0) + 1);
  }
}

export abstract class BoundedLoad<F extends LoadFailure, R> {
  protected readonly failures: F[] = [];
  /** True when the cap on sends or on time stopped the load before stop() did. */
  protected capped = false;
  private stopping = false;
  private readonly loops: Array<Promise<void>> = [];
  private readonly waiters: Array<() => void> = [];
  private readonly sleepers: Array<() => void> = [];
  private sent = 0;
  private deadline: NodeJS.Timeout | undefined;
  private stopped: Promise<R> | undefined;

  /** `unit`: what one send is called in messages (`requests`, `lines`). */
  constructor(private readonly cap: { maxSends: number; maxMs: number; unit: string }) {}

  /** Starts the client loops and the cap on time. */
  protected begin(loops: Array<Promise<void>>): void {
    this.loops.push(...loops);
    this.deadline = setTimeout(() => {
      this.capped = true;
      this.halt();
    }, this.cap.maxMs);
  }

  /** Resolves once `pred` holds (checked after every answer); rejects when the load has ended first. */
  until(pred: () => boolean, what: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (pred()) resolve();
        else if (this.stopping) reject(new Error(`the load ended (${this.sent} ${this.cap.unit}, capped: ${this.capped}) before ${what}; failures: ${JSON.stringify(this.failures.slice(0, 5))}`));
        else this.waiters.push(check);
      };
      check();
    });
  }

  /** Stops sending, waits for what is in flight, then the result; idempotent. */
  stop(): Promise<R> {
    this.stopped ??= (async () => {
      this.halt();
      await Promise.all(this.loops);
      return this.result();
    })();
    return this.stopped;
  }

  /** The result, once every client loop has ended. */
  protected abstract result(): R;

  /** A client may send once more: false once stopping, or once the cap on sends is reached (which stops the load). */
  protected next(): boolean {
    if (this.stopping) return false;
    if (this.sent >= this.cap.maxSends) {
      this.capped = true;
      this.halt();
      return false;
    }
    this.sent++;
    return true;
  }

  /** An answer (or a failure) came: the waits re-check. */
  protected wake(): void {
    this.waiters.splice(0).forEach((w) => w());
  }

  /** Waits `ms` between one client's sends; a stop ends every pause at once. */
  protected pause(ms: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => {
      const timer = setTimeout(done, Math.max(0, ms));
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.sleepers.push(done);
    });
  }

  private halt(): void {
    if (this.stopping) return;
    this.stopping = true;
    clearTimeout(this.deadline);
    this.sleepers.splice(0).forEach((w) => w());
    this.wake();
  }
}
