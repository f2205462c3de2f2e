/**
 * One handoff: the transition table and its handlers.
 *
 * Events come from the two peers' channels and processes (prefixed `n_` for the successor, `o_` for
 * the incumbent), from timers, and from the operator. `TABLE[phase][event.kind]` names the handler;
 * a message event missing from the row is a protocol violation by its sender, any other missing
 * event is ignored. Handlers return nothing: they act and call `enter(next)`.
 */

import { ProtocolError, parseReason, type ErrorKind } from '../protocol/errors.js';
import { idToString, type Message, type Abort, type Drained, type HandoffId, type Hello, type Ready, type SealComplete, type SealFailed, type SealProgress } from '../protocol/messages.js';
import { DRAIN_SLACK_MS } from '../shared/constants.js';
import type { ServiceChild } from './child.js';
import type { Timer } from './clock.js';
import type { HandoffEvent, HandoffPhase, HandoffRecord } from './types.js';

/** How long an aborted successor that was not sent Begin has to exit before it is killed. */
export const ABORT_EXIT_WAIT_MS = 1_000;

export type HandoffEv =
  | { kind: 'n_hello'; msg: Hello }
  | { kind: 'o_drained'; msg: Drained }
  | { kind: 'o_seal_progress'; msg: SealProgress }
  | { kind: 'o_sealed'; msg: SealComplete }
  | { kind: 'o_seal_failed'; msg: SealFailed }
  | { kind: 'n_ready'; msg: Ready }
  | { kind: 'n_abort' | 'o_abort'; msg: Abort }
  | { kind: 'n_exit' | 'o_exit' }
  | { kind: 'n_violation' | 'o_violation'; err: ProtocolError }
  | { kind: 'timeout' | 'stop'; err: ProtocolError }
  | { kind: 'operator_abort'; reason: string };

export type ActivePhase = 'hello' | 'drain' | 'seal' | 'begin' | 'commit' | 'rollback';
type Handler = (h: Handoff, e: HandoffEv) => void;

/** Message events: absent from a phase's row, they are the sender's protocol violation. */
const MESSAGE_EVENTS: ReadonlySet<HandoffEv['kind']> = new Set(['n_hello', 'o_drained', 'o_seal_progress', 'o_sealed', 'o_seal_failed', 'n_ready']);

/** What can go wrong in any phase before Commit, and what it leads to. */
const BEFORE_COMMIT: Partial<Record<HandoffEv['kind'], Handler>> = {
  n_exit: (h) => h.abort(h.successorFailure()),
  n_abort: (h, e) => h.abort(peerReason(e, 'successor_failed')),
  n_violation: (h, e) => h.abort(violation(e)),
  o_abort: (h, e) => h.abort(peerReason(e, 'incumbent_failed')),
  timeout: (h, e) => h.abort(violation(e)),
  stop: (h, e) => h.abort(violation(e)),
  operator_abort: (h, e) => h.abort(new ProtocolError('operator_abort', e.kind === 'operator_abort' ? e.reason : 'aborted')),
  o_exit: (h) => h.rollForward(h.incumbentFailure()),
  o_violation: (h, e) => h.rollForward(violation(e)),
};

export const TABLE: Readonly<Record<ActivePhase, Partial<Record<HandoffEv['kind'], Handler>>>> = {
  hello: { ...BEFORE_COMMIT, n_hello: (h, e) => h.acceptSuccessor(e) },
  drain: { ...BEFORE_COMMIT, o_drained: (h) => h.requestSeal() },
  seal: { ...BEFORE_COMMIT, o_seal_progress: (h, e) => h.relayProgress(e), o_sealed: (h, e) => h.beginSuccessor(e), o_seal_failed: (h, e) => h.abort(sealFailure(e)) },
  begin: { ...BEFORE_COMMIT, o_exit: (h) => h.noteIncumbentGone(), o_violation: (h, e) => h.noteIncumbentGone(violation(e)), n_ready: (h, e) => h.checkReady(e) },
  commit: { o_exit: (h) => h.finish('committed'), n_exit: (h) => h.successorLostAfterCommit(), n_violation: (h, e) => h.successorBroke(violation(e)) },
  rollback: { o_exit: (h) => h.noteIncumbentGone() },
};

function violation(e: HandoffEv): ProtocolError {
  return 'err' in e ? e.err : new ProtocolError('unexpected_message', e.kind);
}

function peerReason(e: HandoffEv, fallback: ErrorKind): ProtocolError {
  const reason = 'msg' in e && e.msg.type === 'Abort' ? e.msg.reason : '';
  const { kind, detail } = parseReason(reason);
  return new ProtocolError(kind ?? fallback, kind ? detail : `peer aborted: ${detail}`);
}

