/**
 * Wire abuse from the other side: the incumbent sends what it must not (every message type in every
 * phase where it is wrong, and framing faults), at rest and in each phase of a handoff, with a
 * well-behaved successor. The failure table's row: "a protocol violation by the incumbent: S can no
 * longer drive the incumbent, so it is handled as crashed: killed and reaped, then roll
 * forward (in a handoff) or a cold restart (at rest)". Same in-process rig as wire.test.ts.
 *
 * Per case: S keeps running; the incumbent is killed; in a handoff it still commits (the successor
 * serves), rolled forward with the incumbent's violation as the reason before Begin; at rest a
 * fresh incumbent serves; the incumbent, when a handoff is in flight and its channel is closed by
 * S, reads an Abort first.
 */

import t from 'tap';
import { encodeFrame } from '../../src/protocol/frame.js';
import { idToString, type Message, type MessageType } from '../../src/protocol/messages.js';
import { MESSAGE_TYPES } from '../../src/protocol/schema.js';
import { fromJson, sampleJson } from './cases.js';
import { GoodPeer, REVS, Rig, Rng, helloOf, runSeed, within, type PeerEnd } from './harness.js';

const seed = runSeed();
const rng = new Rng(seed);
t.comment(`incumbent abuse seed ${seed}`);

type Phase = 'rest' | 'hello' | 'drain' | 'seal' | 'begin';

/** What the incumbent may send in each phase (anything else is its violation). Heartbeat is always fine. */
const ALLOWED: Record<Phase, ReadonlySet<MessageType>> = {
  rest: new Set(['Heartbeat']),
  // Not told anything yet; its own Abort is a legal refusal to take part.
  hello: new Set(['Heartbeat', 'Abort']),
  drain: new Set(['Heartbeat', 'Abort', 'Drained']),
  seal: new Set(['Heartbeat', 'Abort', 'SealProgress', 'SealComplete', 'SealFailed']),
  begin: new Set(['Heartbeat', 'Abort']),
};

interface Fault {
  name: string;
  bytes: (o: PeerEnd, id: Uint8Array | undefined) => Buffer;
  kind: string;
}

function faults(phase: Phase): Fault[] {
  const out: Fault[] = MESSAGE_TYPES.filter((ty) => !ALLOWED[phase].has(ty)).map((ty) => ({
    name: ty,
    bytes: (o, id) => encodeFrame(fromJson(sampleJson(ty, rng), { id, pid: o.pid }) as Message, 1),
    // A message with another handoff id is refused as such before its type is looked at.
    kind: 'unexpected_message',
  }));
  out.push({ name: 'frame_len 0', bytes: () => Buffer.alloc(4), kind: 'frame_malformed' });
  out.push({ name: 'frame_len 4 GiB - 1', bytes: () => Buffer.from('ffffffff', 'hex'), kind: 'frame_too_large' });
  out.push({
    name: 'header version 2',
    bytes: () => {
      const f = encodeFrame({ type: 'Heartbeat', ts_ms: 1n }, 1);
      f.writeUInt16LE(2, 4);
      return f;
    },
    kind: 'version_mismatch',
  });
  return out;
}

