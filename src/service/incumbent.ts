/**
 * The incumbent's side of a handoff: PrepareHandoff (close accept, drain), SealRequest (seal, let
 * the lock go), Commit (close, exit), and the two ways back to serving when a handoff is called
 * off: before the lock was let go (undoHeld) and after (resumeReleased, which must retake it).
 * Which of these each phase does on each event is the table's (machine.ts).
 */

import { abortReason, idToString, type HandoffId, type MessageOf } from '../protocol/index.js';
import type { Fire, StateOf } from './machine.js';
import type { Runtime } from './runtime.js';
import { SealError, type SealProgressInfo, type SealResult } from './types.js';
import { failChannel, firstLine, toU64List, unexpected, wireText } from './wire.js';
import { TIMER_MAX_MS } from '../shared/constants.js';

/** What a stateless incumbent seals: no shards, and 32 zero bytes (the protocol wants a fingerprint). */
const STATELESS_SEAL = { revisions: [], fingerprint: new Uint8Array(32) } as const;

/** How long an incumbent aborted after SealComplete tries to retake the lock S just saw it release. */
const RESUME_LOCK_WINDOW_MS = 2_000;

/** Holding the lock, not serving: a call-off means serve again, the lock never moved. */
type Holding = StateOf<'draining' | 'drained' | 'seal-failed' | 'sealing'>;

export class IncumbentFlow {
  constructor(
    private readonly rt: Runtime,
    private readonly fire: Fire,
  ) {}

  prepare(msg: MessageOf<'PrepareHandoff'>): void {
    const rt = this.rt;
    const draining = { phase: 'draining', handoff: msg.handoff_id } as const;
    rt.channel!.handoffId = msg.handoff_id;
    const grace = Number(msg.drain_grace_ms > 2n ** 31n - 1n ? 2n ** 31n - 1n : msg.drain_grace_ms);
    rt.enter(draining);
    this.armDeadline(msg.deadline_ms);
    rt.task(this.drain(draining, grace));
    rt.events.emit('prepare', { handoffId: idToString(msg.handoff_id), successorPid: msg.successor_pid, drainGraceMs: grace });
  }

  /** A PrepareHandoff while resuming: S cannot know when a resume is over (there is no message for it), so take it right after. */
  defer(s: StateOf<'resuming'>, msg: MessageOf<'PrepareHandoff'>): void {
    if (s.deferred) unexpected(msg, s.phase);
    this.rt.enter({ ...s, deferred: msg });
  }

  private async drain(s: StateOf<'draining'>, graceMs: number): Promise<void> {
    const rt = this.rt;
    rt.logger.info({ handoff_id: idToString(s.handoff), drain_grace_ms: graceMs }, 'preparing: accept closed, draining');
    await rt.accept.stop();
    // Called off while accept was closing: draining now would close connections of a serving process.
    if (rt.state !== s) return;
    const left = await rt.accept.drain(graceMs);
    if (rt.state !== s) return;
    rt.enter({ phase: 'drained', handoff: s.handoff });
    rt.channel!.send({ type: 'Drained', open_conns_remaining: Math.min(left, 0xffffffff), accept_closed: true });
    rt.logger.info({ open_conns_remaining: left }, 'drained');
    rt.events.emit('drained', { openConnsRemaining: left });
  }

