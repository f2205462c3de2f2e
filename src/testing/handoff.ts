/**
 * One handoff driven by the fake supervisor, step by step, in the order S drives it. Each step
 * returns the next stage, so the order is checked by the compiler: `seal()` exists only on a
 * drained handoff, `begin()` only on a sealed one, `commit()` only once the successor is Ready.
 * A step that fails (a SealFailed, an Abort, an exit, a silence past the time limit, a Ready that
 * S would reject) rolls back as S does, then rejects with a HandoffStepError.
 */

import { abortReason, idEquals, idToString, type HandoffId, type MessageOf } from '../protocol/index.js';
import { HandoffStepError, type HandoffStep } from './errors.js';
import type { ControlLink } from './link.js';
import type { ServiceUnderTest } from './service-under-test.js';

export interface HandoffTiming {
  drainGraceMs: number;
  deadlineMs: number;
  timeoutMs: number;
}

type State = 'drain' | 'drained' | 'sealed' | 'ready' | 'done';

/** The shared state of the stages; the stage objects are its views. */
export class InFlight {
  readonly idString: string;
  state: State = 'drain';
  private sealed: MessageOf<'SealComplete'> | undefined;
  private beginSent = false;
  private prepared = false;
  private commitSent = false;
  /** The incumbent's `resumed` events before this handoff: one more means it serves again. */
  private readonly resumedBefore: number;
  lost = false;

  constructor(
    readonly id: HandoffId,
    readonly o: ControlLink,
    readonly n: ControlLink,
    private readonly timing: HandoffTiming,
    /** Tells the supervisor the handoff ended (the successor serves when committed). */
    private readonly ended: (committed: boolean) => void,
  ) {
    this.idString = idToString(id);
    this.resumedBefore = o.rec.count('resumed');
  }

  /** PrepareHandoff to the incumbent; its Drained. */
  drain(): Promise<MessageOf<'Drained'>> {
    return this.step('drain', 'drain', 'drained', async () => {
      this.prepared = true;
      const t = this.timing;
      this.o.send({ type: 'PrepareHandoff', handoff_id: this.id, successor_pid: process.pid, deadline_ms: BigInt(t.deadlineMs), drain_grace_ms: BigInt(t.drainGraceMs) });
      // The drain may take the whole grace.
      return this.o.expect('drain', ['Drained'], t.drainGraceMs + t.timeoutMs);
    });
  }

  /** SealRequest; SealComplete (SealProgress frames are recorded, not waited for). */
  seal(): Promise<MessageOf<'SealComplete'>> {
    return this.step('seal', 'drained', 'sealed', async () => {
      this.o.send({ type: 'SealRequest', handoff_id: this.id });
      const m = await this.o.expect('seal', ['SealComplete']);
      checkId('seal', m.handoff_id, this.id);
      this.sealed = m;
      return m;
    });
  }

  /** Begin to the successor; its Ready. */
  begin(): Promise<MessageOf<'Ready'>> {
    return this.step('begin', 'sealed', 'ready', async () => {
      this.beginSent = true;
      this.n.send({ type: 'Begin', handoff_id: this.id });
      const m = await this.n.expect('begin', ['Ready']);
      checkId('begin', m.handoff_id, this.id);
      return m;
    });
  }

  /** What S checks of Ready, then Commit; resolves once the incumbent exited 0. */
  commit(ready: MessageOf<'Ready'>): Promise<ServiceUnderTest> {
    return this.step('commit', 'ready', 'done', async () => {
      if (!ready.healthz_ok) throw new HandoffStepError('commit', 'successor_unhealthy', 'the successor reported healthz_ok: false', ready);
      const sealed = this.sealed!.last_revision_per_shard.map(String).join(',');
      const advertised = ready.advertised_revision_per_shard.map(String).join(',');
      if (sealed !== advertised) throw new HandoffStepError('commit', 'revision_mismatch', `sealed [${sealed}], the successor advertises [${advertised}]`, ready);
      this.commitSent = true;
      this.o.send({ type: 'Commit', handoff_id: this.id });
      // Past Commit there is no way back: the successor serves, and an incumbent that does not
      // exit cleanly fails the step.
      this.ended(true);
      let code: number;
      try {
        code = await this.o.rec.exitedWithin(this.timing.timeoutMs);
      } catch {
        throw new HandoffStepError('commit', 'incumbent_failed', `the incumbent did not exit within ${this.timing.timeoutMs} ms of Commit`);
      }
      if (code !== 0) throw new HandoffStepError('commit', 'incumbent_failed', `the incumbent exited with code ${code} after Commit`);
      return this.n.rec.view;
    });
  }

  /** The test calls the handoff off (as `handoff abort` would). */
  async abort(reason: string): Promise<void> {
    this.usable('abort');
    this.state = 'done';
    await this.rollback(abortReason('operator_abort', reason));
  }

