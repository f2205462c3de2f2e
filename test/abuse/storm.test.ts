/**
 * Wire abuse that needs volume or time, directed rather than generated: a 100,000-frame heartbeat
 * storm, Hello floods, frames dribbled a byte per 100 ms, the largest frames, and misbehaviour after
 * Commit. Same in-process rig as wire.test.ts (S's real channel and router over real sockets).
 */

import t from 'tap';
import { encodeFrame } from '../../src/protocol/frame.js';
import { MAX_FRAME, idToString, uuidToId, type Message } from '../../src/protocol/messages.js';
import { MESSAGE_TYPES } from '../../src/protocol/schema.js';
import { fromJson, prefix, sampleJson, type AbuseCase, type Step } from './cases.js';
import { GoodPeer, MB, REVS, Rig, Rng, heapAfterGc, helloOf, within, type PeerEnd } from './harness.js';
import { goodHandoff, runCase } from './runner.js';

const rng = new Rng(1);

function abuse(category: string, state: AbuseCase['state'], steps: Step[], expect: AbuseCase['expect'], note = category): AbuseCase {
  return { n: 0, category, state, steps, expect, abortRequired: expect !== 'committed', exitOnAbort: false, ignoreTerm: false, note };
}

const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

t.test('a 100,000-frame heartbeat storm is legal: S keeps up, stays bounded, and the handoff commits', async (t) => {
  const rig = await Rig.start({ over: { heartbeatTimeoutMs: 30_000 } });
  t.teardown(() => rig.stop());
  const heap0 = heapAfterGc();
  const storm = sampleJson('Heartbeat', rng);
  const t0 = performance.now();
  // In drain (the incumbent holds Drained), in 20 writes of 5,000 frames, then a good successor.
  const steps: Step[] = [...prefix('drain'), ...Array.from({ length: 20 }, (): Step => ({ op: 'msg', msg: storm, count: 5000 })), { op: 'good' }];
  const out = await runCase(rig, abuse('heartbeat storm', 'drain', steps, 'committed'), { boundMs: 60_000 });
  const ms = performance.now() - t0;
  t.same(out.failures, [], 'the storm case passes every check');
  t.equal(out.record?.outcome, 'committed');
  const heap1 = heapAfterGc();
  t.ok(heap1 - heap0 < 16 * 1024 * 1024, `S heap after GC ${MB(heap0)} → ${MB(heap1)}`);
  // The same storm before Hello, then a protocol fault: S still reads every frame in order.
  const out2 = await runCase(rig, abuse('heartbeat storm then fault', 'hello', [{ op: 'msg', msg: storm, count: 100_000, chunks: 50 }, { op: 'raw', hex: '02000000' }], 'frame_malformed'), { boundMs: 60_000 });
  t.same(out2.failures, [], 'a fault after 100,000 heartbeats is still caught and told');
  t.equal((await goodHandoff(rig)).outcome, 'committed', 'a good handoff commits after the storms');
  const heap2 = heapAfterGc();
  t.comment(`figures: heartbeat storm 100,000 frames (${MB(100_000 * encodeFrame(sampleJsonMsg(), 1).length)}) in ${(ms / 1000).toFixed(2)} s; S heap after GC ${MB(heap0)} → ${MB(heap1)} → ${MB(heap2)}`);
});

function sampleJsonMsg(): Message {
  return { type: 'Heartbeat', ts_ms: BigInt(Date.now()) };
}

t.test('Hello floods of up to 20,000 frames: the second Hello is the violation', async (t) => {
  const rig = await Rig.start();
  t.teardown(() => rig.stop());
  for (const [count, chunks] of [
    [2, undefined],
    [1000, 1],
    [20_000, 40],
  ] as const) {
    const out = await runCase(rig, abuse('Hello flood', 'hello', [{ op: 'msg', msg: sampleJson('Hello', rng), count, ...(chunks ? { chunks } : {}) }], 'unexpected_message', `${count} Hellos`), { boundMs: 30_000 });
    t.same(out.failures, [], `${count} Hellos`);
  }
  t.equal((await goodHandoff(rig)).outcome, 'committed');
});

