/**
 * One handoff: the transition table and its handlers.
 *
 * Inputs (handoff-input.ts) come from the two parties' channels and processes (`successor_*`,
 * `incumbent_*`), from timers, and from the operator. `TABLE[phase][input.kind]` names the handler,
 * which receives that kind of input; a message input missing from the row is a protocol violation
 * by its sender, any other missing input is ignored. Handlers return nothing: they act and call
 * `enter(next)`. The machine's state is its own: S feeds it inputs and reads its phase.
 */

import { ProtocolError, parseReason, type ErrorKind } from '../protocol/errors.js';
import { idToString, type Abort, type HandoffId, type Hello, type Ready, type SealComplete, type SealFailed, type SealProgress } from '../protocol/messages.js';
import { DRAIN_SLACK_MS } from '../shared/constants.js';
import type { ServiceChild } from './child.js';
import type { Timer } from './clock.js';
import { MESSAGE_INPUTS, type HandoffInput, type InputKind, type Party } from './handoff-input.js';
import type { HandoffEvent, HandoffPhase, HandoffRecord } from './types.js';

/** How long an aborted successor that was not sent Begin has to exit before it is killed. */
export const ABORT_EXIT_WAIT_MS = 1_000;

export type ActivePhase = 'hello' | 'drain' | 'seal' | 'begin' | 'commit' | 'rollback';

/** A phase's row: for each input it handles, a handler that receives that input. */
type Row = { readonly [K in InputKind]?: (h: Handoff, e: HandoffInput<K>) => void };

/** What can go wrong in any phase before Commit, and what it leads to. */
const BEFORE_COMMIT: Row = {
  successor_exit: (h) => h.abort(h.successorFailure()),
  successor_abort: (h, e) => h.abort(peerReason(e.msg, 'successor_failed')),
  successor_violation: (h, e) => h.abort(e.err),
  incumbent_abort: (h, e) => h.abort(peerReason(e.msg, 'incumbent_failed')),
  timeout: (h, e) => h.abort(e.err),
  stop: (h, e) => h.abort(e.err),
  operator_abort: (h, e) => h.abort(new ProtocolError('operator_abort', e.reason)),
  incumbent_exit: (h) => h.rollForward(h.incumbentFailure()),
  incumbent_violation: (h, e) => h.rollForward(e.err),
};

export const TABLE: Readonly<Record<ActivePhase, Row>> = {
  hello: { ...BEFORE_COMMIT, successor_hello: (h, e) => h.acceptSuccessor(e.msg) },
  drain: { ...BEFORE_COMMIT, incumbent_drained: (h) => h.requestSeal() },
  seal: {
    ...BEFORE_COMMIT,
    incumbent_seal_progress: (h, e) => h.relayProgress(e.msg),
    incumbent_sealed: (h, e) => h.beginSuccessor(e.msg),
    incumbent_seal_failed: (h, e) => h.abort(sealFailure(e.msg)),
  },
  begin: {
    ...BEFORE_COMMIT,
    incumbent_exit: (h) => h.noteIncumbentGone(),
    incumbent_violation: (h, e) => h.noteIncumbentGone(e.err),
    successor_ready: (h, e) => h.checkReady(e.msg),
  },
  commit: { incumbent_exit: (h) => h.finish('committed'), successor_exit: (h) => h.successorLostAfterCommit(), successor_violation: (h, e) => h.successorBroke(e.err) },
  rollback: { incumbent_exit: (h) => h.noteIncumbentGone() },
};

/** Runs `row`'s handler of `e`; false when the row has none. */
function runRow<K extends InputKind>(row: Row, h: Handoff, e: HandoffInput<K>): boolean {
  const handler = row[e.kind];
  if (!handler) return false;
  handler(h, e);
  return true;
}

function peerReason(msg: Abort, fallback: ErrorKind): ProtocolError {
  const { kind, detail } = parseReason(msg.reason);
  return new ProtocolError(kind ?? fallback, kind ? detail : `peer aborted: ${detail}`);
}