  /**
   * S's rollback: Abort to the successor and wait for it to exit (it drains first when it may have
   * accepted), then give the incumbent its role back (ResumeAfterAbort once it sealed or Begin was
   * sent, Abort while it only drained) and wait until it serves again.
   */
  private async rollback(reason: string): Promise<void> {
    const t = this.timing;
    const afterBegin = this.beginSent;
    const oSealed = this.sealed !== undefined || afterBegin;
    try {
      this.n.send({ type: 'Abort', handoff_id: this.id, reason });
      await this.n.rec.exitedWithin(afterBegin ? t.drainGraceMs + t.timeoutMs : t.timeoutMs).catch(() => {
        throw new Error('the successor did not exit after Abort');
      });
      if (!this.o.rec.alive) return;
      if (oSealed) this.o.send({ type: 'ResumeAfterAbort', handoff_id: this.id });
      else if (this.prepared) this.o.send({ type: 'Abort', handoff_id: this.id, reason });
      await Promise.race([
        this.o.rec.eventCount('resumed', this.resumedBefore, t.timeoutMs),
        this.o.rec.exitedWithin(t.timeoutMs + 1_000).then((code) => {
          throw new Error(`the incumbent exited with code ${code} instead of serving again`);
        }),
      ]);
    } finally {
      this.n.close();
      this.ended(false);
    }
  }

  /** Runs one step from state `from` to `to`; a failure rolls back as S would (before Commit), then rejects. */
  private async step<T>(name: HandoffStep, from: State, to: State, fn: () => Promise<T>): Promise<T> {
    this.usable(name);
    if (this.state !== from) throw new Error(`${name}() was already called on this handoff`);
    this.state = to;
    try {
      return await fn();
    } catch (err) {
      if (!this.commitSent && !this.lost) await this.rollBackAfter(err);
      throw err;
    }
  }

  private async rollBackAfter(err: unknown): Promise<void> {
    this.state = 'done';
    const got = err instanceof HandoffStepError ? err.got : undefined;
    const reason = got?.type === 'Abort' ? got.reason : err instanceof HandoffStepError ? abortReason(err.kind, err.detail) : abortReason('unexpected_message', String(err));
    try {
      await this.rollback(reason);
    } catch (e) {
      if (err instanceof Error) err.message += `; the rollback failed too: ${(e as Error).message}`;
    }
  }

  private usable(what: string): void {
    if (this.lost) throw new Error(`${what}(): the supervisor is lost (lose() was called)`);
    if (this.state === 'done') throw new Error(`${what}(): this handoff has ended`);
  }
}

function checkId(step: HandoffStep, got: HandoffId, want: HandoffId): void {
  if (!idEquals(got, want)) throw new HandoffStepError(step, 'handoff_id_mismatch', `the message names handoff ${idToString(got)}, not ${idToString(want)}`);
}

/** What every stage shows: the handoff, both services, and calling it off. */
abstract class Stage {
  constructor(protected readonly h: InFlight) {}

  /** The handoff id (canonical UUID form). */
  get id(): string {
    return this.h.idString;
  }

  get incumbent(): ServiceUnderTest {
    return this.h.o.rec.view;
  }

  get successor(): ServiceUnderTest {
    return this.h.n.rec.view;
  }

  /**
   * Calls the handoff off as S does (`operator_abort: <reason>`): the successor is told and exits,
   * then the incumbent gets its role back; resolves once it serves again.
   */
  abort(reason = 'called off by the test'): Promise<void> {
    return this.h.abort(reason);
  }
}

/** The incumbent drained (the successor said Hello and waits for Begin). */
export class DrainedHandoff extends Stage {
  constructor(
    h: InFlight,
    /** The incumbent's Drained. */
    readonly message: MessageOf<'Drained'>,
  ) {
    super(h);
  }

  /** SealRequest: the incumbent seals and lets the lock go. */
  async seal(): Promise<SealedHandoff> {
    return new SealedHandoff(this.h, await this.h.seal());
  }
}

/** The incumbent sealed: its writes stopped, the lock is free. */
export class SealedHandoff extends Stage {
  constructor(
    h: InFlight,
    /** The incumbent's SealComplete: its revisions and fingerprint. */
    readonly message: MessageOf<'SealComplete'>,
  ) {
    super(h);
  }

  /** Begin: the successor takes the lock, opens, checks its health, accepts, says Ready. */
  async begin(): Promise<ReadyHandoff> {
    return new ReadyHandoff(this.h, await this.h.begin());
  }
}

/** The successor said Ready (and serves, if healthy). */
export class ReadyHandoff extends Stage {
  constructor(
    h: InFlight,
    /** The successor's Ready: healthz_ok, listening_on, its revisions. */
    readonly message: MessageOf<'Ready'>,
  ) {
    super(h);
  }

  /**
   * Checks Ready as S does (healthy, the revisions the incumbent sealed), then Commit: the
   * incumbent closes and exits. Resolves with the successor, now the incumbent.
   */
  commit(): Promise<ServiceUnderTest> {
    return this.h.commit(this.message);
  }
}
