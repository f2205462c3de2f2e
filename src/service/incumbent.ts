/**
 * The incumbent's side of a handoff: PrepareHandoff (close accept, drain), SealRequest (seal, let
 * the lock go), Commit (close, exit), and the two ways back to serving when a handoff is called
 * off: before the lock was let go (undoHeld) and after (resumeReleased, which must retake it).
 */

import { abortReason, idEquals, idToString, type Channel, type MessageOf } from '../protocol/index.js';
import { TIMER_MAX_MS } from '../shared/constants.js';
import type { Runtime } from './runtime.js';
import { SealError } from './types.js';
import { failChannel, firstLine, toU64List, unexpected, wireText } from './wire.js';

/** How long an incumbent aborted after SealComplete tries to retake the lock S just saw it release. */
export const RESUME_LOCK_WINDOW_MS = 2_000;

export class IncumbentFlow {
  /** A PrepareHandoff that arrived while resuming, taken once serving again. */
  private deferredPrepare: MessageOf<'PrepareHandoff'> | undefined;

  constructor(private readonly rt: Runtime) {}

  prepare(channel: Channel, msg: MessageOf<'PrepareHandoff'>): void {
    const rt = this.rt;
    if (rt.phase === 'resuming' && !this.deferredPrepare) {
      // S cannot know when a resume is over (there is no message for it): take it right after.
      this.deferredPrepare = msg;
      return;
    }
    if (rt.phase !== 'serving') unexpected(msg, rt.phase);
    rt.currentId = msg.handoff_id;
    rt.asSuccessor = false;
    rt.sealStarted = false;
    rt.abortPending = undefined;
    channel.handoffId = msg.handoff_id;
    const grace = Number(msg.drain_grace_ms > BigInt(TIMER_MAX_MS) ? BigInt(TIMER_MAX_MS) : msg.drain_grace_ms);
    this.armDeadline(channel, msg.deadline_ms);
    rt.task(this.drain(channel, grace));
    rt.events.emit('prepare', { handoffId: idToString(msg.handoff_id), successorPid: msg.successor_pid, drainGraceMs: grace });
  }

  private async drain(channel: Channel, graceMs: number): Promise<void> {
    const rt = this.rt;
    const epoch = ++rt.epoch;
    rt.phase = 'draining';
    rt.logger.info({ handoff_id: rt.handoffId, drain_grace_ms: graceMs }, 'preparing: accept closed, draining');
    await rt.accept.stop();
    // Called off while accept was closing: draining now would close connections of a serving process.
    if (epoch !== rt.epoch) return;
    const left = await rt.accept.drain(graceMs);
    if (epoch !== rt.epoch || rt.phase !== 'draining') return;
    rt.phase = 'drained';
    channel.send({ type: 'Drained', open_conns_remaining: Math.min(left, 0xffffffff), accept_closed: true });
    rt.logger.info({ open_conns_remaining: left }, 'drained');
    rt.events.emit('drained', { openConnsRemaining: left });
  }

  async seal(channel: Channel): Promise<void> {
    const rt = this.rt;
    const id = rt.currentId!;
    rt.phase = 'sealing';
    rt.sealStarted = true;
    rt.clearDeadline();
    rt.events.emit('seal', { handoffId: idToString(id) });
    rt.logger.info({ handoff_id: idToString(id) }, 'sealing');
    let result: { revisions: bigint[]; fingerprint: Uint8Array } | undefined;
    let failure: unknown;
    try {
      const r = await rt.opts.seal((p) => {
        if (rt.phase !== 'sealing') return;
        channel.send({
          type: 'SealProgress',
          shards_sealed: p.shardsSealed >>> 0,
          shards_total: p.shardsTotal >>> 0,
          last_revision: toU64List([p.lastRevision], 'lastRevision')[0]!,
        });
      });
      const revisions = toU64List(r.revisions, 'seal().revisions');
      if (!(r.fingerprint instanceof Uint8Array) || r.fingerprint.length !== 32) throw new TypeError('seal().fingerprint must be 32 bytes');
      result = { revisions, fingerprint: r.fingerprint };
    } catch (err) {
      failure = err;
    }
    if (rt.exiting || rt.stopping) return;
    const off = this.calledOff();
    if (off) {
      // Keep the lock and serve again. A silent S is told why, on the channel it reads when it runs again.
      if (off.silent) channel.send({ type: 'Abort', handoff_id: id, reason: off.reason });
      rt.events.emit('aborted', { reason: off.reason, phase: 'sealing' });
      return this.undoHeld();
    }
    if (!result) {
      const error = wireText(firstLine(failure));
      const partial = failure instanceof SealError ? wireText(failure.partialState) : 'unknown';
      rt.phase = 'seal-failed';
      channel.send({ type: 'SealFailed', handoff_id: id, error, partial_state: partial });
      rt.logger.error({ err: error, partial_state: partial }, 'seal failed; keeping the lock');
      rt.events.emit('seal-failed', { error });
      return;
    }
    await rt.releaseLock();
    const late = this.calledOff();
    if (late) {
      rt.events.emit('aborted', { reason: late.reason, phase: 'sealing' });
      const window = late.bySupervisor ? RESUME_LOCK_WINDOW_MS : 2 * rt.contract.heartbeatTimeoutMs;
      return this.resumeReleased(window, 50, late.silent ? late.reason : undefined);
    }
    rt.phase = 'sealed';
    channel.send({ type: 'SealComplete', handoff_id: id, last_revision_per_shard: result.revisions, data_dir_fingerprint: result.fingerprint });
    rt.logger.info({ revisions: result.revisions.map(String) }, 'sealed; lock released');
    await rt.flushChannel();
    if (rt.phase === 'sealed') rt.events.emit('sealed', { revisions: result.revisions });
  }

