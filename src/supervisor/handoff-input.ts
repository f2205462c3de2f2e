/**
 * The handoff machine's inputs (handoff.ts): what each party's channel and process, the timers, the
 * operator and S's own stop feed into it. Not to be confused with a HandoffEvent, the progress the
 * machine reports to clients.
 */

import type { ProtocolError } from '../protocol/errors.js';
import type { Abort, Drained, Hello, Message, Ready, SealComplete, SealFailed, SealProgress } from '../protocol/messages.js';

/** The two processes a handoff drives. */
export type Party = 'incumbent' | 'successor';

/** What each input carries, by kind. */
interface Inputs {
  successor_hello: { msg: Hello };
  successor_ready: { msg: Ready };
  successor_abort: { msg: Abort };
  successor_exit: Record<never, never>;
  successor_violation: { err: ProtocolError };
  incumbent_drained: { msg: Drained };
  incumbent_seal_progress: { msg: SealProgress };
  incumbent_sealed: { msg: SealComplete };
  incumbent_seal_failed: { msg: SealFailed };
  incumbent_abort: { msg: Abort };
  incumbent_exit: Record<never, never>;
  incumbent_violation: { err: ProtocolError };
  timeout: { err: ProtocolError };
  stop: { err: ProtocolError };
  operator_abort: { reason: string };
}

export type InputKind = keyof Inputs;

/** One input of the machine; `HandoffInput<K>` is the input of kind K (what K's handler receives). */
export type HandoffInput<K extends InputKind = InputKind> = { [P in K]: { kind: P } & Inputs[P] }[K];

/**
 * Inputs that are a party's message: absent from a phase's row, they are that party's protocol
 * violation. An Abort is not among them: after Commit or during rollback, when the outcome is
 * decided, one is ignored.
 */
export const MESSAGE_INPUTS: ReadonlyMap<InputKind, Party> = new Map([
  ['successor_hello', 'successor'],
  ['successor_ready', 'successor'],
  ['incumbent_drained', 'incumbent'],
  ['incumbent_seal_progress', 'incumbent'],
  ['incumbent_sealed', 'incumbent'],
  ['incumbent_seal_failed', 'incumbent'],
]);

// --- which messages each party may send during a handoff, as inputs -----------------------------

export function successorInput(m: Message): HandoffInput | undefined {
  switch (m.type) {
    case 'Hello':
      return { kind: 'successor_hello', msg: m };
    case 'Ready':
      return { kind: 'successor_ready', msg: m };
    case 'Abort':
      return { kind: 'successor_abort', msg: m };
    default:
      return undefined;
  }
}

export function incumbentInput(m: Message): HandoffInput | undefined {
  switch (m.type) {
    case 'Drained':
      return { kind: 'incumbent_drained', msg: m };
    case 'SealProgress':
      return { kind: 'incumbent_seal_progress', msg: m };
    case 'SealComplete':
      return { kind: 'incumbent_sealed', msg: m };
    case 'SealFailed':
      return { kind: 'incumbent_seal_failed', msg: m };
    case 'Abort':
      return { kind: 'incumbent_abort', msg: m };
    default:
      return undefined;
  }
}

/** What an incumbent may send in a handoff, and so may still be on the wire when S ends it. */
export const LATE_TYPES: ReadonlySet<Message['type']> = new Set(['Drained', 'SealProgress', 'SealComplete', 'SealFailed', 'Abort']);