t.test('frames dribbled a byte per 100 ms (each bounded by S\'s own timers)', async (t) => {
  // Three supervisors at once: each dribble costs wall time, not work.
  const helloTimeoutMs = 1500;
  const [a, b, c] = await Promise.all([Rig.start({ over: { helloTimeoutMs } }, 200_000), Rig.start({ over: { heartbeatTimeoutMs: 1000, heartbeatMs: 200, drainGraceMs: 10_000 } }, 300_000), Rig.start({}, 400_000)]);
  t.teardown(async () => {
    for (const r of [a, b, c]) await r.stop();
  });
  const hello = encodeFrame(helloOf(0, 'Successor'), 1);
  const t0 = performance.now();
  const [slowHello, slowHeartbeat, slowBad] = await Promise.all([
    // A Hello of ~60 bytes takes ~6 s at this rate: the hello timeout ends it, with an Abort.
    runCase(a, abuse('dribbled Hello', 'hello', [{ op: 'dribble', hex: hex(hello), everyMs: 100 }], 'deadline_exceeded'), { boundMs: 20_000 }),
    // A legal Heartbeat dribbled over ~2 s, twice the heartbeat timeout: a byte is a sign of life.
    runCase(b, abuse('dribbled Heartbeat', 'drain', [...prefix('drain'), { op: 'dribble', hex: hex(encodeFrame(sampleJsonMsg(), 1)), everyMs: 100 }, { op: 'good' }], 'committed'), { boundMs: 20_000 }),
    // frame_len 2, dribbled: refused at its fourth byte.
    runCase(c, abuse('dribbled frame_len 2', 'begin', [...prefix('begin'), { op: 'dribble', hex: '0200000001000000', everyMs: 100 }], 'frame_malformed'), { boundMs: 20_000 }),
  ]);
  const ms = performance.now() - t0;
  t.same(slowHello.failures, [], 'dribbled Hello: deadline_exceeded at the hello timeout, Abort told');
  t.ok((slowHello.record?.total_ms ?? 0) < helloTimeoutMs + 1000, `ended by the hello timeout (${slowHello.record?.total_ms} ms)`);
  t.same(slowHeartbeat.failures, [], 'dribbled Heartbeat: reassembled, no heartbeat_timeout, committed');
  t.same(slowBad.failures, [], 'dribbled frame_len 2: frame_malformed, Abort told');
  t.ok(slowBad.ms < 2000, `refused at its header (${slowBad.ms.toFixed(0)} ms)`);
  for (const r of [a, b, c]) t.equal((await goodHandoff(r)).outcome, 'committed');
  t.comment(`figures: dribble cases ${(ms / 1000).toFixed(1)} s in all`);
});

