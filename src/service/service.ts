/**
 * The service side of a handoff: what a service embeds to act as cold-start incumbent, successor,
 * and incumbent of the next handoff. It speaks the wire protocol with S over the inherited control
 * channel, owns the data-dir lock, opens and closes accept on the inherited listeners, drains, and
 * calls the service's hooks (open, seal, resume, health, close) at the right moments.
 *
 * The one rule every path keeps: never two writers. A process writes only while it holds the lock;
 * the incumbent lets it go only after its seal hook stopped writes; a successor takes it only when
 * S says Begin; when S is lost, whoever holds the lock serves and nobody else does. A stateless
 * service (no open, no seal hook) has no lock and no writes: its successor accepts beside the
 * incumbent as soon as it is healthy, before its Hello, so there is no moment without an acceptor.
 *
 * HandoffService is the public face; the work is split by concept: machine.ts (the phases and the
 * transition table), runtime.ts (shared state and endings), start.ts, incumbent.ts, successor.ts,
 * dispatch.ts (messages), link.ts (the channel), supervisor-loss.ts, accept.ts, stop.ts.
 */

import { EventEmitter } from 'node:events';
import type { ServiceContract } from '../shared/contract.js';
import { onMessage } from './dispatch.js';
import { IncumbentFlow } from './incumbent.js';
import { SupervisorLink } from './link.js';
import type { Logger } from './logger.js';
import { fire, type Machine, type ServiceInput } from './machine.js';
import { Runtime } from './runtime.js';
import { runColdStart, runStandalone, runSuccessor } from './start.js';
import { handleSignals } from './stop.js';
import { SuccessorFlow } from './successor.js';
import { SupervisorLoss } from './supervisor-loss.js';
import type { ServiceEvents, ServiceOptions, ServicePhase } from './types.js';

export class HandoffService extends EventEmitter<ServiceEvents> {
  readonly logger: Logger;
  readonly contract: ServiceContract;
  private readonly rt: Runtime;
  private readonly machine: Machine;
  private readonly link: SupervisorLink;

  constructor(opts: ServiceOptions) {
    super();
    const rt = new Runtime(opts, this);
    this.rt = rt;
    this.logger = rt.logger;
    this.contract = rt.contract;
    const fireOne = (e: ServiceInput): void => fire(this.machine, e);
    const loss = new SupervisorLoss(rt, fireOne);
    this.machine = { rt, incumbent: new IncumbentFlow(rt, fireOne), successor: new SuccessorFlow(rt), loss };
    this.link = new SupervisorLink(rt, (msg) => onMessage(this.machine, msg), loss);
  }

  get phase(): ServicePhase {
    return this.rt.phase;
  }

  /** The handoff in flight (canonical UUID form), if any. */
  get handoffId(): string | undefined {
    return this.rt.handoffId;
  }

  /** The inherited listeners by name → fd (the masters: do not close or listen on them; see Acceptor). */
  get listenerFds(): ReadonlyMap<string, number> {
    return new Map(this.rt.accept.pool.listeners.map((l) => [l.name, l.fd]));
  }

  get supervised(): boolean {
    return this.contract.supervised;
  }

  get lockHeld(): boolean {
    return this.rt.lock?.held ?? false;
  }

  /**
   * Starts: cold start (lock, open, accept, Hello) or successor (Hello, then Begin → lock, open,
   * health, accept, Ready; stateless: health, accept, Hello, then Begin → Ready). Resolves once
   * serving (a successor: once Ready); an unhealthy successor never serves (it exits on S's
   * Abort). Failures that the contract says end the process do.
   */
  start(): Promise<void> {
    const rt = this.rt;
    if (rt.phase !== 'idle') return Promise.reject(new Error('start() was already called'));
    rt.enter({ phase: 'starting' });
    if (rt.opts.handleSignals !== false) rt.removeSignalHandlers = handleSignals(rt, () => this.stop());
    const serving = new Promise<void>((resolve) => {
      rt.servingResolve = resolve;
    });
    const run = !this.contract.supervised ? runStandalone(rt) : this.contract.role === 'successor' ? runSuccessor(rt, this.link) : runColdStart(rt, this.link);
    run.catch((err: unknown) => rt.fatal('start failed', err));
    return serving;
  }

  /**
   * Graceful stop (what SIGTERM does): stop accepting, drain, close, release the lock, exit 0.
   * Settles once the process has been told to end.
   */
  stop(): Promise<void> {
    fire(this.machine, { kind: 'stop' });
    return this.rt.exited;
  }
}

/** Creates the service runtime (attach event listeners, then call start()). */
export function createService(opts: ServiceOptions): HandoffService {
  return new HandoffService(opts);
}

/** Creates and starts; resolves once serving. */
export async function startService(opts: ServiceOptions): Promise<HandoffService> {
  const s = new HandoffService(opts);
  await s.start();
  return s;
}
