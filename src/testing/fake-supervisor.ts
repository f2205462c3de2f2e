/**
 * A fake supervisor for a service's own tests: it runs the service's code in the test's process
 * (the library's cold-start and successor roles, with the test's options), over a real control
 * channel and real listening sockets, and speaks S's side of the protocol step by step. Anything
 * the service does is recorded (ServiceUnderTest). No test runner is assumed.
 */

import fs from 'node:fs';
import { NIL_ID, newHandoffId, type HandoffId } from '../protocol/index.js';
import { createService, defaultLogger, type HandoffService, type ServiceOptions, type StartRole } from '../service/index.js';
import type { HeldListener } from '../supervisor/listeners.js';
import { DrainedHandoff, InFlight, type HandoffTiming } from './handoff.js';
import { ControlLink } from './link.js';
import { Recorder, within, type ServiceUnderTest } from './service-under-test.js';
import { bindHeld, portOf, serviceFds } from './sockets.js';

export interface FakeSupervisorOptions {
  /**
   * The listeners the supervisor holds, as `handoff run --listen` takes them (`http=tcp://127.0.0.1:0`,
   * `admin=unix:/path`); a bare name is a TCP socket on 127.0.0.1 at a free port. Default `['http']`.
   * The names must be those of the service's `servers`.
   */
  listen?: string[];
  /** The data-dir lock S names (HANDOFF_LOCK_PATH); default none: the service's own `lockPath`. */
  lockPath?: string;
  /** Heartbeat interval of both sides (default 100 ms). */
  heartbeatMs?: number;
  /** The service's silence limit for the supervisor (default 5 s). */
  heartbeatTimeoutMs?: number;
  /** PrepareHandoff's drain grace, also the service's stop grace (default 5 s). */
  drainGraceMs?: number;
  /** PrepareHandoff's deadline (default 60 s). */
  deadlineMs?: number;
  /** How long each step waits for the service (default 10 s; a drain waits its grace more). */
  timeoutMs?: number;
}

export class FakeSupervisor {
  private readonly links: ControlLink[] = [];
  private current: ControlLink | undefined;
  private inflight: InFlight | undefined;
  private lost = false;
  private readonly timing: HandoffTiming;

  private constructor(
    private readonly held: HeldListener[],
    private readonly opts: FakeSupervisorOptions,
  ) {
    this.timing = { drainGraceMs: opts.drainGraceMs ?? 5_000, deadlineMs: opts.deadlineMs ?? 60_000, timeoutMs: opts.timeoutMs ?? 10_000 };
  }

  /** Binds the listeners; nothing runs yet. */
  static async create(opts: FakeSupervisorOptions = {}): Promise<FakeSupervisor> {
    return new FakeSupervisor(await bindHeld(opts.listen ?? ['http']), opts);
  }

  /** The port of a TCP listener (default: the first), where the test's clients connect. */
  port(name?: string): number {
    return portOf(this.listener(name));
  }

  /** A listener's address: `tcp://HOST:PORT` or `unix:/PATH`. */
  address(name?: string): string {
    return this.listener(name).address;
  }

  /** The service that serves now (after a commit: the successor). */
  get incumbent(): ServiceUnderTest | undefined {
    return this.current?.rec.view;
  }

  /**
   * Runs `options` as a cold start (lock, open, accept, then Hello) and acknowledges its Hello.
   * Resolves once it serves.
   */
  async coldStart(options: ServiceOptions): Promise<ServiceUnderTest> {
    this.usable();
    if (this.current?.rec.alive) throw new Error('coldStart(): an incumbent already serves');
    const link = await this.launch('cold-start', options);
    await this.hello(link, NIL_ID);
    this.current = link;
    return link.rec.view;
  }