t.test('the largest frames: exactly MAX_FRAME is read and judged, one byte more is refused unread', async (t) => {
  const rig = await Rig.start();
  t.teardown(() => rig.stop());
  const heap0 = heapAfterGc();
  // A full 1 MiB frame whose payload is a str of the wrong kind: read whole, then malformed_message.
  const body = Buffer.alloc(MAX_FRAME - 2, 0x61);
  body[0] = 0xdb;
  body.writeUInt32BE(MAX_FRAME - 2 - 5, 1);
  const full = Buffer.concat([Buffer.from([0, 0, 0x10, 0, 1, 0]), body]);
  t.equal(full.readUInt32LE(0), MAX_FRAME);
  let out = await runCase(rig, abuse('MAX_FRAME garbage', 'drain', [...prefix('drain'), { op: 'raw', hex: hex(full), chunks: 16 }], 'malformed_message'));
  t.same(out.failures, [], 'a MAX_FRAME frame of garbage: malformed_message');
  // A valid Ready at the revision-list limit (65,536 u64s): decoded, then judged on its revisions.
  const revs = Array.from({ length: 65_536 }, (_, i) => BigInt(i));
  const ready = (id: string): Message => ({ type: 'Ready', handoff_id: uuidToId(id), listening_on: [], healthz_ok: true, advertised_revision_per_shard: revs });
  t.ok(encodeFrame(ready('00000000-0000-0000-0000-000000000000'), 1).length < MAX_FRAME + 4);
  out = await runCase(rig, abuse('huge Ready', 'begin', [...prefix('begin'), { op: 'msg', msg: { type: 'Ready', handoff_id: '$id', listening_on: [], healthz_ok: true, advertised_revision_per_shard: revs.map((r) => ({ $u64: r.toString() })) } }], 'revision_mismatch'));
  t.same(out.failures, [], 'a Ready with 65,536 revisions: revision_mismatch');
  const over = Buffer.alloc(4);
  over.writeUInt32LE(MAX_FRAME + 1, 0);
  out = await runCase(rig, abuse('MAX_FRAME + 1', 'begin', [...prefix('begin'), { op: 'raw', hex: hex(Buffer.concat([over, Buffer.alloc(64 * 1024)])) }], 'frame_too_large'));
  t.same(out.failures, [], 'MAX_FRAME + 1 followed by 64 KiB: frame_too_large before the payload');
  t.equal((await goodHandoff(rig)).outcome, 'committed');
  const heap1 = heapAfterGc();
  t.ok(heap1 - heap0 < 16 * 1024 * 1024, `S heap after GC ${MB(heap0)} → ${MB(heap1)}`);
});

/**
 * After Ready, S sends Commit and the incumbent retires: the successor is about to be the incumbent.
 * A protocol fault of its own then must not leave S with an incumbent it cannot drive. Whatever S
 * does with it (kill it and start a fresh incumbent, or keep it while its channel works), the next
 * handoff must commit, and an offender whose channel S closes reads an Abort first.
 *   in commit: the fault follows Ready in the same write, so S reads it before the incumbent can exit;
 *   at rest:   the fault comes after the handoff was recorded, from the new incumbent.
 */
