/**
 * Values that cross the wire to S, checked on the way out (hook results, free text), and the
 * protocol errors the flows raise when S says something out of turn.
 */

import {
  MAX_REVISIONS,
  ProtocolError,
  abortReason,
  idToString,
  type Channel,
  type HandoffId,
  type Message,
} from '../protocol/index.js';
import { U64_MAX } from '../protocol/msgpack.js';
import type { Revisions, ServicePhase } from './types.js';

export function firstLine(err: unknown): string {
  const msg = err instanceof Error ? err.message : String(err);
  return msg.split(/\r?\n/, 1)[0] ?? '';
}

/** A free-text field made safe for the wire: first line, no control characters, ≤ 512 bytes. */
export function wireText(s: string): string {
  return abortReason('seal_failed', s).slice('seal_failed: '.length);
}

export function toU64List(v: Revisions, what: string): bigint[] {
  if (!Array.isArray(v)) throw new TypeError(`${what} is not an array`);
  if (v.length > MAX_REVISIONS) throw new RangeError(`${what} has more than ${MAX_REVISIONS} entries`);
  return v.map((x, i) => {
    let b: bigint;
    if (typeof x === 'bigint') b = x;
    else if (typeof x === 'number' && Number.isSafeInteger(x)) b = BigInt(x);
    else throw new TypeError(`${what}[${i}] is not an integer`);
    if (b < 0n || b > U64_MAX) throw new RangeError(`${what}[${i}] is out of the u64 range`);
    return b;
  });
}

export function unexpected(msg: Message, phase: ServicePhase): never {
  throw new ProtocolError('unexpected_message', `${msg.type} while ${phase}`);
}

/** `id` does not name the handoff in flight (`inFlight`, if any). */
export function idMismatch(id: HandoffId, inFlight: HandoffId | undefined): ProtocolError {
  if (!inFlight) return new ProtocolError('handoff_id_mismatch', `a message for handoff ${idToString(id)} while none is in flight`);
  return new ProtocolError('handoff_id_mismatch', `got ${idToString(id)}, in flight ${idToString(inFlight)}`);
}

/** A message handler threw: fail the channel with it (anything not a ProtocolError is unexpected_message). */
export function failChannel(channel: Channel, err: unknown): void {
  channel.fail(err instanceof ProtocolError ? err : new ProtocolError('unexpected_message', firstLine(err)));
}
