/**
 * The supervisor's side of one handoff at a time: launches it (the successor spawned, the machine
 * of handoff.ts given what it needs of S), feeds it what its two parties say and do, and records how
 * it ended (history, journal, counters) before S picks its incumbent from the result.
 */

import type { Logger } from 'pino';
import { ProtocolError } from '../protocol/errors.js';
import { idEquals, messageHandoffId, newHandoffId, type HandoffId, type Hello, type Message } from '../protocol/messages.js';
import { isLockHeld } from '../shared/lock.js';
import type { ServiceChild } from './child.js';
import type { Clock } from './clock.js';
import { Handoff, type HandoffContext } from './handoff.js';
import { LATE_TYPES, incumbentInput, successorInput } from './handoff-input.js';
import { PhaseHistograms } from './metrics.js';
import type { StateDir } from './state-dir.js';
import type { HandoffEvent, HandoffOutcome, HandoffRecord, PhaseHistogram, HandoffPhase, SupervisorOptions, SupervisorStatus, UpgradeRequest } from './types.js';

/** What the runner needs from the supervisor. */
export interface RunnerHost {
  readonly log: Logger;
  readonly clock: Clock;
  readonly stateDir: StateDir;
  options(): SupervisorOptions;
  spawnSuccessor(command: string, args: string[]): ServiceChild;
  /** Checks the successor's Hello and answers HelloAck; throws a ProtocolError to refuse. */
  ackSuccessor(successor: ServiceChild, hello: Hello, id: HandoffId): void;
  clearLock(pid: number): void;
  /** A party sent a message it may not send now. */
  refuse(child: ServiceChild, m: Message): void;
  /** A handoff is in flight (before its first progress event). */
  began(): void;
  /** A progress event of the handoff in flight, for S's own listeners. */
  progress(e: HandoffEvent): void;
  /** The handoff ended and is recorded; runs before anyone waiting for it hears. */
  ended(h: Handoff, record: HandoffRecord): void;
}

export interface Launch {
  incumbent: ServiceChild;
  command: string;
  args: string[];
  req: UpgradeRequest;
  onEvent: ((e: HandoffEvent) => void) | undefined;
}

export class HandoffRunner {
  private handoff: Handoff | null = null;
  private waiters: Array<{ resolve: (r: HandoffRecord) => void; onEvent: ((e: HandoffEvent) => void) | undefined }> = [];
  /** The id of the handoff that ended last, until the next one starts: see isLate(). */
  private lastEndedId: HandoffId | null = null;
  private lastRecord: HandoffRecord | null = null;
  private recoveredRecord: HandoffRecord | null = null;
  private readonly counts: Record<HandoffOutcome, number> = { committed: 0, aborted: 0, interrupted: 0 };
  private readonly histograms = new PhaseHistograms();

  constructor(private readonly host: RunnerHost) {}

  /** The handoff in flight, if any. */
  get current(): Handoff | null {
    return this.handoff;
  }

  /** Records a handoff a previous S left in its journal as interrupted. */
  recoverJournal(): void {
    const rec = this.host.stateDir.recoverInterrupted();
    if (!rec) return;
    this.host.log.warn({ handoff_id: rec.handoff_id, reason: rec.reason }, 'found an interrupted handoff in the journal');
    this.recoveredRecord = rec;
    this.counts.interrupted++;
  }

  /** Starts a handoff from `incumbent` to a successor running `command`; resolves with its record. */
  launch({ incumbent, command, args, req, onEvent }: Launch): Promise<HandoffRecord> {
    const id = newHandoffId();
    this.lastEndedId = null;
    const successor = this.host.spawnSuccessor(command, args);
    // From its first byte the successor is part of this handoff: any violation of its gets an Abort naming it.
    successor.channel.handoffId = id;
    const ctx = this.context(req);
    const h = new Handoff(id, incumbent, successor, [command, ...args], ctx);
    this.handoff = h;
    this.host.began();
    const promise = new Promise<HandoffRecord>((resolve) => this.waiters.push({ resolve, onEvent }));
    this.host.log.info({ handoff_id: h.idStr, phase: 'spawn', incumbent: incumbent.pid, successor: successor.pid, command: [command, ...args] }, 'handoff started');
    ctx.journal('hello');
    ctx.emit(h.event('spawn', { detail: `successor pid ${successor.pid}` }));
    ctx.emit(h.event('hello'));
    return promise;
  }

  /** S stops: the handoff in flight (if any) is aborted, and this resolves once it is over. */
  async stop(): Promise<void> {
    const h = this.handoff;
    if (!h) return;
    const done = new Promise<HandoffRecord>((resolve) => this.waiters.push({ resolve, onEvent: undefined }));
    h.dispatch({ kind: 'stop', err: new ProtocolError('supervisor_stopping', 'the supervisor is stopping') });
    await done;
  }

  /** The operator's abort; false when nothing is in flight or it is past the point of no return. */
  abort(reason: string): boolean {
    const h = this.handoff;
    if (!h || h.phase === 'commit' || h.phase === 'rollback' || h.phase === 'done') return false;
    h.dispatch({ kind: 'operator_abort', reason });
    return true;
  }

  // --- what the parties say and do ------------------------------------------------------------