function sealFailure(msg: SealFailed): ProtocolError {
  return new ProtocolError('seal_failed', `${msg.error} (partial state: ${msg.partial_state})`);
}

function sameRevisions(a: readonly bigint[], b: readonly bigint[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

/** What the handoff needs from the supervisor: side effects it does not own. */
export interface HandoffContext {
  readonly deadlineMs: number;
  readonly drainGraceMs: number;
  readonly helloTimeoutMs: number;
  readonly exitTimeoutMs: number;
  readonly killAfterMs: number;
  /** Wraps `pid`s check, role check and version negotiation; throws a ProtocolError to refuse. */
  ackSuccessor(successor: ServiceChild, hello: Hello, id: HandoffId): void;
  lockHeld(): boolean;
  /** A timer that counts only time S ran and fires after pending I/O (clock.ts). */
  timer(ms: number, fn: () => void): Timer;
  clearLock(holderPid: number): void;
  emit(e: HandoffEvent): void;
  journal(phase: HandoffPhase): void;
  log(level: 'info' | 'warn' | 'error' | 'debug', msg: string, extra?: Record<string, unknown>): void;
  done(h: Handoff, record: HandoffRecord): void;
}

export class Handoff {
  readonly idStr: string;
  readonly startedAt = new Date();
  private current: ActivePhase | 'done' = 'hello';
  private readonly t0 = performance.now();
  private phaseT0 = this.t0;
  private readonly phases: Array<{ phase: HandoffPhase; ms: number }> = [];
  private phaseTimer: Timer | undefined;
  private deadlineTimer: Timer | undefined;
  /** What the incumbent sealed; undefined until SealComplete. */
  private sealed: SealComplete | undefined;
  /** Which process holds the data-dir lock, as far as S knows. */
  private lockHolder: Party | 'none' = 'incumbent';
  private incumbentPrepared = false;
  private beginSent = false;
  private rolledForward = false;
  private revisionsChecked = false;
  /** The party S killed for silence, so that its exit is reported as such. */
  private silenced: Party | undefined;
  private outcomeReason: ProtocolError | undefined;
  /** The successor died of its own accord (not killed by S's rollback): its exit and stderr go in the record. */
  private successorDied = false;

  constructor(
    readonly id: HandoffId,
    readonly incumbent: ServiceChild | null,
    readonly successor: ServiceChild,
    readonly command: string[],
    private readonly ctx: HandoffContext,
  ) {
    this.idStr = idToString(id);
    this.phaseTimer = ctx.timer(ctx.helloTimeoutMs, () => this.dispatch({ kind: 'timeout', err: new ProtocolError('deadline_exceeded', `no Hello from the successor within ${ctx.helloTimeoutMs} ms`) }));
    if (incumbent === null) this.lockHolder = 'none';
  }

  get phase(): ActivePhase | 'done' {
    return this.current;
  }

  /** Which party of this handoff `child` is, if either. */
  partyOf(child: ServiceChild): Party | undefined {
    if (child === this.successor) return 'successor';
    if (child === this.incumbent) return 'incumbent';
    return undefined;
  }

  private get incumbentAlive(): boolean {
    return this.incumbent !== null && this.incumbent.alive;
  }

  /** Feeds one input through the table. */
  dispatch(e: HandoffInput): void {
    if (this.current === 'done') return;
    if (runRow(TABLE[this.current], this, e)) return;
    const party = MESSAGE_INPUTS.get(e.kind);
    if (party) {
      const msgType = 'msg' in e ? e.msg.type : e.kind;
      this.dispatch({ kind: `${party}_violation`, err: new ProtocolError('unexpected_message', `${msgType} in phase ${this.current}`) });
      return;
    }
    this.ctx.log('debug', 'input ignored in this phase', { input: e.kind });
  }

  /** S killed `party` for silence: its exit is that party's `heartbeat_timeout`, not a crash. */
  killSilent(party: Party): void {
    this.silenced ??= party;
    (party === 'successor' ? this.successor : this.incumbent)?.kill('SIGKILL');
  }

  private enter(next: ActivePhase | 'done'): void {
    const now = performance.now();
    const prev = this.current;
    const ms = Math.round(now - this.phaseT0);
    if (prev !== 'done') this.phases.push({ phase: prev, ms });
    this.current = next;
    this.phaseT0 = now;
    if (next !== 'done') {
      this.ctx.journal(next);
      this.ctx.log('info', `phase ${next}`, { previous: prev, previous_ms: ms });
      this.ctx.emit(this.event(next, { previous: { phase: prev as HandoffPhase, ms } }));
    }
  }

  event(phase: HandoffPhase, extra: Partial<HandoffEvent> = {}): HandoffEvent {
    return { handoff_id: this.idStr, phase, at: new Date().toISOString(), elapsed_ms: Math.round(performance.now() - this.t0), ...extra };
  }

  private setPhaseTimer(ms: number, err: ProtocolError): void {
    this.phaseTimer?.cancel();
    this.phaseTimer = this.ctx.timer(ms, () => this.dispatch({ kind: 'timeout', err }));
  }

  private clearTimers(): void {
    this.phaseTimer?.cancel();
    this.deadlineTimer?.cancel();
  }

  // --- handlers (the table's; nothing else calls them) ----------------------------------------

  acceptSuccessor(hello: Hello): void {
    try {
      this.ctx.ackSuccessor(this.successor, hello, this.id);
    } catch (err) {
      this.abort(err instanceof ProtocolError ? err : new ProtocolError('successor_failed', 'bad Hello'));
      return;
    }
    this.deadlineTimer = this.ctx.timer(this.ctx.deadlineMs, () => this.dispatch({ kind: 'timeout', err: new ProtocolError('deadline_exceeded', `handoff not ready within ${this.ctx.deadlineMs} ms`) }));
    if (!this.incumbentAlive) {
      // The incumbent died while the successor was starting: nothing to drain or seal.
      this.sendBegin();
      return;
    }
    this.incumbent!.channel.handoffId = this.id;
    this.incumbent!.channel.send({ type: 'PrepareHandoff', handoff_id: this.id, successor_pid: this.successor.pid, deadline_ms: BigInt(this.ctx.deadlineMs), drain_grace_ms: BigInt(this.ctx.drainGraceMs) });
    this.incumbentPrepared = true;
    this.setPhaseTimer(this.ctx.drainGraceMs + DRAIN_SLACK_MS, new ProtocolError('deadline_exceeded', `no Drained within the drain grace of ${this.ctx.drainGraceMs} ms (+1 s)`));
    this.enter('drain');
  }

  requestSeal(): void {
    this.phaseTimer?.cancel();
    this.incumbent!.channel.send({ type: 'SealRequest', handoff_id: this.id });
    this.enter('seal');
  }

  relayProgress(m: SealProgress): void {
    this.ctx.emit(this.event('seal', { progress: { shards_sealed: m.shards_sealed, shards_total: m.shards_total, last_revision: m.last_revision.toString() } }));
  }

  beginSuccessor(sealed: SealComplete): void {
    this.sealed = sealed;
    this.lockHolder = 'none';
    if (this.ctx.lockHeld()) {
      this.abort(new ProtocolError('lock_held', 'the incumbent reported SealComplete but the data-dir lock is still held'));
      return;
    }
    this.sendBegin();
  }

  private sendBegin(): void {
    this.successor.channel.send({ type: 'Begin', handoff_id: this.id });
    this.beginSent = true;
    this.lockHolder = 'successor';
    this.enter('begin');
  }

  checkReady(r: Ready): void {
    if (!r.healthz_ok) {
      this.abort(new ProtocolError('successor_unhealthy', 'the successor reported healthz_ok: false'));
      return;
    }
    if (this.sealed) {
      if (!sameRevisions(r.advertised_revision_per_shard, this.sealed.last_revision_per_shard)) {
        const sealed = this.sealed.last_revision_per_shard.join(',');
        this.abort(new ProtocolError('revision_mismatch', `sealed [${sealed}], successor advertised [${r.advertised_revision_per_shard.join(',')}]`));
        return;
      }
      this.revisionsChecked = true;
    } else {
      this.ctx.log('warn', 'revision check skipped: the incumbent died before sealing', { advertised: r.advertised_revision_per_shard.map(String) });
    }
    this.clearTimers();
    // Commit first: the journal's fsyncs (in enter) are not on the incumbent's critical path.
    if (this.incumbentAlive) this.incumbent!.channel.send({ type: 'Commit', handoff_id: this.id });
    this.enter('commit');
    if (!this.incumbentAlive) {
      this.finish('committed');
      return;
    }
    const incumbent = this.incumbent!;
    void incumbent.retire(this.ctx.exitTimeoutMs, this.ctx.killAfterMs, (signal) => this.ctx.log('warn', `incumbent did not exit after Commit: ${signal}`, { child_pid: incumbent.pid }));
  }

  /** The incumbent died (or broke the protocol) before Begin: kill and reap it, clear its lock, go on with the successor. */
  rollForward(reason: ProtocolError): void {
    // The incumbent's violation and its exit can both arrive: roll forward once.
    if (this.rolledForward) return;
    this.rolledForward = true;
    this.outcomeReason ??= reason;
    this.ctx.log('warn', 'incumbent lost before Begin: rolling forward', { reason: reason.toReason() });
    this.phaseTimer?.cancel();
    const incumbent = this.incumbent!;
    // A party of the handoff since PrepareHandoff: if it can still read, it learns why it is killed.
    if (this.incumbentPrepared) incumbent.channel.fail(reason);
    void incumbent.killAndReap().then(() => {
      if (this.current === 'done') return;
      if (this.lockHolder === 'incumbent') {
        this.ctx.clearLock(incumbent.pid);
        this.lockHolder = 'none';
      }
      // In `hello`, Begin follows the successor's Hello (acceptSuccessor sees the incumbent gone).
      if (this.current !== 'hello' && !this.beginSent) this.sendBegin();
    });
  }

  /** The incumbent is gone after Begin (the successor already has everything it needs): recorded, the handoff goes on. */
  noteIncumbentGone(violation?: ProtocolError): void {
    this.ctx.log('warn', 'incumbent gone during the handoff', { child_pid: this.incumbent?.pid, exit: this.incumbent?.describeExit(), ...(violation ? { reason: violation.toReason() } : {}) });
    this.outcomeReason ??= violation ?? this.incumbentFailure();
    // It broke the protocol (it did not die): it learns why before it is killed.
    if (violation) this.incumbent?.channel.fail(violation);
    if (this.incumbent?.alive) void this.incumbent.killAndReap();
  }

  /**
   * Past Commit the successor broke the protocol: S cannot drive it as the incumbent (its channel may
   * be closed already), so it is told (Abort, if the channel is still open) and killed; its exit ends
   * the handoff (successorLostAfterCommit) and a fresh incumbent starts at once.
   */
  successorBroke(violation: ProtocolError): void {
    this.ctx.log('error', 'successor broke the protocol after Commit: killing it', { child_pid: this.successor.pid, reason: violation.toReason() });
    this.outcomeReason ??= violation;
    this.successor.channel.fail(violation);
    this.successor.kill('SIGKILL');
  }

  /**
   * The successor died after Commit: the handoff did commit (the incumbent is retiring and will not
   * serve again), so it ends now, and the supervisor starts a fresh incumbent at once instead of
   * after the incumbent's exit.
   */
  successorLostAfterCommit(): void {
    this.ctx.log('error', 'successor died after Commit', { child_pid: this.successor.pid, exit: this.successor.describeExit() });
    this.outcomeReason ??= this.successorFailure();
    this.finish('committed');
  }

  successorFailure(): ProtocolError {
    if (this.silenced === 'successor') return new ProtocolError('heartbeat_timeout', 'the successor went silent and was killed');
    return new ProtocolError('successor_failed', `successor ${this.successor.describeExit()} in phase ${this.current}`);
  }

  incumbentFailure(): ProtocolError {
    if (this.silenced === 'incumbent') return new ProtocolError('heartbeat_timeout', 'the incumbent went silent and was killed');
    return new ProtocolError('incumbent_failed', `incumbent ${this.incumbent?.describeExit() ?? 'absent'} in phase ${this.current}`);
  }

  /** Rollback: abort the successor, and give the incumbent back its role (Abort before seal, ResumeAfterAbort after). */
  abort(reason: ProtocolError): void {
    if (this.current === 'rollback' || this.current === 'commit' || this.current === 'done') return;
    this.outcomeReason = reason;
    this.successorDied = !this.successor.alive;
    this.clearTimers();
    this.ctx.log('warn', 'aborting handoff', { reason: reason.toReason() });
    const afterBegin = this.beginSent;
    const incumbentSealed = this.sealed !== undefined || afterBegin;
    this.enter('rollback');
    this.successor.channel.send({ type: 'Abort', handoff_id: this.id, reason: reason.toReason() });
    void (async () => {
      // The successor gets a moment to leave on its own, then is killed; either way it is reaped
      // before the incumbent resumes. After Begin it may have accepted: it drains like an
      // incumbent, so it gets the drain grace.
      const graceMs = afterBegin ? this.ctx.drainGraceMs + DRAIN_SLACK_MS : Math.min(ABORT_EXIT_WAIT_MS, this.ctx.exitTimeoutMs);
      await this.successor.retire(graceMs, this.ctx.killAfterMs);
      if (this.lockHolder === 'successor') {
        this.ctx.clearLock(this.successor.pid);
        this.lockHolder = 'none';
      }
      if (this.incumbentAlive) {
        const incumbent = this.incumbent!;
        if (incumbentSealed) {
          incumbent.channel.send({ type: 'ResumeAfterAbort', handoff_id: this.id });
          this.lockHolder = 'incumbent';
        } else if (this.incumbentPrepared) incumbent.channel.send({ type: 'Abort', handoff_id: this.id, reason: reason.toReason() });
        incumbent.channel.handoffId = undefined;
      }
      this.finish('aborted');
    })();
  }

  finish(outcome: 'committed' | 'aborted'): void {
    if (this.current === 'done') return;
    // Dead before S told it to go (an Abort or a kill of S's own comes after rollback began).
    this.successorDied ||= !this.successor.alive && this.current !== 'rollback';
    this.clearTimers();
    this.enter('done');
    const total = Math.round(performance.now() - this.t0);
    const r = this.outcomeReason;
    const record: HandoffRecord = {
      handoff_id: this.idStr,
      outcome,
      started_at: this.startedAt.toISOString(),
      ended_at: new Date().toISOString(),
      incumbent_pid: this.incumbent?.pid ?? null,
      successor_pid: this.successor.pid || null,
      command: this.command,
      phases: this.phases,
      total_ms: total,
      rolled_forward: this.rolledForward,
      revisions_checked: this.revisionsChecked,
      ...(r ? { reason: r.toReason(), reason_kind: r.kind } : {}),
      ...(this.successor.buildId !== undefined ? { build_id: this.successor.buildId } : {}),
      // A successor that died on the way: how, and what it said last (why it could not start).
      ...(this.successorDied ? { successor_exit: this.successor.describeExit(), successor_stderr: this.successor.stderrTail.get() } : {}),
    };
    this.ctx.emit(this.event('done', { outcome, ...(r ? { reason: r.toReason() } : {}) }));
    this.ctx.done(this, record);
  }
}