function sealFailure(e: HandoffEv): ProtocolError {
  const err = 'msg' in e && e.msg.type === 'SealFailed' ? e.msg : undefined;
  return new ProtocolError('seal_failed', err ? `${err.error} (partial state: ${err.partial_state})` : 'seal failed');
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
  ackSuccessor(n: ServiceChild, hello: Hello, id: HandoffId): void;
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
  phase: ActivePhase | 'done' = 'hello';
  readonly idStr: string;
  readonly startedAt = new Date();
  private readonly t0 = performance.now();
  private phaseT0 = this.t0;
  private readonly phases: Array<{ phase: HandoffPhase; ms: number }> = [];
  private phaseTimer: Timer | undefined;
  private deadlineTimer: Timer | undefined;
  /** What O sealed; undefined until SealComplete. */
  sealed: SealComplete | undefined;
  /** Which process holds the data-dir lock, as far as S knows. */
  lockHolder: 'O' | 'N' | 'none' = 'O';
  oPrepared = false;
  beginSent = false;
  rolledForward = false;
  revisionsChecked = false;
  /** Set when S killed a peer for silence, so that its exit is reported as such. */
  killedForSilence: 'O' | 'N' | undefined;
  private outcomeReason: ProtocolError | undefined;
  /** N died of its own accord (not killed by S's rollback): its exit and stderr go in the record. */
  private successorDied = false;

  constructor(
    readonly id: HandoffId,
    readonly o: ServiceChild | null,
    readonly n: ServiceChild,
    readonly command: string[],
    private readonly ctx: HandoffContext,
  ) {
    this.idStr = idToString(id);
    this.phaseTimer = ctx.timer(ctx.helloTimeoutMs, () => this.dispatch({ kind: 'timeout', err: new ProtocolError('deadline_exceeded', `no Hello from the successor within ${ctx.helloTimeoutMs} ms`) }));
    if (o === null) this.lockHolder = 'none';
  }

  get oAlive(): boolean {
    return this.o !== null && this.o.alive;
  }

  /** Feeds one event through the table. */
  dispatch(e: HandoffEv): void {
    if (this.phase === 'done') return;
    const handler = TABLE[this.phase][e.kind];
    if (handler) {
      handler(this, e);
      return;
    }
    if (MESSAGE_EVENTS.has(e.kind)) {
      const side = e.kind.startsWith('n_') ? 'n_violation' : 'o_violation';
      const msgType = 'msg' in e ? e.msg.type : e.kind;
      this.dispatch({ kind: side, err: new ProtocolError('unexpected_message', `${msgType} in phase ${this.phase}`) });
      return;
    }
    this.ctx.log('debug', 'event ignored in this phase', { event: e.kind });
  }

  enter(next: ActivePhase | 'done'): void {
    const now = performance.now();
    const prev = this.phase;
    const ms = Math.round(now - this.phaseT0);
    if (prev !== 'done') this.phases.push({ phase: prev, ms });
    this.phase = next;
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

  // --- handlers -------------------------------------------------------------------------------

  acceptSuccessor(e: HandoffEv): void {
    if (e.kind !== 'n_hello') return;
    try {
      this.ctx.ackSuccessor(this.n, e.msg, this.id);
    } catch (err) {
      this.abort(err instanceof ProtocolError ? err : new ProtocolError('successor_failed', 'bad Hello'));
      return;
    }
    this.deadlineTimer = this.ctx.timer(this.ctx.deadlineMs, () => this.dispatch({ kind: 'timeout', err: new ProtocolError('deadline_exceeded', `handoff not ready within ${this.ctx.deadlineMs} ms`) }));
    if (!this.oAlive) {
      // O died while N was starting: nothing to drain or seal.
      this.sendBegin();
      return;
    }
    this.o!.channel.handoffId = this.id;
    this.o!.channel.send({ type: 'PrepareHandoff', handoff_id: this.id, successor_pid: this.n.pid, deadline_ms: BigInt(this.ctx.deadlineMs), drain_grace_ms: BigInt(this.ctx.drainGraceMs) });
    this.oPrepared = true;
    this.setPhaseTimer(this.ctx.drainGraceMs + DRAIN_SLACK_MS, new ProtocolError('deadline_exceeded', `no Drained within the drain grace of ${this.ctx.drainGraceMs} ms (+1 s)`));
    this.enter('drain');
  }

  requestSeal(): void {
    this.phaseTimer?.cancel();
    this.o!.channel.send({ type: 'SealRequest', handoff_id: this.id });
    this.enter('seal');
  }

  relayProgress(e: HandoffEv): void {
    if (e.kind !== 'o_seal_progress') return;
    const m = e.msg;
    this.ctx.emit(this.event('seal', { progress: { shards_sealed: m.shards_sealed, shards_total: m.shards_total, last_revision: m.last_revision.toString() } }));
  }

  beginSuccessor(e: HandoffEv): void {
    if (e.kind !== 'o_sealed') return;
    this.sealed = e.msg;
    this.lockHolder = 'none';
    if (this.ctx.lockHeld()) {
      this.abort(new ProtocolError('lock_held', 'the incumbent reported SealComplete but the data-dir lock is still held'));
      return;
    }
    this.sendBegin();
  }

  private sendBegin(): void {
    this.n.channel.send({ type: 'Begin', handoff_id: this.id });
    this.beginSent = true;
    this.lockHolder = 'N';
    this.enter('begin');
  }

  checkReady(e: HandoffEv): void {
    if (e.kind !== 'n_ready') return;
    const r = e.msg;
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
    if (this.oAlive) this.o!.channel.send({ type: 'Commit', handoff_id: this.id });
    this.enter('commit');
    if (!this.oAlive) {
      this.finish('committed');
      return;
    }
    void this.o!.retire(this.ctx.exitTimeoutMs, this.ctx.killAfterMs, (signal) => this.ctx.log('warn', `incumbent did not exit after Commit: ${signal}`, { pid: this.o!.pid }));
  }

  /** O died (or broke the protocol) before Begin: kill and reap it, clear its lock, go on with N. */
  rollForward(reason: ProtocolError): void {
    // O's violation and O's exit can both arrive: roll forward once.
    if (this.rolledForward) return;
    this.rolledForward = true;
    this.outcomeReason ??= reason;
    this.ctx.log('warn', 'incumbent lost before Begin: rolling forward', { reason: reason.toReason() });
    this.phaseTimer?.cancel();
    const o = this.o!;
    // A party of the handoff since PrepareHandoff: if it can still read, it learns why it is killed.
    if (this.oPrepared) o.channel.fail(reason);
    void o.killAndReap().then(() => {
      if (this.phase === 'done') return;
      if (this.lockHolder === 'O') {
        this.ctx.clearLock(o.pid);
        this.lockHolder = 'none';
      }
      // In `hello`, Begin follows N's Hello (acceptSuccessor sees O gone).
      if (this.phase !== 'hello' && !this.beginSent) this.sendBegin();
    });
  }

  /** O is gone after Begin (N already has everything it needs): recorded, the handoff goes on. */
  noteIncumbentGone(violation?: ProtocolError): void {
    this.ctx.log('warn', 'incumbent gone during the handoff', { child_pid: this.o?.pid, exit: this.o?.describeExit(), ...(violation ? { reason: violation.toReason() } : {}) });
    this.outcomeReason ??= violation ?? this.incumbentFailure();
    // It broke the protocol (it did not die): it learns why before it is killed.
    if (violation) this.o?.channel.fail(violation);
    if (this.o?.alive) void this.o.killAndReap();
  }

  /**
   * Past Commit the successor broke the protocol: S cannot drive it as the incumbent (its channel may
   * be closed already), so it is told (Abort, if the channel is still open) and killed; its exit ends
   * the handoff (successorLostAfterCommit) and a fresh incumbent starts at once.
   */
  successorBroke(violation: ProtocolError): void {
    this.ctx.log('error', 'successor broke the protocol after Commit: killing it', { child_pid: this.n.pid, reason: violation.toReason() });
    this.outcomeReason ??= violation;
    this.n.channel.fail(violation);
    this.n.kill('SIGKILL');
  }

  /**
   * N died after Commit: the handoff did commit (O is retiring and will not serve again), so it
   * ends now, and the supervisor starts a fresh incumbent at once instead of after O's exit.
   */
  successorLostAfterCommit(): void {
    this.ctx.log('error', 'successor died after Commit', { child_pid: this.n.pid, exit: this.n.describeExit() });
    this.outcomeReason ??= this.successorFailure();
    this.finish('committed');
  }

  successorFailure(): ProtocolError {
    if (this.killedForSilence === 'N') return new ProtocolError('heartbeat_timeout', 'the successor went silent and was killed');
    return new ProtocolError('successor_failed', `successor ${this.n.describeExit()} in phase ${this.phase}`);
  }

  incumbentFailure(): ProtocolError {
    if (this.killedForSilence === 'O') return new ProtocolError('heartbeat_timeout', 'the incumbent went silent and was killed');
    return new ProtocolError('incumbent_failed', `incumbent ${this.o?.describeExit() ?? 'absent'} in phase ${this.phase}`);
  }

  /** Rollback: abort N, and give O back its role (Abort before seal, ResumeAfterAbort after). */
  abort(reason: ProtocolError): void {
    if (this.phase === 'rollback' || this.phase === 'commit' || this.phase === 'done') return;
    this.outcomeReason = reason;
    this.successorDied = !this.n.alive;
    this.clearTimers();
    this.ctx.log('warn', 'aborting handoff', { reason: reason.toReason() });
    const afterBegin = this.beginSent;
    const oSealed = this.sealed !== undefined || afterBegin;
    this.enter('rollback');
    this.n.channel.send({ type: 'Abort', handoff_id: this.id, reason: reason.toReason() });
    void (async () => {
      // N gets a moment to leave on its own, then is killed; either way it is reaped before O resumes.
      // After Begin it may have accepted: it drains like an incumbent, so it gets the drain grace.
      const graceMs = afterBegin ? this.ctx.drainGraceMs + DRAIN_SLACK_MS : Math.min(ABORT_EXIT_WAIT_MS, this.ctx.exitTimeoutMs);
      await this.n.retire(graceMs, this.ctx.killAfterMs);
      if (this.lockHolder === 'N') {
        this.ctx.clearLock(this.n.pid);
        this.lockHolder = 'none';
      }
      if (this.oAlive) {
        const o = this.o!;
        if (oSealed) {
          o.channel.send({ type: 'ResumeAfterAbort', handoff_id: this.id });
          this.lockHolder = 'O';
        } else if (this.oPrepared) o.channel.send({ type: 'Abort', handoff_id: this.id, reason: reason.toReason() });
        o.channel.handoffId = undefined;
      }
      this.finish('aborted');
    })();
  }

  finish(outcome: 'committed' | 'aborted'): void {
    if (this.phase === 'done') return;
    // Dead before S told it to go (an Abort or a kill of S's own comes after rollback began).
    this.successorDied ||= !this.n.alive && this.phase !== 'rollback';
    this.clearTimers();
    this.enter('done');
    const total = Math.round(performance.now() - this.t0);
    const r = this.outcomeReason;
    const record: HandoffRecord = {
      handoff_id: this.idStr,
      outcome,
      started_at: this.startedAt.toISOString(),
      ended_at: new Date().toISOString(),
      incumbent_pid: this.o?.pid ?? null,
      successor_pid: this.n.pid || null,
      command: this.command,
      phases: this.phases,
      total_ms: total,
      rolled_forward: this.rolledForward,
      revisions_checked: this.revisionsChecked,
      ...(r ? { reason: r.toReason(), reason_kind: r.kind } : {}),
      ...(this.n.hello ? { build_id: Buffer.from(this.n.hello.build_id).toString('utf8') } : {}),
      // A successor that died on the way: how, and what it said last (why it could not start).
      ...(this.successorDied ? { successor_exit: this.n.describeExit(), successor_stderr: this.n.stderrTail.get() } : {}),
    };
    this.ctx.emit(this.event('done', { outcome, ...(r ? { reason: r.toReason() } : {}) }));
    this.ctx.done(this, record);
  }
}

// --- which messages each side may send during a handoff, as table events -----------------------

export function successorEvent(m: Message): HandoffEv | undefined {
  switch (m.type) {
    case 'Hello':
      return { kind: 'n_hello', msg: m };
    case 'Ready':
      return { kind: 'n_ready', msg: m };
    case 'Abort':
      return { kind: 'n_abort', msg: m };
    default:
      return undefined;
  }
}

export function incumbentEvent(m: Message): HandoffEv | undefined {
  switch (m.type) {
    case 'Drained':
      return { kind: 'o_drained', msg: m };
    case 'SealProgress':
      return { kind: 'o_seal_progress', msg: m };
    case 'SealComplete':
      return { kind: 'o_sealed', msg: m };
    case 'SealFailed':
      return { kind: 'o_seal_failed', msg: m };
    case 'Abort':
      return { kind: 'o_abort', msg: m };
    default:
      return undefined;
  }
}

/** What an incumbent may send in a handoff, and so may still be on the wire when S ends it. */
export const LATE_TYPES: ReadonlySet<Message['type']> = new Set(['Drained', 'SealProgress', 'SealComplete', 'SealFailed', 'Abort']);