  /**
   * Starts a handoff to `options`: runs them as the successor (Hello, HelloAck), then tells the
   * incumbent PrepareHandoff and resolves once it drained. Go on with seal(), begin(), commit(),
   * or abort() at any stage.
   */
  async handoff(options: ServiceOptions): Promise<DrainedHandoff> {
    this.usable();
    const o = this.current;
    if (!o?.rec.alive) throw new Error('handoff(): no incumbent serves (coldStart() first)');
    if (this.inflight) throw new Error('handoff(): a handoff is already in flight (one at a time)');
    const id = newHandoffId();
    const n = await this.launch('successor', options);
    const h = new InFlight(id, o, n, this.timing, (committed) => {
      if (this.inflight === h) this.inflight = undefined;
      if (committed) this.current = n;
    });
    this.inflight = h;
    try {
      await this.hello(n, id);
    } catch (err) {
      // S kills a successor that fails its Hello; the incumbent was never told.
      this.inflight = undefined;
      n.close();
      throw err;
    }
    return new DrainedHandoff(h, await h.drain());
  }

  /** A whole handoff to `options` (drain, seal, begin, commit); resolves with the new incumbent. */
  async upgrade(options: ServiceOptions): Promise<ServiceUnderTest> {
    const drained = await this.handoff(options);
    const sealed = await drained.seal();
    const ready = await sealed.begin();
    return ready.commit();
  }

  /**
   * The supervisor dies: every control channel closes (end of stream). The services apply their
   * rules for a lost supervisor; wait for them with `next('supervisor-lost')`, `exited()`, ... A
   * lost fake supervisor drives nothing more.
   */
  lose(): void {
    this.lost = true;
    if (this.inflight) this.inflight.lost = true;
    for (const l of this.links) l.close();
  }

  /**
   * Stops every service still running, as S's SIGTERM does (drain, close, release, exit), then
   * closes the channels and the listeners. Call it in the test's teardown.
   */
  async close(): Promise<void> {
    for (const l of this.links) {
      if (l.rec.alive && l.rec.service) await within(l.rec.service.stop(), this.timing.drainGraceMs + this.timing.timeoutMs, 'stopping a service').catch(() => undefined);
    }
    this.lost = true;
    for (const l of this.links) l.close();
    for (const h of this.held) h.close();
  }

  private listener(name?: string): HeldListener {
    const l = name === undefined ? this.held[0] : this.held.find((h) => h.name === name);
    if (!l) throw new Error(`no listener ${JSON.stringify(name ?? '')}`);
    return l;
  }

  private usable(): void {
    if (this.lost) throw new Error('the fake supervisor is lost or closed');
  }

  /** Runs `options` in this process with the contract S would give a child of this role. */
  private async launch(role: StartRole, options: ServiceOptions): Promise<ControlLink> {
    const o = this.opts;
    const fds = await serviceFds(this.held);
    const rec = new Recorder(role, this.timing.timeoutMs);
    let service: HandoffService;
    try {
      service = createService({
        ...rec.instrument(options),
        // Quiet unless asked for (HANDOFF_LOG_LEVEL), as the library's own default logger reads it.
        logger: options.logger ?? defaultLogger({ HANDOFF_LOG_LEVEL: process.env.HANDOFF_LOG_LEVEL ?? 'silent' }),
        contract: {
          role,
          sockFd: fds.sockFd,
          listeners: this.held.map((h, i) => ({ name: h.name, fd: fds.listenerFds[i]! })),
          lockPath: o.lockPath,
          heartbeatMs: o.heartbeatMs ?? 100,
          heartbeatTimeoutMs: o.heartbeatTimeoutMs ?? 5_000,
          drainGraceMs: this.timing.drainGraceMs,
        },
      });
    } catch (err) {
      // Never adopted: close what was duplicated for it.
      fds.socket.destroy();
      for (const fd of [fds.sockFd, ...fds.listenerFds]) fs.closeSync(fd);
      throw err;
    }
    rec.watch(service);
    const link = new ControlLink(fds.socket, rec, o.heartbeatMs ?? 100, this.timing.timeoutMs);
    this.links.push(link);
    // start() resolves once it serves (a successor: after Ready); failures end in exit(), recorded.
    service.start().catch(() => undefined);
    return link;
  }

  private async hello(link: ControlLink, id: HandoffId): Promise<void> {
    const acked = link.rec.eventCount('hello', 0, this.timing.timeoutMs);
    acked.catch(() => undefined);
    await link.hello(link.rec.role === 'successor' ? 'Successor' : 'Incumbent', id);
    await acked;
  }
}