  async seal(id: HandoffId): Promise<void> {
    const rt = this.rt;
    const channel = rt.channel!;
    rt.enter({ phase: 'sealing', handoff: id, abort: undefined });
    rt.events.emit('seal', { handoffId: idToString(id) });
    rt.logger.info({ handoff_id: idToString(id) }, 'sealing');
    let result: { revisions: bigint[]; fingerprint: Uint8Array } | undefined;
    let failure: unknown;
    const progress = (p: SealProgressInfo): void => {
      if (rt.phase !== 'sealing') return;
      channel.send({
        type: 'SealProgress',
        shards_sealed: p.shardsSealed >>> 0,
        shards_total: p.shardsTotal >>> 0,
        last_revision: toU64List([p.lastRevision], 'lastRevision')[0]!,
      });
    };
    try {
      const r: SealResult = rt.opts.seal ? await rt.opts.seal(progress) : STATELESS_SEAL;
      const revisions = toU64List(r.revisions, 'seal().revisions');
      if (!(r.fingerprint instanceof Uint8Array) || r.fingerprint.length !== 32) throw new TypeError('seal().fingerprint must be 32 bytes');
      result = { revisions, fingerprint: r.fingerprint };
    } catch (err) {
      failure = err;
    }
    const s = rt.state;
    // A stop or an exit came meanwhile: it owns the ending.
    if (s.phase !== 'sealing') return;
    const off = this.calledOff(s);
    if (off) {
      // Keep the lock and serve again. A silent S is told why, on the channel it reads when it runs again.
      if (off.silent) channel.send({ type: 'Abort', handoff_id: id, reason: off.reason });
      rt.events.emit('aborted', { reason: off.reason, phase: s.phase });
      return this.undoHeld(s);
    }
    if (!result) {
      const error = wireText(firstLine(failure));
      const partial = failure instanceof SealError ? wireText(failure.partialState) : 'unknown';
      rt.enter({ phase: 'seal-failed', handoff: id });
      channel.send({ type: 'SealFailed', handoff_id: id, error, partial_state: partial });
      rt.logger.error({ err: error, partial_state: partial }, 'seal failed; keeping the lock');
      rt.events.emit('seal-failed', { error });
      return;
    }
    await rt.releaseLock();
    const sealComplete = { type: 'SealComplete', handoff_id: id, last_revision_per_shard: result.revisions, data_dir_fingerprint: result.fingerprint } as const;
    const after = rt.state;
    if (after.phase !== 'sealing') {
      // A stop came while the lock was let go: the stop owns the ending, and S learns the lock is free.
      channel.send(sealComplete);
      return;
    }
    const late = this.calledOff(after);
    if (late) {
      rt.events.emit('aborted', { reason: late.reason, phase: after.phase });
      const window = late.bySupervisor ? RESUME_LOCK_WINDOW_MS : 2 * rt.contract.heartbeatTimeoutMs;
      return this.resumeReleased(after, window, 50, late.silent ? late.reason : undefined);
    }
    rt.enter({ phase: 'sealed', handoff: id });
    channel.send(sealComplete);
    rt.logger.info({ revisions: result.revisions.map(String) }, rt.lock ? 'sealed; lock released' : 'sealed');
    await rt.flushChannel();
    if (rt.phase === 'sealed') rt.events.emit('sealed', { revisions: result.revisions });
  }

  /** An Abort while the seal hook runs: acted on once it returns. */
  abortSealing(s: StateOf<'sealing'>, reason: string): void {
    this.rt.enter({ ...s, abort: reason });
  }

  /** Why the handoff being sealed is off, if it is: S's Abort, S silent past the timeout, or S gone. */
  private calledOff(s: StateOf<'sealing'>): { reason: string; silent: boolean; bySupervisor: boolean } | undefined {
    const rt = this.rt;
    if (s.abort !== undefined) return { reason: s.abort, silent: false, bySupervisor: true };
    if (rt.supervisor === 'silent') return { reason: rt.silenceReason(), silent: true, bySupervisor: false };
    if (rt.supervisor === 'lost') return { reason: 'supervisor lost', silent: false, bySupervisor: false };
    return undefined;
  }

  async commit(): Promise<void> {
    const rt = this.rt;
    rt.enter({ phase: 'committing', handoff: rt.inFlight });
    rt.logger.info({ handoff_id: rt.handoffId }, 'committed: closing and exiting');
    rt.events.emit('committed');
    await rt.runClose();
    await rt.releaseLock();
    return rt.exit(0);
  }

  /**
   * The handoff was called off here (S fell silent) after sealing, but S read the successor's Ready
   * first: the successor holds the lock (or, stateless, has none to hold) and serves, so S's Commit
   * is a commit for us too.
   */
  successorMayServe(): boolean {
    return this.rt.stateless || (this.rt.lock !== undefined && !this.rt.lock.held);
  }

  commitCalledOff(msg: MessageOf<'Commit'>): void {
    this.rt.logger.info({ handoff_id: idToString(msg.handoff_id) }, 'Commit for a handoff called off here while the successor may serve: committing');
    this.rt.task(this.commit());
  }

  ignoreCrossed(msg: MessageOf<'SealRequest'>): void {
    this.rt.logger.info({ handoff_id: idToString(msg.handoff_id) }, 'SealRequest for a handoff already called off here; ignored');
  }

  serveAgain(s: Holding, reason: string): void {
    this.rt.events.emit('aborted', { reason, phase: s.phase });
    this.rt.task(this.undoHeld(s));
  }

  /** S is silent while we hold the lock, not serving: serve again, and tell S why (it reads it when it runs again). */
  serveAgainSilent(s: Holding): void {
    const reason = this.rt.silenceReason();
    this.rt.channel!.send({ type: 'Abort', handoff_id: s.handoff, reason });
    this.serveAgain(s, reason);
  }

  /** Our own deadline: S neither sealed nor called the handoff off well past its deadline. */
  deadlinePassed(s: StateOf<'draining' | 'drained'>): void {
    const rt = this.rt;
    const reason = abortReason('deadline_exceeded', 'the incumbent waited past the handoff deadline and serves again');
    rt.logger.error('handoff deadline passed while drained: serving again');
    rt.channel!.send({ type: 'Abort', handoff_id: s.handoff, reason });
    this.serveAgain(s, reason);
  }

