/**
 * Messages from S become the table's events (machine.ts), once the handoff-id rules let them
 * through. A message must name the handoff in flight; one that names the last handoff called off
 * here crossed that call-off on the wire and is no violation; any other id is
 * `handoff_id_mismatch`. Out of turn (not in the phase's row) is `unexpected_message`. Either
 * fails the channel.
 */

import { idEquals, idToString, type HandoffId, type Message } from '../protocol/index.js';
import { fire, type Machine } from './machine.js';
import { idMismatch, unexpected } from './wire.js';

/** Throws a ProtocolError (or anything else a handler throws) for the caller to fail the channel with. */
export function onMessage(m: Machine, msg: Message): void {
  const rt = m.rt;
  switch (msg.type) {
    case 'Heartbeat':
      return;
    case 'PrepareHandoff':
      return fire(m, { kind: 'PrepareHandoff', msg });
    case 'SealRequest':
      if (named(m, msg.handoff_id) === 'ended') return m.incumbent.ignoreCrossed(msg);
      inFlight(m, msg.handoff_id);
      return fire(m, { kind: 'SealRequest', msg });
    case 'Commit':
      if (named(m, msg.handoff_id) === 'ended' && m.incumbent.successorMayServe()) return m.incumbent.commitCalledOff(msg);
      inFlight(m, msg.handoff_id);
      return fire(m, { kind: 'Commit', msg });
    case 'Begin':
      inFlight(m, msg.handoff_id);
      return fire(m, { kind: 'Begin', msg });
    case 'Abort':
    case 'ResumeAfterAbort': {
      const reason = msg.type === 'Abort' ? msg.reason : 'resume after abort';
      const id = msg.handoff_id;
      const n = named(m, id);
      if (n === 'ended') {
        rt.logger.debug({ type: msg.type }, 'the handoff already ended here; ignored');
        return;
      }
      if (n === 'other' && msg.type === 'Abort' && rt.inFlight === undefined && rt.phase === 'serving') {
        // S may call off a handoff it never told us about (the successor failed early): harmless.
        rt.logger.warn({ handoff_id: idToString(id), reason }, 'Abort for a handoff this process is not part of; ignored');
        return;
      }
      inFlight(m, id);
      rt.logger.warn({ type: msg.type, reason, phase: rt.phase }, 'handoff called off');
      return msg.type === 'Abort' ? fire(m, { kind: 'Abort', msg, reason }) : fire(m, { kind: 'ResumeAfterAbort', msg, reason });
    }
    default:
      unexpected(msg, rt.phase);
  }
}

/** Which handoff `id` names: the one in flight, the last one called off here, or another. */
function named(m: Machine, id: HandoffId): 'in-flight' | 'ended' | 'other' {
  const inFlight = m.rt.inFlight;
  if (inFlight && idEquals(id, inFlight)) return 'in-flight';
  if (m.rt.lastEnded && idEquals(id, m.rt.lastEnded)) return 'ended';
  return 'other';
}

function inFlight(m: Machine, id: HandoffId): void {
  const inFlight = m.rt.inFlight;
  if (!inFlight || !idEquals(id, inFlight)) throw idMismatch(id, inFlight);
}
