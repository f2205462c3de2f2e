import t from 'tap';
import {
  MAX_FRAME,
  MESSAGE_TYPES,
  NIL_ID,
  PROTO_MAX,
  PROTO_MIN,
  SCHEMAS,
  describe,
  idEquals,
  idToString,
  isNilId,
  messageHandoffId,
  newHandoffId,
  shortName,
  uuidToId,
} from '../../src/protocol/index.js';
import { ID, base } from './samples.js';

t.test('constants', (t) => {
  t.equal(PROTO_MIN, 1);
  t.equal(PROTO_MAX, 1);
  t.equal(MAX_FRAME, 1_048_576);
  t.equal(MESSAGE_TYPES.length, 14);
  t.strictSame(MESSAGE_TYPES, ['Hello', 'HelloAck', 'PrepareHandoff', 'Drained', 'SealRequest', 'SealProgress', 'SealComplete', 'SealFailed', 'Begin', 'Ready', 'Commit', 'Abort', 'ResumeAfterAbort', 'Heartbeat']);
  t.end();
});

t.test('the schemas follow the wire table of ARCHITECTURE.md', (t) => {
  const table = Object.fromEntries(MESSAGE_TYPES.map((m) => [m, SCHEMAS[m].map((f) => `${f.name}:${f.kind}`).join(' ')]));
  t.strictSame(table, {
    Hello: 'role:side pid:u32 build_id:build_id proto_min:u16 proto_max:u16 capabilities:capabilities',
    HelloAck: 'proto_version_chosen:u16 handoff_id:id',
    PrepareHandoff: 'handoff_id:id successor_pid:u32 deadline_ms:u64 drain_grace_ms:u64',
    Drained: 'open_conns_remaining:u32 accept_closed:bool',
    SealRequest: 'handoff_id:id',
    SealProgress: 'shards_sealed:u32 shards_total:u32 last_revision:u64',
    SealComplete: 'handoff_id:id last_revision_per_shard:u64_list data_dir_fingerprint:fingerprint',
    SealFailed: 'handoff_id:id error:str partial_state:str',
    Begin: 'handoff_id:id',
    Ready: 'handoff_id:id listening_on:str_list healthz_ok:bool advertised_revision_per_shard:u64_list',
    Commit: 'handoff_id:id',
    Abort: 'handoff_id:id reason:str',
    ResumeAfterAbort: 'handoff_id:id',
    Heartbeat: 'ts_ms:u64',
  });
  t.end();
});

t.test('handoff ids: new, to and from the UUID string form, equality, nil', (t) => {
  const a = newHandoffId();
  const b = newHandoffId();
  t.equal(a.length, 16);
  t.notOk(idEquals(a, b), 'two new ids differ');
  t.equal((a[6]! >> 4) & 0xf, 4, 'a version 4 UUID');
  t.match(idToString(a), /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  t.ok(idEquals(uuidToId(idToString(a)), a), 'string form round-trips');
  t.equal(idToString(ID), '6f1c2e4a-9b3d-4c5e-8f70-1a2b3c4d5e6f');
  t.ok(idEquals(uuidToId('6F1C2E4A9B3D4C5E8F701A2B3C4D5E6F'), ID), 'upper case, no dashes');
  t.throws(() => uuidToId('not-a-uuid'), TypeError);
  t.throws(() => uuidToId('6f1c2e4a-9b3d-4c5e-8f70-1a2b3c4d5e6'), TypeError, 'one digit short');
  const inside = new Uint8Array(20);
  inside.set(ID, 4);
  t.equal(idToString(inside.subarray(4)), idToString(ID), 'a view with an offset prints its own bytes');
  t.notOk(idEquals(ID, ID.subarray(1)), 'different lengths');
  t.notOk(idEquals(ID, Uint8Array.from(ID, (x, i) => (i === 15 ? x ^ 1 : x))), 'last byte differs');
  t.ok(isNilId(NIL_ID));
  t.equal(idToString(NIL_ID), '00000000-0000-0000-0000-000000000000');
  t.notOk(isNilId(ID));
  t.end();
});

t.test('messageHandoffId is the handoff_id of the variants that carry one', (t) => {
  for (const type of MESSAGE_TYPES) {
    const carries = SCHEMAS[type].some((f) => f.name === 'handoff_id');
    t.equal(messageHandoffId(base(type)), carries ? ID : undefined, type);
  }
  t.end();
});

t.test('shortName and describe give one line per message, without bulky fields', (t) => {
  const shorts = MESSAGE_TYPES.map(shortName);
  t.equal(new Set(shorts).size, 14, 'short names are distinct');
  for (const s of shorts) t.match(s, /^[a-z-]+$/);
  t.equal(describe(base('Hello')), 'hello role=Successor pid=4242 proto=1..1');
  t.equal(describe(base('HelloAck')), 'hello-ack v1 id=6f1c2e4a-9b3d-4c5e-8f70-1a2b3c4d5e6f');
  t.equal(describe(base('Abort')), 'abort deadline_exceeded: seal took longer than 30000 ms');
  t.equal(describe(base('Drained')), 'drained remaining=3');
  t.equal(describe(base('SealProgress')), 'seal-progress 3/16');
  t.equal(describe(base('Ready')), 'ready');
  for (const type of MESSAGE_TYPES) t.notMatch(describe(base(type)), /\n/, `${type}: one line`);
  t.end();
});