  /** S called it off after SealComplete: retake the lock it just saw us release. */
  retakeAfterAbort(s: StateOf<'sealed'>, reason: string): void {
    this.rt.events.emit('aborted', { reason, phase: s.phase });
    this.rt.task(this.resumeReleased(s, RESUME_LOCK_WINDOW_MS, 50));
  }

  /** The lock is let go and S is silent: retake it (Abort to S then) or, when the successor has it, leave. */
  retakeSilent(s: StateOf<'sealed'>): void {
    const reason = this.rt.silenceReason();
    this.rt.events.emit('aborted', { reason, phase: s.phase });
    this.rt.task(this.resumeReleased(s, 2 * this.rt.contract.heartbeatTimeoutMs, 250, reason));
  }

  retakeWithoutSupervisor(s: StateOf<'sealed'>): void {
    this.rt.events.emit('aborted', { reason: 'supervisor lost', phase: s.phase });
    this.rt.task(this.resumeReleased(s, 2 * this.rt.contract.heartbeatTimeoutMs, 250));
  }

  /** Called off while we still hold the lock (before sealing, or after a failed seal): serve again. */
  private async undoHeld(from: Holding): Promise<void> {
    const rt = this.rt;
    rt.enter({ phase: 'resuming', handoff: from.handoff, deferred: undefined });
    rt.accept.undrain();
    // The seal hook ran: the service reopens its writer state.
    if (from.phase === 'sealing' || from.phase === 'seal-failed') {
      try {
        await rt.opts.resume?.();
      } catch (err) {
        return rt.fatal('resume failed', err);
      }
    }
    // A stop (or an exit) came meanwhile: it owns the ending; serving again would undo it.
    if (!this.stillResuming()) return;
    await this.reopenAccept();
    const s = this.stillResuming();
    if (s) this.endHandoff(s);
  }

  /** Still resuming, or else a stop or an exit overtook the resume in flight: it owns the ending now. */
  private stillResuming(): StateOf<'resuming'> | undefined {
    const s = this.rt.state;
    if (s.phase === 'resuming') return s;
    this.rt.logger.info({ phase: s.phase }, 'a stop came while resuming; not serving again');
    return undefined;
  }

  /**
   * After SealComplete: retake the lock (bounded), resume, accept again; exit when it cannot be
   * had. `tellSupervisor`: an Abort reason to send S once the lock is ours again (the handoff was
   * called off here, S does not know it yet).
   */
  private async resumeReleased(from: StateOf<'sealed' | 'sealing'>, windowMs: number, pollMs: number, tellSupervisor?: string): Promise<void> {
    const rt = this.rt;
    const id = from.handoff;
    rt.enter({ phase: 'resuming', handoff: id, deferred: undefined });
    if (rt.lock) {
      let ok: boolean;
      try {
        ok = await rt.lock.acquireWithin(windowMs, pollMs);
      } catch (err) {
        return rt.fatal('retaking the data-dir lock failed', err);
      }
      if (!this.stillResuming()) {
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
    if (tellSupervisor !== undefined) rt.channel?.send({ type: 'Abort', handoff_id: id, reason: tellSupervisor });
    try {
      await rt.opts.resume?.();
    } catch (err) {
      return rt.fatal('resume failed', err);
    }
    if (!this.stillResuming()) return;
    rt.accept.undrain();
    await this.reopenAccept();
    const s = this.stillResuming();
    if (s) this.endHandoff(s);
  }

  private async reopenAccept(): Promise<void> {
    try {
      await this.rt.accept.start();
    } catch (err) {
      return this.rt.fatal('cannot reopen accept', err);
    }
  }

  private endHandoff(s: StateOf<'resuming'>): void {
    const rt = this.rt;
    rt.lastEnded = s.handoff;
    if (rt.channel) rt.channel.handoffId = undefined;
    rt.enter({ phase: 'serving', successorOf: undefined });
    rt.logger.info('serving again');
    rt.events.emit('resumed');
    if (s.deferred && rt.channel && !rt.channel.closed) {
      try {
        this.fire({ kind: 'PrepareHandoff', msg: s.deferred });
      } catch (err) {
        failChannel(rt.channel, err);
      }
    }
  }

  /** The incumbent's own deadline: if S neither seals nor aborts well past the handoff deadline, stop waiting. */
  private armDeadline(deadlineMs: bigint): void {
    const rt = this.rt;
    rt.clearDeadline();
    // A relative budget; a value that can only be a Unix time is taken as one.
    let ms = Number(deadlineMs);
    if (ms > 1e12) ms -= Date.now();
    ms = Math.min(Math.max(ms, 0) + rt.contract.heartbeatTimeoutMs, TIMER_MAX_MS);
    rt.deadlineTimer = setTimeout(() => {
      rt.deadlineTimer = undefined;
      this.fire({ kind: 'deadline' });
    }, ms);
    rt.deadlineTimer.unref();
  }
}
