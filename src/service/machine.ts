/**
 * The service side's state machine: its phases with the data only each phase has, the events that
 * move it, and the transition table.
 *
 * Events are S's messages (once the handoff-id rules of dispatch.ts let them through), S's silence
 * and the channel's close (supervisor-loss.ts), the incumbent's own handoff deadline, and a stop
 * request. `TABLE[phase][event.kind]` names the handler: a message missing from a row is S's
 * protocol violation (unexpected_message), any other event missing from a row is nothing to do
 * there. A handler gets its own event and the state it was fired in, typed, and acts through the
 * flows. The steps it starts end in their own flows, which move on only if nothing moved the
 * process meanwhile:
 *
 *   starting  → serving (cold start) | awaiting-begin | overlapping (successor)  start.ts
 *   beginning → serving | unhealthy                                     successor.ts  begin
 *   draining  → drained                                                 incumbent.ts  drain
 *   sealing   → sealed | seal-failed | resuming (called off meanwhile)  incumbent.ts  seal
 *   resuming  → serving                                                 incumbent.ts  endHandoff
 *   stopping  → exiting; any phase → exiting                            stop.ts, runtime.ts exit
 */

import type { HandoffId, MessageOf } from '../protocol/index.js';
import type { IncumbentFlow } from './incumbent.js';
import type { Runtime } from './runtime.js';
import { stopAtOnce, stopServing } from './stop.js';
import type { SuccessorFlow } from './successor.js';
import type { SupervisorLoss } from './supervisor-loss.js';
import type { ServicePhase } from './types.js';
import { unexpected } from './wire.js';

/** Where the process is, with what only that phase has. `handoff`: the handoff in flight. */
export type State =
  | { readonly phase: 'idle' | 'starting' }
  | { readonly phase: 'awaiting-begin' | 'beginning' | 'unhealthy'; readonly handoff: HandoffId }
  /** A stateless successor accepting before Begin; `handoff` is known once HelloAck came. */
  | { readonly phase: 'overlapping'; readonly handoff: HandoffId | undefined }
  /** `successorOf`: the handoff this process came with as successor, until a PrepareHandoff makes it a plain incumbent. */
  | { readonly phase: 'serving'; readonly successorOf: HandoffId | undefined }
  | { readonly phase: 'draining' | 'drained' | 'sealed' | 'seal-failed'; readonly handoff: HandoffId }
  /** `abort`: the reason of an Abort that came while the seal hook ran, acted on once it returns. */
  | { readonly phase: 'sealing'; readonly handoff: HandoffId; readonly abort: string | undefined }
  /** `deferred`: a PrepareHandoff that came meanwhile (S cannot know when a resume is over), taken once serving. */
  | { readonly phase: 'resuming'; readonly handoff: HandoffId; readonly deferred: MessageOf<'PrepareHandoff'> | undefined }
  /** `handoff`: the one in flight when the commit, the stop or the exit came, if any. */
  | { readonly phase: 'committing' | 'stopping' | 'exiting'; readonly handoff: HandoffId | undefined };

export type StateOf<P extends ServicePhase> = State & { readonly phase: P };

/** The handoff the messages of S must name (as successor at rest: the one it came with). */
export function handoffOf(s: State): HandoffId | undefined {
  if (s.phase === 'serving') return s.successorOf;
  return 'handoff' in s ? s.handoff : undefined;
}

/** What drives the service's table: S's messages and the library's own events (S's side: `HandoffInput`). */
export type ServiceInput =
  | { readonly kind: 'PrepareHandoff'; readonly msg: MessageOf<'PrepareHandoff'> }
  | { readonly kind: 'SealRequest'; readonly msg: MessageOf<'SealRequest'> }
  | { readonly kind: 'Commit'; readonly msg: MessageOf<'Commit'> }
  | { readonly kind: 'Begin'; readonly msg: MessageOf<'Begin'> }
  | { readonly kind: 'Abort'; readonly msg: MessageOf<'Abort'>; readonly reason: string }
  | { readonly kind: 'ResumeAfterAbort'; readonly msg: MessageOf<'ResumeAfterAbort'>; readonly reason: string }
  /** No frame from S for the heartbeat timeout, on a channel still open: S may only be paused. */
  | { readonly kind: 'silence' }
  /** The channel closed. `afterAbort`: right after an Abort that was acted on, which is how S ends its part. */
  | { readonly kind: 'closed'; readonly reason: string; readonly afterAbort: boolean }
  /** The incumbent's own handoff deadline passed: S neither sealed nor called the handoff off. */
  | { readonly kind: 'deadline' }
  /** SIGTERM, SIGINT or stop(). */
  | { readonly kind: 'stop' };

