/**
 * The successor's side of a handoff once S says Begin: take the lock, open the state, accept, and
 * say Ready; or, when S calls the handoff off, get out of the way.
 */

import { abortReason, idToString, type Channel, type ErrorKind } from '../protocol/index.js';
import { LockHeldError } from './lock.js';
import type { Runtime } from './runtime.js';
import { firstLine, toU64List } from './wire.js';

export class SuccessorFlow {
  constructor(private readonly rt: Runtime) {}

  async begin(channel: Channel): Promise<void> {
    const rt = this.rt;
    const id = rt.currentId!;
    rt.phase = 'beginning';
    rt.logger.info({ handoff_id: idToString(id) }, 'begin');
    rt.events.emit('begin', { handoffId: idToString(id) });
    const fail = async (kind: ErrorKind, err: unknown): Promise<void> => {
      if (rt.exiting) return;
      const reason = abortReason(kind, firstLine(err));
      rt.logger.error({ reason }, 'successor failed; aborting the handoff');
      channel.send({ type: 'Abort', handoff_id: id, reason });
      await rt.accept.stop();
      return rt.exit(1);
    };
    // Each hook may outlast the handoff (an Abort, S lost, a stop): check before every next step.
    const stillOn = (): boolean => rt.phase === 'beginning' && !rt.exiting;
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
    let revisions: bigint[];
    try {
      const res = await rt.opts.open();
      rt.opened = true;
      revisions = toU64List(res.revisions, 'open().revisions');
    } catch (err) {
      return fail('successor_failed', err);
    }
    if (!stillOn()) return;
    try {
      await rt.accept.start();
    } catch (err) {
      return fail('successor_failed', err);
    }
    let healthy: boolean;
    try {
      healthy = (await (rt.opts.health?.() ?? true)) === true;
    } catch (err) {
      rt.logger.warn({ err: firstLine(err) }, 'health check threw');
      healthy = false;
    }
    if (!stillOn()) return;
    rt.becomeServing();
    if (rt.supervisorLost) {
      rt.logger.warn('the supervisor was lost after Begin; holding the lock, serving');
      return;
    }
    channel.send({
      type: 'Ready',
      handoff_id: id,
      listening_on: rt.accept.names,
      healthz_ok: healthy,
      advertised_revision_per_shard: revisions,
    });
    rt.logger.info({ healthz_ok: healthy, revisions: revisions.map(String) }, 'ready');
    await rt.flushChannel();
    rt.events.emit('ready', { healthy, revisions });
  }

  /** S called off the handoff we were the successor of: stop, close, let the lock go, exit quietly. */
  async rollback(closeState: boolean): Promise<void> {
    const rt = this.rt;
    rt.phase = 'exiting';
    await rt.accept.stop();
    if (closeState) {
      if (rt.opened) await rt.runClose();
      await rt.releaseLock();
    }
    // Mid-begin, a hook may still be running: the lock then goes with the process, atomically.
    return rt.exit(0);
  }
}
