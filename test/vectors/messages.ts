/**
 * The one message per variant that the golden vectors hold. Values are chosen to exercise the types:
 * a u64 above 2^53 wherever the variant has a u64, non-empty lists, a non-nil id, every integer
 * width, fixstr and str8, non-ASCII text.
 */

import { uuidToId, type Message } from '../../src/protocol/index.js';
import { U64_MAX } from '../../src/protocol/msgpack.js';

const ID = uuidToId('6f1c2e4a-9b3d-4c5e-8f70-1a2b3c4d5e6f');
const FINGERPRINT = Uint8Array.from(Buffer.from('9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08', 'hex'));
const ABOVE_2_53 = 2n ** 53n + 1n; // 9007199254740993: not representable as a double

export const VECTOR_MESSAGES: readonly Message[] = [
  {
    type: 'Hello',
    role: 'Incumbent',
    pid: 70_000,
    build_id: Uint8Array.from(Buffer.from('v1.4.2+g3f2a9c1')),
    proto_min: 1,
    proto_max: 300,
    capabilities: { reserved: ABOVE_2_53 },
  },
  { type: 'HelloAck', proto_version_chosen: 1, handoff_id: ID },
  { type: 'PrepareHandoff', handoff_id: ID, successor_pid: 4243, deadline_ms: 1_700_000_030_000n, drain_grace_ms: U64_MAX },
  { type: 'Drained', open_conns_remaining: 200, accept_closed: false },
  { type: 'SealRequest', handoff_id: ID },
  { type: 'SealProgress', shards_sealed: 3, shards_total: 16, last_revision: ABOVE_2_53 },
  {
    type: 'SealComplete',
    handoff_id: ID,
    last_revision_per_shard: [0n, 127n, 128n, 65_536n, 2n ** 32n, ABOVE_2_53, U64_MAX],
    data_dir_fingerprint: FINGERPRINT,
  },
  { type: 'SealFailed', handoff_id: ID, error: 'écriture échouée: shard 3', partial_state: 'shards 0..2 sealed, shard 3 open for writes' },
  { type: 'Begin', handoff_id: ID },
  { type: 'Ready', handoff_id: ID, listening_on: ['http', 'admin'], healthz_ok: true, advertised_revision_per_shard: [1n, ABOVE_2_53] },
  { type: 'Commit', handoff_id: ID },
  { type: 'Abort', handoff_id: ID, reason: 'operator_abort: requested by operator' },
  { type: 'ResumeAfterAbort', handoff_id: ID },
  { type: 'Heartbeat', ts_ms: ABOVE_2_53 },
];

/** The .hex layout: the 6 header bytes on the first line, then the payload 32 bytes a line. */
export function formatHex(frame: Uint8Array): string {
  const h = Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength).toString('hex');
  const lines = [`${h.slice(0, 8)} ${h.slice(8, 12)}`];
  for (let i = 12; i < h.length; i += 64) lines.push(h.slice(i, i + 64));
  return lines.join('\n') + '\n';
}