export type Fire = (e: ServiceInput) => void;

/** What the handlers act through. */
export interface Machine {
  readonly rt: Runtime;
  readonly incumbent: IncumbentFlow;
  readonly successor: SuccessorFlow;
  readonly loss: SupervisorLoss;
}

type Kind = ServiceInput['kind'];
type InputOf = { [E in ServiceInput as E['kind']]: E };
type Handler<P extends ServicePhase, K extends Kind> = (m: Machine, e: InputOf[K], s: StateOf<P>) => void;
type Row<P extends ServicePhase> = { readonly [K in Kind]?: Handler<P, K> };

// The handlers, by what they do; the TABLE says where.
type Holding = 'draining' | 'drained' | 'seal-failed';
type Leaving = 'awaiting-begin' | 'overlapping' | 'beginning' | 'unhealthy' | 'serving';
type BeforeBegin = 'awaiting-begin' | 'overlapping';
type CallOff = 'Abort' | 'ResumeAfterAbort';

const prepare: Handler<'serving', 'PrepareHandoff'> = (m, e) => m.incumbent.prepare(e.msg);
const defer: Handler<'resuming', 'PrepareHandoff'> = (m, e, s) => m.incumbent.defer(s, e.msg);
const seal: Handler<'drained', 'SealRequest'> = (m, e) => m.rt.task(m.incumbent.seal(e.msg.handoff_id));
/** Crossed the Abort that started this resume: S reads that Abort next and calls the handoff off. */
const crossed: Handler<'resuming', 'SealRequest'> = (m, e) => m.incumbent.ignoreCrossed(e.msg);
const commit: Handler<'sealed', 'Commit'> = (m) => m.rt.task(m.incumbent.commit());
const commitCalledOff: Handler<'resuming', 'Commit'> = (m, e, s) => (m.incumbent.successorMayServe() ? m.incumbent.commitCalledOff(e.msg) : unexpected(e.msg, s.phase));
const begin: Handler<BeforeBegin, 'Begin'> = (m, e, s) => m.rt.task(m.successor.begin(s, e.msg.handoff_id));
const rollBack: Handler<Leaving, 'Abort'> = (m, e, s) => m.successor.rollBack(s, e.reason);
const serveAgain: Handler<Holding, CallOff> = (m, e, s) => m.incumbent.serveAgain(s, e.reason);
const abortSealing: Handler<'sealing', CallOff> = (m, e, s) => m.incumbent.abortSealing(s, e.reason);
const retake: Handler<'sealed', CallOff> = (m, e, s) => m.incumbent.retakeAfterAbort(s, e.reason);
const ignore: Handler<ServicePhase, CallOff> = (m, e, s) => m.rt.logger.debug({ phase: s.phase }, `${e.kind} ignored`);

/** A successor before Begin holds nothing: it may as well leave (the S-loss rules follow). */
const leave: Handler<'starting' | BeforeBegin, 'silence'> = (m) => m.loss.leaveSilent();
const serveAgainSilent: Handler<Holding, 'silence'> = (m, _e, s) => m.incumbent.serveAgainSilent(s);
const retakeSilent: Handler<'sealed', 'silence'> = (m, _e, s) => m.incumbent.retakeSilent(s);