t.test('a successor that misbehaves after Ready does not leave S with an incumbent it cannot drive', async (t) => {
  const rig = await Rig.start({ over: { drainGraceMs: 500 } });
  t.teardown(() => rig.stop());
  const faults: Array<[string, (p: PeerEnd) => Buffer]> = [
    ...MESSAGE_TYPES.filter((ty) => ty !== 'Heartbeat' && ty !== 'Ready').map((ty): [string, (p: PeerEnd) => Buffer] => [ty, (p) => encodeFrame(fromJson(sampleJson(ty, rng), { id: p.handoffId, pid: p.pid }) as Message, 1)]),
    ['Ready again', (p) => encodeFrame(fromJson(sampleJson('Ready', rng), { id: p.handoffId, pid: p.pid }) as Message, 1)],
    ['frame_len 0', () => Buffer.alloc(4)],
    ['a header version of 2', () => {
      const f = encodeFrame(sampleJsonMsg(), 1);
      f.writeUInt16LE(2, 4);
      return f;
    }],
  ];
  let drivable = 0;
  let cases = 0;
  for (const when of ['in commit', 'at rest'] as const) {
    for (const [name, fault] of faults) {
      cases++;
      const label = `${name} ${when}`;
      let offender: PeerEnd | undefined;
      let recorded!: () => void;
      const afterRecord = new Promise<void>((r) => (recorded = r));
      rig.onLaunch = (peer, spec) => {
        if (spec.role !== 'successor') return false;
        offender = peer;
        // After its fault it behaves (a good incumbent if S keeps it): a failure is S's alone.
        const g = new GoodPeer(peer);
        g.behaving = false;
        // After Ready it holds the lock and serves: losing its channel to S, it goes on serving (as the
        // library does), so S must deal with it, not wait for it to leave.
        g.exitOnEof = false;
        rig.good.set(peer.pid, g);
        void peer.attached.then(async () => {
          peer.send(helloOf(peer.pid, 'Successor'));
          const begin = await peer.waitFor('Begin');
          const ready = encodeFrame({ type: 'Ready', handoff_id: begin.handoff_id, listening_on: [], healthz_ok: true, advertised_revision_per_shard: [...REVS] }, 1);
          if (when === 'in commit') peer.write(Buffer.concat([ready, fault(peer)]));
          else {
            peer.write(ready);
            await afterRecord;
            peer.write(fault(peer));
          }
          g.behaving = true;
        });
        return true;
      };
      const rec = await within(rig.sup.upgrade({}), 15_000, `${label}: the record`);
      rig.onLaunch = undefined;
      recorded();
      t.equal(rec.outcome, 'committed', `${label}: the handoff committed`);
      // S has the fault once the offender's bytes are written: at rest, wait for them to be sent.
      if (when === 'at rest') await within(new Promise<void>((r) => (offender?.sock?.writableLength === 0 ? setImmediate(r) : offender?.sock?.once('drain', () => setImmediate(r)))), 5000, 'the fault written');
      const next = await within(goodHandoffWhenServing(rig), 20_000, `${label}: the next handoff`).catch((err: Error) => err);
      const ok = !(next instanceof Error) && next.outcome === 'committed';
      if (ok) drivable++;
      t.ok(ok, `${label}: the next handoff commits`, { got: next instanceof Error ? next.message : { outcome: next.outcome, reason: next.reason } });
      const seen = offender?.seen ?? [];
      const eofAt = seen.findIndex((s) => s.kind === 'eof');
      const abortAt = seen.findIndex((s) => s.kind === 'msg' && s.msg.type === 'Abort');
      const committedAway = offender !== undefined && seen.filter((s) => s.kind === 'msg' && s.msg.type === 'Commit').length > 0;
      t.comment(`  ${label}: offender read ${seen.map((s) => (s.kind === 'msg' ? s.msg.type : s.kind)).join(', ')}; signals ${offender?.proc.signals.join(',') || 'none'}`);
      // In commit the handoff is in flight: an offender whose channel S closed read an Abort naming it
      // first (unless it was handed off and left normally). At rest there is no handoff to name.
      if (when === 'in commit' && eofAt >= 0 && !committedAway) t.ok(abortAt >= 0 && abortAt < eofAt, `${label}: S closed the offender's channel; it read an Abort first`);
      const a = seen[abortAt];
      if (a?.kind === 'msg' && a.msg.type === 'Abort') t.equal(idToString(a.msg.handoff_id), rec.handoff_id, `${label}: the Abort names this handoff`);
      // Start the next fault from a good incumbent, whatever S made of this one.
      if (offender?.proc.alive && rig.incumbentPid() === offender.pid && !ok) {
        const gone = offender.pid;
        offender.proc.exit(1, null);
        await within(servingOtherThan(rig, gone), 10_000, 'a fresh incumbent');
      }
    }
  }
  t.comment(`figures: ${cases} faults after Ready, the next handoff committed after ${drivable}`);
});

/** Resolves once S serves with an incumbent other than `pid` (polled: S has no event for a restart's end). */
function servingOtherThan(rig: Rig, pid: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      if (rig.sup.state === 'serving' && rig.incumbentPid() !== pid) {
        clearInterval(iv);
        resolve();
      }
    }, 10);
  });
}

/** A good handoff once S serves again (it may be restarting an incumbent it killed). */
async function goodHandoffWhenServing(rig: Rig): ReturnType<typeof goodHandoff> {
  if (rig.sup.state !== 'serving') await servingOtherThan(rig, -1);
  return goodHandoff(rig);
}
