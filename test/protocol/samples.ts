/** Deterministic sample messages shared by the protocol tests. */

import { MESSAGE_TYPES, SCHEMAS, uuidToId, type FieldKind, type Message, type MessageType } from '../../src/protocol/index.js';

export const ID = uuidToId('6f1c2e4a-9b3d-4c5e-8f70-1a2b3c4d5e6f');
export const FINGERPRINT = Uint8Array.from({ length: 32 }, (_, i) => (i * 37 + 11) & 0xff);
export const BUILD_ID = Uint8Array.from(Buffer.from('v1.4.2+g3f2a9c1'));

/** The u64 values the round trip must carry exactly. */
export const U64_EDGES: readonly bigint[] = [0n, 2n ** 32n, 2n ** 53n + 1n, 2n ** 64n - 1n];

/** One ordinary message of each type. */
export function base(type: MessageType): Message {
  switch (type) {
    case 'Hello':
      return { type, role: 'Successor', pid: 4242, build_id: BUILD_ID, proto_min: 1, proto_max: 1, capabilities: { reserved: 0n } };
    case 'HelloAck':
      return { type, proto_version_chosen: 1, handoff_id: ID };
    case 'PrepareHandoff':
      return { type, handoff_id: ID, successor_pid: 4243, deadline_ms: 1_700_000_030_000n, drain_grace_ms: 10_000n };
    case 'Drained':
      return { type, open_conns_remaining: 3, accept_closed: true };
    case 'SealRequest':
      return { type, handoff_id: ID };
    case 'SealProgress':
      return { type, shards_sealed: 3, shards_total: 16, last_revision: 123_456_789n };
    case 'SealComplete':
      return { type, handoff_id: ID, last_revision_per_shard: [1n, 200n, 70_000n], data_dir_fingerprint: FINGERPRINT };
    case 'SealFailed':
      return { type, handoff_id: ID, error: 'fsync failed on shard 3', partial_state: 'shards 0-2 sealed' };
    case 'Begin':
      return { type, handoff_id: ID };
    case 'Ready':
      return { type, handoff_id: ID, listening_on: ['http', 'admin'], healthz_ok: true, advertised_revision_per_shard: [1n, 200n, 70_000n] };
    case 'Commit':
      return { type, handoff_id: ID };
    case 'Abort':
      return { type, handoff_id: ID, reason: 'deadline_exceeded: seal took longer than 30000 ms' };
    case 'ResumeAfterAbort':
      return { type, handoff_id: ID };
    case 'Heartbeat':
      return { type, ts_ms: 1_700_000_000_000n };
  }
}

/** Valid values of a kind worth a round trip: boundaries and awkward contents. */
export function edgeValues(kind: FieldKind): unknown[] {
  const str4096 = 'x'.repeat(4096);
  const multibyte4096 = '€'.repeat(1365) + 'a'; // 4095 + 1 bytes
  switch (kind) {
    case 'u16':
      return [0, 1, 127, 128, 255, 256, 0xffff];
    case 'u32':
      return [0, 127, 128, 0xffff, 0x10000, 0xffff_ffff];
    case 'u64':
      return [...U64_EDGES, 127n, 128n, 0xffffn, 0x1_0000n, 2n ** 53n - 1n, 2n ** 53n];
    case 'bool':
      return [true, false];
    case 'str':
      return ['', 'a', 'x'.repeat(31), 'x'.repeat(32), 'x'.repeat(255), 'x'.repeat(256), str4096, multibyte4096, 'é\u0000\u{1F600}', '\uFEFFstarts with a BOM'];
    case 'id':
      return [new Uint8Array(16), ID, new Uint8Array(16).fill(0xff)];
    case 'build_id':
      return [new Uint8Array(0), BUILD_ID, new Uint8Array(64).fill(7)];
    case 'fingerprint':
      return [FINGERPRINT, new Uint8Array(32)];
    case 'side':
      return ['Incumbent', 'Successor'];
    case 'capabilities':
      return U64_EDGES.map((reserved) => ({ reserved }));
    case 'str_list':
      return [[], ['a'], Array.from({ length: 15 }, (_, i) => `s${i}`), Array.from({ length: 16 }, (_, i) => `s${i}`), Array.from({ length: 64 }, () => str4096)];
    case 'u64_list':
      return [[], [...U64_EDGES], Array.from({ length: 16 }, (_, i) => BigInt(i)), Array.from({ length: 65_536 }, (_, i) => 2n ** 64n - 1n - BigInt(i))];
  }
}

/** `base(type)` with one field replaced. */
export function withField(type: MessageType, name: string, value: unknown): Message {
  return { ...base(type), [name]: value };
}

/** Every message the round trip covers: each type's base, then each field at each of its edge values. */
export function allSamples(): Array<{ label: string; msg: Message }> {
  const out: Array<{ label: string; msg: Message }> = [];
  for (const type of MESSAGE_TYPES) {
    out.push({ label: `${type} base`, msg: base(type) });
    for (const f of SCHEMAS[type]) {
      edgeValues(f.kind).forEach((v, i) => out.push({ label: `${type}.${f.name} edge #${i}`, msg: withField(type, f.name, v) }));
    }
  }
  return out;
}
