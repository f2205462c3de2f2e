/**
 * One service run in this process by the fake supervisor, as a test sees it: what its hooks did,
 * the events it emitted, the frames exchanged with the supervisor, and how it exited. The run
 * itself (the control channel, the exit that does not end the process) is in link.ts.
 */

import net from 'node:net';
import type { Message } from '../protocol/index.js';
import type { HandoffService, ServiceEvents, ServiceOptions, StartRole } from '../service/index.js';

export type HookName = 'open' | 'seal' | 'resume' | 'health' | 'begin' | 'drain' | 'undrain' | 'close';

/** One call of one of the service's hooks, in call order. */
export interface HookCall {
  hook: HookName;
  /** `running` until it settles. */
  outcome: 'running' | 'returned' | 'threw';
  /** What it returned (open's and seal's results, health's answer, drain's count). */
  value?: unknown;
  /** The first line of what it threw. */
  error?: string;
}

/** A frame on the control channel (heartbeats are left out). */
export interface Frame {
  from: 'supervisor' | 'service';
  message: Message;
}

/** The payload of a service event (`undefined` for the events that carry none). */
export type EventDetail<K extends keyof ServiceEvents> = ServiceEvents[K] extends [infer D] ? D : undefined;

export type ServiceEventRecord = { [K in keyof ServiceEvents]: { event: K; detail: EventDetail<K> } }[keyof ServiceEvents];

/** Every event a service emits, so that each is recorded (the compiler checks the list is complete). */
const EVENTS = [
  'hello',
  'accepting',
  'accept-closed',
  'prepare',
  'drained',
  'seal',
  'sealed',
  'seal-failed',
  'begin',
  'ready',
  'committed',
  'aborted',
  'resumed',
  'supervisor-lost',
] as const satisfies ReadonlyArray<keyof ServiceEvents>;
const complete: Exclude<keyof ServiceEvents, (typeof EVENTS)[number]> extends never ? true : never = true;
void complete;

const HOOKS = ['open', 'seal', 'resume', 'health', 'begin', 'drain', 'undrain', 'close'] as const satisfies readonly HookName[];

/** Rejects after `ms` with `what`; the timer does not keep the process alive. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, limit]).finally(() => clearTimeout(timer));
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n', 1)[0] ?? '';
}

/** A service as the test sees it; the fake supervisor drives it through its Recorder. */
export class ServiceUnderTest {
  constructor(private readonly rec: Recorder) {}

  /** `cold-start` or `successor`: how it was started. */
  get role(): StartRole {
    return this.rec.role;
  }

  /** The service library's object (its phase, handoffId, lockHeld, stop()). */
  get service(): HandoffService {
    return this.rec.service!;
  }

  /** Every hook call, in order. */
  get hooks(): readonly HookCall[] {
    return this.rec.hooks;
  }

  /** The names of the hooks called so far, in order. */
  get calls(): HookName[] {
    return this.rec.hooks.map((h) => h.hook);
  }

  /** Every event the service emitted, in order. */
  get events(): readonly ServiceEventRecord[] {
    return this.rec.events;
  }

  /** Every frame exchanged with the supervisor, in order (heartbeats left out). */
  get frames(): readonly Frame[] {
    return this.rec.frames;
  }

  /** The code the service exited with (the fake catches the end of the process), once it has. */
  get exitCode(): number | undefined {
    return this.rec.exitCode;
  }

  /** The next `event` emitted after this call (call it before what causes the event). */
  next<K extends keyof ServiceEvents>(event: K): Promise<EventDetail<K>> {
    return within(this.rec.once(event) as Promise<EventDetail<K>>, this.rec.timeoutMs, `event ${event}`);
  }

  /** Resolves with the exit code once the service has exited. */
  exited(): Promise<number> {
    return this.rec.exitedWithin(this.rec.timeoutMs);
  }
}

/** Records what one service does and catches its exit; the fake supervisor's side of a ServiceUnderTest. */
export class Recorder {
  readonly hooks: HookCall[] = [];
  readonly events: ServiceEventRecord[] = [];
  readonly frames: Frame[] = [];
  exitCode: number | undefined;
  service: HandoffService | undefined;
  readonly view = new ServiceUnderTest(this);

  private readonly exitedP: Promise<number>;
  private exitResolve: (code: number) => void = () => undefined;
  private readonly waiters: Array<{ event: keyof ServiceEvents; resolve: (d: unknown) => void }> = [];
  private readonly connections = new Set<net.Socket>();

  constructor(
    readonly role: StartRole,
    readonly timeoutMs: number,
  ) {
    this.exitedP = new Promise((r) => (this.exitResolve = r));
  }

  get alive(): boolean {
    return this.exitCode === undefined;
  }

  count(event: keyof ServiceEvents): number {
    return this.events.filter((e) => e.event === event).length;
  }

  once(event: keyof ServiceEvents): Promise<unknown> {
    return new Promise((resolve) => this.waiters.push({ event, resolve }));
  }

  /** The options the service runs with: the caller's, with hooks recorded and the end of the process caught. */
  instrument(opts: ServiceOptions): ServiceOptions {
    const out: ServiceOptions = { ...opts };
    for (const name of HOOKS) {
      // Called below with `opts` as `this`, as the library calls it.
      // eslint-disable-next-line @typescript-eslint/unbound-method
      const fn = opts[name] as ((...a: unknown[]) => unknown) | undefined;
      if (!fn) continue; // an absent hook keeps the library's default
      (out as unknown as Record<string, unknown>)[name] = (...args: unknown[]) => this.track(name, () => fn.apply(opts, args));
    }
    // A process that ends resets its connections; in-process, the fake does it.
    for (const server of Object.values(opts.servers)) {
      if (!(server instanceof net.Server)) continue;
      server.on('connection', (c: net.Socket) => {
        this.connections.add(c);
        c.once('close', () => this.connections.delete(c));
      });
    }
    out.exit = (code) => this.onExit(code);
    out.handleSignals = false;
    return out;
  }

  /** Records every event of `service`. */
  watch(service: HandoffService): void {
    this.service = service;
    for (const event of EVENTS) {
      service.on(event, (...args: unknown[]) => {
        const detail = args[0];
        this.events.push({ event, detail } as ServiceEventRecord);
        for (const w of this.waiters.filter((x) => x.event === event)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(detail);
        }
      });
    }
  }

  /** Resolves once `event` has been emitted more than `seen` times in all. */
  async eventCount(event: keyof ServiceEvents, seen: number, ms: number): Promise<void> {
    const until = Date.now() + ms;
    while (this.count(event) <= seen) await within(this.once(event), Math.max(0, until - Date.now()), `event ${event}`);
  }

  exitedWithin(ms: number): Promise<number> {
    return within(this.exitedP, ms, 'the service’s exit');
  }

  private track(hook: HookName, fn: () => unknown): unknown {
    const call: HookCall = { hook, outcome: 'running' };
    this.hooks.push(call);
    const threw = (err: unknown): never => {
      call.outcome = 'threw';
      call.error = firstLine(err);
      throw err;
    };
    const returned = <T>(v: T): T => {
      call.outcome = 'returned';
      if (v !== undefined) call.value = v;
      return v;
    };
    let r: unknown;
    try {
      r = fn();
    } catch (err) {
      return threw(err);
    }
    // Sync hooks stay sync (health, undrain): the library may not await them.
    return r instanceof Promise ? r.then(returned, threw) : returned(r);
  }

  private onExit(code: number): void {
    if (this.exitCode !== undefined) return;
    this.exitCode = code;
    for (const c of this.connections) c.destroy();
    this.exitResolve(code);
  }
}