t.test('an incumbent that breaks the protocol is killed; the handoff rolls forward or S cold-starts', async (t) => {
  const rig = await Rig.start({ over: { restartInitialMs: 5, restartMaxMs: 20 } });
  t.teardown(() => rig.stop());
  const results = new Map<string, { cases: number; failed: number; examples: string[]; abortBeforeEof: number; closedByS: number }>();
  let total = 0;
  for (const phase of ['rest', 'hello', 'drain', 'seal', 'begin'] as const) {
    for (const f of faults(phase)) {
      total++;
      const failures: string[] = [];
      const inc = rig.incumbent();
      const o = inc.peer;
      const restarts0 = rig.sup.status().incumbent_restarts;
      // What the incumbent read before this case (as an earlier successor, say) does not count.
      const seen0 = o.seen.length;
      let n: PeerEnd | undefined;
      let currentId: string | undefined;
      try {
        if (phase === 'rest') {
          o.write(f.bytes(o, undefined));
          await within(new Promise<void>((r) => o.proc.once('exit', () => r())), 5000, 'S to kill the incumbent');
          await within(servingWithout(rig, o.pid), 5000, 'a fresh incumbent');
          if (rig.sup.status().incumbent_restarts !== restarts0 + 1) failures.push('no cold restart counted');
        } else {
          inc.hold = { drained: phase === 'drain', sealed: phase === 'seal' };
          const oExited = new Promise<void>((r) => o.proc.once('exit', () => r()));
          let acted!: () => void;
          const actedP = new Promise<void>((r) => (acted = r));
          rig.onLaunch = (peer, spec) => {
            if (spec.role !== 'successor') return false;
            n = peer;
            const g = new GoodPeer(peer);
            g.behaving = false;
            rig.good.set(peer.pid, g);
            void peer.attached.then(async () => {
              // In `hello` the incumbent acts before the successor says anything.
              if (phase !== 'hello') peer.send(helloOf(peer.pid, 'Successor'));
              else await oExited;
              if (phase === 'hello') peer.send(helloOf(peer.pid, 'Successor'));
              const begin = await peer.waitFor('Begin');
              // In `begin`, Ready waits until S has dealt with the incumbent.
              if (phase === 'begin') await oExited;
              g.behaving = true;
              peer.send({ type: 'Ready', handoff_id: begin.handoff_id, listening_on: [], healthz_ok: true, advertised_revision_per_shard: [...REVS] });
            });
            return true;
          };
          const recP = rig.sup.upgrade({});
          const idStr = rig.sup.status().inflight?.handoff_id;
          currentId = idStr;
          const id = idStr ? Uint8Array.from(Buffer.from(idStr.replace(/-/g, ''), 'hex')) : undefined;
          // Reach the phase, then misbehave.
          if (phase === 'drain') await o.next('PrepareHandoff');
          if (phase === 'seal') await o.next('SealRequest');
          if (phase === 'begin') await within(new Promise<void>((r) => (n ? void n.waitFor('Begin').then(() => r()) : r())), 5000, 'Begin');
          o.write(f.bytes(o, id));
          acted();
          await actedP;
          const rec = await within(recP, 10_000, 'the record');
          rig.onLaunch = undefined;
          if (rec.outcome !== 'committed') failures.push(`outcome ${rec.outcome} (${rec.reason ?? ''}), expected committed (roll forward)`);
          if (phase !== 'begin') {
            if (!rec.rolled_forward) failures.push('not rolled forward');
            if (rec.reason_kind !== f.kind) failures.push(`reason_kind ${String(rec.reason_kind)}, expected ${f.kind}`);
          }
          if (o.proc.alive) failures.push('the incumbent lives');
          if (rig.incumbentPid() !== n?.pid) failures.push(`incumbent ${String(rig.incumbentPid())}, expected the successor`);
        }
        await within(o.closed, 5000, 'S to close the incumbent channel');
      } catch (err) {
        failures.push(err instanceof Error ? err.message : String(err));
      }
      rig.onLaunch = undefined;
      const seen = o.seen.slice(seen0);
      const eofAt = seen.findIndex((s) => s.kind === 'eof');
      const abortAt = seen.findIndex((s) => s.kind === 'msg' && s.msg.type === 'Abort');
      const key = phase;
      const r = results.get(key) ?? { cases: 0, failed: 0, examples: [], abortBeforeEof: 0, closedByS: 0 };
      r.cases++;
      if (eofAt >= 0) r.closedByS++;
      if (abortAt >= 0 && (eofAt < 0 || abortAt < eofAt)) r.abortBeforeEof++;
      // Once told of the handoff (PrepareHandoff, from drain on) the incumbent is a party of it: told
      // before S closes its channel. Any Abort it reads names this handoff, never an earlier one.
      if (phase !== 'rest' && phase !== 'hello' && eofAt >= 0 && !(abortAt >= 0 && abortAt < eofAt)) failures.push(`no Abort before end of stream (read ${seen.map((s) => (s.kind === 'msg' ? s.msg.type : s.kind)).join(', ')})`);
      const a = seen[abortAt];
      if (a?.kind === 'msg' && a.msg.type === 'Abort' && idToString(a.msg.handoff_id) !== currentId) failures.push(`the Abort names ${idToString(a.msg.handoff_id)}, not ${currentId ?? 'a handoff in flight'}`);
      if (rig.sup.state === 'stopped') failures.push('S stopped');
      if (failures.length > 0) {
        r.failed++;
        if (r.examples.length < 4) r.examples.push(`${f.name} in ${phase}: ${failures.join('; ')}`);
      }
      results.set(key, r);
      if (rig.sup.state !== 'serving') await within(servingWithout(rig, -1), 5000, 'S serving').catch(() => undefined);
      rig.prune();
    }
  }
  for (const [phase, r] of results) t.equal(r.failed, 0, `incumbent faults in ${phase}: ${r.cases} cases`, { examples: r.examples });
  const last = await within(rig.sup.upgrade({}), 10_000, 'a final good handoff');
  t.equal(last.outcome, 'committed', 'a good handoff commits after them');
  t.comment(`figures: ${total} incumbent faults; ${[...results].map(([p, r]) => `${p}: ${r.cases} cases, ${r.failed} failed, channel closed by S ${r.closedByS}, Abort before EOF ${r.abortBeforeEof}`).join('; ')}`);
});

/** Resolves once S serves with an incumbent other than `pid`. */
function servingWithout(rig: Rig, pid: number): Promise<void> {
  return new Promise<void>((resolve) => {
    const iv = setInterval(() => {
      if (rig.sup.state === 'serving' && rig.incumbentPid() !== pid) {
        clearInterval(iv);
        resolve();
      }
    }, 5);
  });
}