  /** Why the handoff in flight is off, if it is: S's Abort, S silent past the timeout, or S gone. */
  private calledOff(): { reason: string; silent: boolean; bySupervisor: boolean } | undefined {
    const rt = this.rt;
    if (rt.abortPending !== undefined) return { reason: rt.abortPending, silent: false, bySupervisor: true };
    if (rt.supervisor === 'silent') return { reason: rt.silenceReason(), silent: true, bySupervisor: false };
    if (rt.supervisor === 'lost') return { reason: 'supervisor lost', silent: false, bySupervisor: false };
    return undefined;
  }

  async commit(): Promise<void> {
    const rt = this.rt;
    rt.phase = 'committing';
    rt.logger.info({ handoff_id: rt.handoffId }, 'committed: closing and exiting');
    rt.events.emit('committed');
    await rt.runClose();
    await rt.releaseLock();
    return rt.exit(0);
  }

  /** Abort while we still hold the lock (before sealing, or after a failed seal): serve again. */
  async undoHeld(): Promise<void> {
    const rt = this.rt;
    rt.epoch++;
    rt.phase = 'resuming';
    rt.clearDeadline();
    rt.accept.undrain();
    if (rt.sealStarted) {
      try {
        await rt.opts.resume?.();
      } catch (err) {
        return rt.fatal('resume failed', err);
      }
    }
    // A stop (or an exit) came meanwhile: it owns the ending; serving again would undo it.
    if (this.overtaken()) return;
    await this.reopenAccept();
    if (this.overtaken()) return;
    this.endHandoff();
  }

  /** A stop or an exit overtook the resume in flight: it owns the ending now. */
  private overtaken(): boolean {
    if (this.rt.phase === 'resuming') return false;
    this.rt.logger.info({ phase: this.rt.phase }, 'a stop came while resuming; not serving again');
    return true;
  }

  /**
   * After SealComplete: retake the lock (bounded), resume, accept again; exit when it cannot be
   * had. `tellSupervisor`: an Abort reason to send S once the lock is ours again (the handoff was
   * called off here, S does not know it yet).
   */
  async resumeReleased(windowMs: number, pollMs: number, tellSupervisor?: string): Promise<void> {
    const rt = this.rt;
    const id = rt.currentId;
    rt.epoch++;
    rt.phase = 'resuming';
    rt.clearDeadline();
    if (rt.lock) {
      let ok: boolean;
      try {
        ok = await rt.lock.acquireWithin(windowMs, pollMs);
      } catch (err) {
        return rt.fatal('retaking the data-dir lock failed', err);
      }
      if (this.overtaken()) {
        // The stop may have let the lock go already: never keep one it missed.
        if (rt.lock.held) {
          await rt.releaseLock();
          rt.logger.info('a lock retaken after the stop was let go');
        }
        return;
      }
      if (!ok) {
        rt.logger.error({ window_ms: windowMs }, 'cannot retake the data-dir lock (another process holds it); exiting');
        return rt.exit(1);
      }
    }
    if (tellSupervisor !== undefined && id) rt.channel?.send({ type: 'Abort', handoff_id: id, reason: tellSupervisor });
    try {
      await rt.opts.resume?.();
    } catch (err) {
      return rt.fatal('resume failed', err);
    }
    if (this.overtaken()) return;
    rt.accept.undrain();
    await this.reopenAccept();
    if (this.overtaken()) return;
    this.endHandoff();
  }

  private async reopenAccept(): Promise<void> {
    try {
      await this.rt.accept.start();
    } catch (err) {
      return this.rt.fatal('cannot reopen accept', err);
    }
  }

  private endHandoff(): void {
    const rt = this.rt;
    rt.lastEndedId = rt.currentId;
    rt.currentId = undefined;
    rt.asSuccessor = false;
    rt.sealStarted = false;
    rt.abortPending = undefined;
    if (rt.channel) rt.channel.handoffId = undefined;
    rt.phase = 'serving';
    rt.logger.info('serving again');
    rt.events.emit('resumed');
    const next = this.deferredPrepare;
    this.deferredPrepare = undefined;
    if (next && rt.channel && !rt.channel.closed) {
      try {
        this.prepare(rt.channel, next);
      } catch (err) {
        failChannel(rt.channel, err);
      }
    }
  }

  /** O's own deadline: if S neither seals nor aborts well past the handoff deadline, stop waiting. */
  private armDeadline(channel: Channel, deadlineMs: bigint): void {
    const rt = this.rt;
    rt.clearDeadline();
    // A relative budget; a value that can only be a Unix time is taken as one.
    let ms = Number(deadlineMs);
    if (ms > 1e12) ms -= Date.now();
    ms = Math.min(Math.max(ms, 0) + rt.contract.heartbeatTimeoutMs, TIMER_MAX_MS);
    const id = rt.currentId;
    rt.deadlineTimer = setTimeout(() => {
      rt.deadlineTimer = undefined;
      if ((rt.phase !== 'draining' && rt.phase !== 'drained') || !id || !rt.currentId || !idEquals(id, rt.currentId)) return;
      const reason = abortReason('deadline_exceeded', 'the incumbent waited past the handoff deadline and serves again');
      rt.logger.error('handoff deadline passed while drained: serving again');
      channel.send({ type: 'Abort', handoff_id: id, reason });
      rt.events.emit('aborted', { reason, phase: rt.phase });
      rt.task(this.undoHeld());
    }, ms);
    rt.deadlineTimer.unref();
  }
}
