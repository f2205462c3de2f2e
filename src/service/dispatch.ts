/**
 * What each message from S means in each phase: which flow step it starts, and how an Abort (or
 * ResumeAfterAbort) unwinds from wherever the handoff got to. Anything out of turn is a protocol
 * error, which fails the channel.
 */

import { idEquals, idToString, type Channel, type HandoffId, type Message, type MessageOf } from '../protocol/index.js';
import { RESUME_LOCK_WINDOW_MS, type IncumbentFlow } from './incumbent.js';
import type { Runtime } from './runtime.js';
import type { SuccessorFlow } from './successor.js';
import { checkId, unexpected } from './wire.js';

export class Dispatcher {
  constructor(
    private readonly rt: Runtime,
    private readonly incumbent: IncumbentFlow,
    private readonly successor: SuccessorFlow,
  ) {}

  /** Throws a ProtocolError (or anything else a handler throws) for the caller to fail the channel with. */
  onMessage(channel: Channel, msg: Message): void {
    const rt = this.rt;
    const phase = rt.phase;
    switch (msg.type) {
      case 'Heartbeat':
        return;
      case 'PrepareHandoff':
        return this.incumbent.prepare(channel, msg);
      case 'SealRequest':
        if (this.endedHere(msg.handoff_id)) {
          // Crossed our Abort (a deadline, a silent S): S reads that Abort next and calls it off.
          rt.logger.info({ handoff_id: idToString(msg.handoff_id) }, 'SealRequest for a handoff already called off here; ignored');
          return;
        }
        checkId(msg.handoff_id, rt.currentId);
        if (phase !== 'drained') unexpected(msg, phase);
        rt.task(this.incumbent.seal(channel));
        return;
      case 'Commit':
        if (this.endedHere(msg.handoff_id) && rt.lock !== undefined && !rt.lock.held) {
          // We called it off (a silent S) after sealing, but S read the successor's Ready first:
          // the successor holds the lock and serves, so this is a commit for us too.
          rt.logger.info({ handoff_id: idToString(msg.handoff_id) }, 'Commit for a handoff called off here while the successor holds the lock: committing');
          rt.task(this.incumbent.commit());
          return;
        }
        checkId(msg.handoff_id, rt.currentId);
        if (phase !== 'sealed') unexpected(msg, phase);
        rt.task(this.incumbent.commit());
        return;
      case 'Begin':
        checkId(msg.handoff_id, rt.currentId);
        if (phase !== 'awaiting-begin' || !rt.asSuccessor) unexpected(msg, phase);
        rt.task(this.successor.begin(channel));
        return;
      case 'Abort':
      case 'ResumeAfterAbort':
        return this.onAbort(msg);
      default:
        unexpected(msg, phase);
    }
  }

  /** `id` names a handoff this incumbent called off or is calling off (resuming from it). */
  private endedHere(id: HandoffId): boolean {
    const rt = this.rt;
    if (rt.currentId && idEquals(id, rt.currentId)) return rt.phase === 'resuming';
    return rt.lastEndedId !== undefined && idEquals(id, rt.lastEndedId);
  }

  private onAbort(msg: MessageOf<'Abort'> | MessageOf<'ResumeAfterAbort'>): void {
    const rt = this.rt;
    const reason = msg.type === 'Abort' ? msg.reason : 'resume after abort';
    const id = msg.handoff_id;
    if (!rt.currentId || !idEquals(id, rt.currentId)) {
      if (rt.lastEndedId && idEquals(id, rt.lastEndedId)) {
        rt.logger.debug({ type: msg.type }, 'the handoff already ended here; ignored');
        return;
      }
      if (msg.type === 'Abort' && !rt.currentId && rt.phase === 'serving') {
        // S may call off a handoff it never told us about (the successor failed early): harmless.
        rt.logger.warn({ handoff_id: idToString(id), reason }, 'Abort for a handoff this process is not part of; ignored');
        return;
      }
      checkId(id, rt.currentId);
    }
    const phase = rt.phase;
    rt.logger.warn({ type: msg.type, reason, phase }, 'handoff called off');
    switch (phase) {
      case 'awaiting-begin':
      case 'beginning':
      case 'unhealthy':
        if (msg.type === 'ResumeAfterAbort') unexpected(msg, phase);
        rt.events.emit('aborted', { reason, phase });
        rt.task(this.successor.rollback());
        return;
      case 'serving':
        if (rt.asSuccessor && msg.type === 'Abort') {
          // Rolled back after Ready (revisions, deadline, operator): drain, close, let the lock go.
          rt.events.emit('aborted', { reason, phase });
          rt.task(this.successor.rollback());
          return;
        }
        unexpected(msg, phase);
        return;
      case 'draining':
      case 'drained':
      case 'seal-failed':
        rt.events.emit('aborted', { reason, phase });
        rt.task(this.incumbent.undoHeld());
        return;
      case 'sealing':
        rt.abortPending = reason;
        return;
      case 'sealed':
        rt.events.emit('aborted', { reason, phase });
        rt.task(this.incumbent.resumeReleased(RESUME_LOCK_WINDOW_MS, 50));
        return;
      case 'resuming':
      case 'committing':
      case 'stopping':
      case 'exiting':
        rt.logger.debug({ phase }, `${msg.type} ignored`);
        return;
      default:
        unexpected(msg, phase);
    }
  }
}
