/**
 * The successor's side of a handoff once S says Begin: take the lock, open the state, ask health,
 * and only when healthy accept and say Ready; or, when S calls the handoff off, get out of the way
 * (draining like an incumbent once it has accepted, so no client is reset). A stateless successor
 * has no lock to take or state to open; one that accepts already (`overlapping`: it was healthy
 * before its Hello) says Ready at once.
 */

import { abortReason, idToString, type ErrorKind, type HandoffId } from '../protocol/index.js';
import { LockHeldError } from '../shared/lock.js';
import type { StateOf } from './machine.js';
import type { Runtime } from './runtime.js';
import { stopServing } from './stop.js';
import { firstLine, toU64List } from './wire.js';

/** The phases a successor leaves from when its handoff is called off. */
type Leaving = StateOf<'awaiting-begin' | 'overlapping' | 'beginning' | 'unhealthy' | 'serving'>;

export class SuccessorFlow {
  constructor(private readonly rt: Runtime) {}

  async begin(from: StateOf<'awaiting-begin' | 'overlapping'>, id: HandoffId): Promise<void> {
    const rt = this.rt;
    const accepting = from.phase === 'overlapping';
    const channel = rt.channel!;
    rt.enter({ phase: 'beginning', handoff: id });
    rt.logger.info({ handoff_id: idToString(id) }, 'begin');
    rt.events.emit('begin', { handoffId: idToString(id) });
    const fail = async (kind: ErrorKind, err: unknown): Promise<void> => {
      if (rt.phase === 'exiting') return;
      const reason = abortReason(kind, firstLine(err));
      rt.logger.error({ reason }, 'successor failed; aborting the handoff');
      channel.send({ type: 'Abort', handoff_id: id, reason });
      // A stop that came meanwhile owns the ending (it drains).
      if (rt.phase === 'stopping') return;
      // Accepting already (stateless): its clients are drained, never reset.
      if (rt.accept.open) return stopServing(rt, 1);
      await rt.accept.stop();
      return rt.exit(1);
    };
    // Each hook may outlast the handoff (an Abort, S lost, a stop): check before every next step.
    const stillOn = (): boolean => rt.phase === 'beginning';
    try {
      await rt.opts.begin?.();
    } catch (err) {
      return fail('successor_failed', err);
    }
    if (!stillOn()) return;
    if (rt.lock) {
      try {
        await rt.lock.acquire();
      } catch (err) {
        return fail(err instanceof LockHeldError ? 'lock_held' : 'successor_failed', err);
      }
      rt.logger.info({ lockPath: rt.lock.lockPath }, 'data-dir lock taken');
    }
    if (!stillOn()) return;
    let revisions: bigint[] = [];
    if (rt.opts.open) {
      try {
        const res = await rt.opts.open();
        revisions = toU64List(res.revisions, 'open().revisions');
      } catch (err) {
        return fail('successor_failed', err);
      }
      if (!stillOn()) return;
    }
    // Health before accept: a build S is going to reject must never answer a client. One that
    // accepts already said healthy before it did.
    if (!accepting) {
      const healthy = await rt.askHealth();
      if (!stillOn()) return;
      if (!healthy) return this.unhealthy(id, revisions);
      try {
        await rt.accept.start();
      } catch (err) {
        return fail('successor_failed', err);
      }
      if (!stillOn()) return;
    }
    rt.becomeServing(id);
    if (rt.supervisor === 'lost') {
      rt.logger.warn('the supervisor was lost after Begin; holding the lock, serving');
      return;
    }
    this.ready(id, true, revisions);
    await rt.flushChannel();
    rt.events.emit('ready', { healthy: true, revisions });
  }

  /** Not healthy: say so in Ready and wait, not accepting, for S's Abort (or leave if S is gone). */
  private async unhealthy(id: HandoffId, revisions: bigint[]): Promise<void> {
    const rt = this.rt;
    const s = { phase: 'unhealthy', handoff: id } as const;
    rt.enter(s);
    if (rt.supervisor === 'lost') {
      // Nobody will call this handoff off: let the lock go, so the incumbent can retake it and serve.
      rt.logger.warn('the supervisor was lost after Begin and this successor is not healthy: letting the lock go');
      return this.rollBack(s, 'supervisor lost');
    }
    this.ready(id, false, revisions);
    rt.logger.warn('not healthy: not accepting; waiting for the supervisor to call the handoff off');
    await rt.flushChannel();
    rt.events.emit('ready', { healthy: false, revisions });
  }

  private ready(id: HandoffId, healthy: boolean, revisions: bigint[]): void {
    this.rt.channel!.send({
      type: 'Ready',
      handoff_id: id,
      listening_on: this.rt.accept.names,
      healthz_ok: healthy,
      advertised_revision_per_shard: revisions,
    });
    this.rt.logger.info({ healthz_ok: healthy, revisions: revisions.map(String) }, 'ready');
  }

  /** The handoff we are the successor of is called off (or S is gone while we are unhealthy). */
  rollBack(from: Leaving, reason: string): void {
    this.rt.events.emit('aborted', { reason, phase: from.phase });
    this.rt.task(this.leave(from));
  }

  /**
   * Leave. Once accept has opened, that is a stop: its clients are drained like an incumbent's,
   * never reset. Otherwise: close the state, let the lock go, exit 0.
   */
  private async leave(from: Leaving): Promise<void> {
    const rt = this.rt;
    if (rt.accept.open) return stopServing(rt);
    return rt.exit(0, async () => {
      await rt.accept.stop();
      // Mid-begin, a hook may still be running: the lock then goes with the process, atomically.
      if (from.phase === 'beginning') return;
      // open() ran before health was asked: close what it opened.
      if (from.phase === 'unhealthy' || from.phase === 'serving') await rt.runClose();
      await rt.releaseLock();
    });
  }
}