  /** Feeds a party's message to the handoff in flight; false when `child` is no party of one. */
  route(child: ServiceChild, m: Message): boolean {
    const h = this.handoff;
    const party = h?.partyOf(child);
    if (!h || !party) return false;
    if (m.type !== 'Hello') {
      const id = messageHandoffId(m);
      if (id !== undefined && !idEquals(id, h.id)) {
        // Failing the channel closes it, and the supervisor reports the violation.
        child.channel.fail(new ProtocolError('handoff_id_mismatch', `${m.type} names another handoff`));
        return true;
      }
    }
    const input = party === 'successor' ? successorInput(m) : incumbentInput(m);
    if (input) h.dispatch(input);
    else this.host.refuse(child, m);
    return true;
  }

  /** A party was reaped; false when `child` is no party of the handoff in flight. */
  exited(child: ServiceChild): boolean {
    const party = this.handoff?.partyOf(child);
    if (!party) return false;
    this.handoff?.dispatch({ kind: `${party}_exit` });
    return true;
  }

  /** A party broke the protocol; false when `child` is no party of the handoff in flight. */
  violated(child: ServiceChild, err: ProtocolError): boolean {
    const party = this.handoff?.partyOf(child);
    if (!party) return false;
    this.handoff?.dispatch({ kind: `${party}_violation`, err });
    return true;
  }

  /** A party silent past the timeout is killed, its exit reported as such; false when `p` is no party. */
  killSilent(p: ServiceChild, silentMs: number): boolean {
    const h = this.handoff;
    const party = h?.partyOf(p);
    if (!h || !party || h.phase === 'done') return false;
    this.host.log.error({ child_pid: p.pid, silent_ms: Math.round(silentMs), party }, 'peer silent: killing it');
    h.killSilent(party);
    return true;
  }

  /** A message the incumbent may still send for the handoff that just ended (Drained has no id). */
  isLate(m: Message): boolean {
    const ended = this.lastEndedId;
    if (ended === null || !LATE_TYPES.has(m.type)) return false;
    const id = messageHandoffId(m);
    return id === undefined || idEquals(id, ended);
  }

  /** The processes of the handoff in flight. */
  parties(): ServiceChild[] {
    const h = this.handoff;
    if (!h) return [];
    return h.incumbent ? [h.incumbent, h.successor] : [h.successor];
  }

  // --- what status and metrics show -----------------------------------------------------------

  inflight(): SupervisorStatus['inflight'] {
    const h = this.handoff;
    if (!h) return null;
    return { handoff_id: h.idStr, phase: h.phase, started_at: h.startedAt.toISOString(), successor_pid: h.successor.pid || null, elapsed_ms: Date.now() - h.startedAt.getTime() };
  }

  get last(): HandoffRecord | null {
    return this.lastRecord;
  }

  get recovered(): HandoffRecord | null {
    return this.recoveredRecord;
  }

  outcomes(): Record<HandoffOutcome, number> {
    return { ...this.counts };
  }

  phaseHistograms(): Partial<Record<HandoffPhase, PhaseHistogram>> {
    return this.histograms.snapshot();
  }

  /** The phase of the handoff in flight, for /metrics. */
  phase(): HandoffPhase | null {
    const h = this.handoff;
    return h && h.phase !== 'done' ? h.phase : null;
  }

  // --- the machine's side effects -------------------------------------------------------------

  private context(req: UpgradeRequest): HandoffContext {
    const { host } = this;
    const opts = host.options();
    let h: Handoff | undefined;
    return {
      deadlineMs: req.deadlineMs ?? opts.deadlineMs,
      drainGraceMs: req.drainGraceMs ?? opts.drainGraceMs,
      helloTimeoutMs: req.helloTimeoutMs ?? opts.helloTimeoutMs,
      exitTimeoutMs: opts.exitTimeoutMs,
      killAfterMs: opts.killAfterMs,
      ackSuccessor: (successor, hello, id) => host.ackSuccessor(successor, hello, id),
      lockHeld: () => opts.lockPath !== undefined && isLockHeld(opts.lockPath),
      timer: (ms, fn) => host.clock.timer(ms, fn),
      clearLock: (pid) => host.clearLock(pid),
      emit: (e) => {
        for (const w of this.waiters) w.onEvent?.(e);
        host.progress(e);
      },
      journal: (phase) => {
        h ??= this.handoff ?? undefined;
        if (!h) return;
        host.stateDir.writeJournal({
          handoff_id: h.idStr,
          phase,
          incumbent_pid: h.incumbent?.pid ?? null,
          successor_pid: h.successor.pid || null,
          started_at: h.startedAt.toISOString(),
          command: h.command,
          supervisor_pid: process.pid,
        });
      },
      log: (level, msg, extra) => {
        h ??= this.handoff ?? undefined;
        host.log[level]({ handoff_id: h?.idStr, phase: h?.phase, ...extra }, msg);
      },
      done: (handoff, record) => this.done(handoff, record),
    };
  }

  private done(h: Handoff, record: HandoffRecord): void {
    this.handoff = null;
    this.lastEndedId = h.id;
    // Over: a later violation by either process is not this handoff's, and no Abort may name it.
    h.successor.channel.handoffId = undefined;
    if (h.incumbent) h.incumbent.channel.handoffId = undefined;
    this.host.stateDir.append(record);
    this.host.stateDir.clearJournal();
    this.lastRecord = record;
    this.counts[record.outcome]++;
    for (const p of record.phases) this.histograms.observe(p.phase, p.ms);
    this.host.log.info({ handoff_id: record.handoff_id, phase: 'done', outcome: record.outcome, reason: record.reason, phases: record.phases, total_ms: record.total_ms }, `handoff ${record.outcome}`);
    this.host.ended(h, record);
    for (const w of this.waiters.splice(0)) w.resolve(record);
  }
}