const lost: Handler<ServicePhase, 'closed'> = (m, e) => m.loss.lost(e.reason);
/** Serving, sealing or resuming after an Abort: S closing then is how it ends its part, not a loss. */
const lostUnlessEnded: Handler<ServicePhase, 'closed'> = (m, e) => (e.afterAbort ? m.loss.endedAfterAbort() : m.loss.lost(e.reason));
const lostStarting: Handler<'starting', 'closed'> = (m, e) => {
  m.loss.lost(e.reason);
  m.rt.task(m.rt.exit(1));
};
const lostBeforeBegin: Handler<'awaiting-begin', 'closed'> = (m, e) => {
  m.loss.lost(e.reason);
  m.rt.logger.warn('no Begin yet: exiting');
  m.rt.task(m.rt.exit(1));
};
/** Accepted beside the incumbent, and no Begin will come: drain (never reset a client), exit 1. */
const lostOverlapping: Handler<'overlapping', 'closed'> = (m, e) => {
  m.loss.lost(e.reason);
  m.rt.logger.warn('no Begin yet: draining and exiting');
  m.rt.task(stopServing(m.rt, 1));
};
/** Nobody will call this handoff off: let the lock go, so the incumbent can retake it. */
const lostUnhealthy: Handler<'unhealthy', 'closed'> = (m, e, s) => {
  m.loss.lost(e.reason);
  m.successor.rollBack(s, 'supervisor lost');
};
const lostServeAgain: Handler<Holding, 'closed'> = (m, e, s) => {
  m.loss.lost(e.reason);
  m.incumbent.serveAgain(s, 'supervisor lost');
};
const lostRetake: Handler<'sealed', 'closed'> = (m, e, s) => {
  m.loss.lost(e.reason);
  m.incumbent.retakeWithoutSupervisor(s);
};

const deadline: Handler<'draining' | 'drained', 'deadline'> = (m, _e, s) => m.incumbent.deadlinePassed(s);
const exitNow: Handler<ServicePhase, 'stop'> = (m) => m.rt.task(m.rt.exit(0));
const stop: Handler<ServicePhase, 'stop'> = (m) => m.rt.task(stopServing(m.rt));
const stopAgain: Handler<'stopping', 'stop'> = (m) => m.rt.task(stopAtOnce(m.rt));

/** Holding the lock, not serving: whatever calls the handoff off, serve again. */
const HOLDING: Row<Holding> = { Abort: serveAgain, ResumeAfterAbort: serveAgain, silence: serveAgainSilent, closed: lostServeAgain, stop };
/** Called off already, or on the way out: another call-off changes nothing. */
const DONE = { Abort: ignore, ResumeAfterAbort: ignore } as const;

export const TABLE: { readonly [P in ServicePhase]: Row<P> } = {
  idle: { stop: exitNow },
  starting: { silence: leave, closed: lostStarting, stop: exitNow },
  'awaiting-begin': { Begin: begin, Abort: rollBack, silence: leave, closed: lostBeforeBegin, stop: exitNow },
  overlapping: { Begin: begin, Abort: rollBack, silence: leave, closed: lostOverlapping, stop }, // rollBack and stop drain
  beginning: { Abort: rollBack, closed: lost, stop }, // the begin step checks S itself before Ready
  unhealthy: { Abort: rollBack, closed: lostUnhealthy, stop },
  serving: { PrepareHandoff: prepare, Abort: rollBack, closed: lostUnlessEnded, stop }, // Abort: as successor only
  draining: { ...HOLDING, deadline },
  drained: { ...HOLDING, SealRequest: seal, deadline },
  sealing: { Abort: abortSealing, ResumeAfterAbort: abortSealing, closed: lostUnlessEnded, stop }, // acted on when the hook returns
  sealed: { Commit: commit, Abort: retake, ResumeAfterAbort: retake, silence: retakeSilent, closed: lostRetake, stop },
  'seal-failed': HOLDING,
  resuming: { ...DONE, PrepareHandoff: defer, SealRequest: crossed, Commit: commitCalledOff, closed: lostUnlessEnded, stop },
  committing: { ...DONE, stop },
  stopping: { ...DONE, stop: stopAgain },
  exiting: DONE,
};

/** Feeds one event through the table; throws the ProtocolError of a message out of turn. */
export function fire(m: Machine, e: ServiceInput): void {
  const s = m.rt.state;
  // One cast: TABLE's type ties each row to its phase and each handler to its event.
  const handler = (TABLE[s.phase] as Row<ServicePhase>)[e.kind] as ((m: Machine, e: ServiceInput, s: State) => void) | undefined;
  if (handler) return handler(m, e, s);
  if ('msg' in e) unexpected(e.msg, s.phase);
}
