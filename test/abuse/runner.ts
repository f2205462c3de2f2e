/**
 * Plays generated abuse cases against the in-process rig: one handoff attempt per case, the
 * successor misbehaving by script, the incumbent a well-behaved peer held in the case's phase.
 * Every check of a case becomes a failure line; nothing here throws for a misbehaving S.
 */

import { encode as mpEncode } from '@msgpack/msgpack';
import { encodeFrame } from '../../src/protocol/frame.js';
import { idToString, uuidToId, type Message } from '../../src/protocol/messages.js';
import type { HandoffRecord } from '../../src/supervisor/types.js';
import { fromJson, type AbuseCase, type Ctx, type Json, type Step } from './cases.js';
import { GoodPeer, REVS, helloOf, within, type PeerEnd, type Rig } from './harness.js';

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** A frame for `msg` under `version`; messages our encoder refuses are written with a plain MessagePack encoder. */
export function frameFor(msg: Message, version: number): Buffer {
  try {
    return encodeFrame(msg, version);
  } catch {
    const payload = mpEncode(msg, { useBigInt64: true });
    const h = Buffer.alloc(6);
    h.writeUInt32LE(payload.length + 2, 0);
    h.writeUInt16LE(version, 4);
    return Buffer.concat([h, Buffer.from(payload)]);
  }
}

async function writeSplit(peer: PeerEnd, bytes: Buffer, chunks: number | undefined): Promise<void> {
  if (!chunks || chunks < 2 || bytes.length < 2) {
    peer.write(bytes);
    return;
  }
  const size = Math.max(1, Math.ceil(bytes.length / chunks));
  for (let i = 0; i < bytes.length; i += size) {
    peer.write(bytes.subarray(i, i + size));
    // A separate read on S's side for each piece.
    await tick();
  }
}

export interface StepEnv {
  peer: PeerEnd;
  good: GoodPeer;
  ctx: Ctx;
  /** Resolves when the incumbent was asked to seal. */
  sealing: Promise<void>;
}

/** Plays `steps` as the successor. Returns when the script is done (or never, if S never answers a wait). */
export async function runSteps(steps: readonly Step[], env: StepEnv): Promise<void> {
  const { peer, good, ctx } = env;
  let helloSent = false;
  for (const step of steps) {
    switch (step.op) {
      case 'hello': {
        const over = step.over !== undefined ? (fromJson(step.over, ctx) as Partial<Extract<Message, { type: 'Hello' }>>) : {};
        const hello = helloOf(peer.pid, 'Successor', over);
        peer.write(frameFor(hello, step.version ?? hello.proto_min));
        helloSent = true;
        break;
      }
      case 'wait':
        await peer.waitFor(step.type);
        break;
      case 'gate':
        await env.sealing;
        break;
      case 'msg': {
        const msg = fromJson(step.msg, ctx) as Message;
        if (msg.type === 'Hello') helloSent = true;
        const one = frameFor(msg, step.version ?? (msg.type === 'Hello' ? msg.proto_min : peer.version));
        const bytes = step.count !== undefined && step.count > 1 ? Buffer.concat(Array.from({ length: step.count }, () => one)) : one;
        await writeSplit(peer, bytes, step.chunks);
        break;
      }
      case 'raw':
        await writeSplit(peer, Buffer.from(step.hex, 'hex'), step.chunks);
        break;
      case 'dribble': {
        const bytes = Buffer.from(step.hex, 'hex');
        for (let i = 0; i < bytes.length && peer.writable; i++) {
          peer.write(bytes.subarray(i, i + 1));
          if (i < bytes.length - 1) await sleep(step.everyMs);
        }
        break;
      }
      case 'end':
        peer.end();
        break;
      case 'good': {
        good.behaving = true;
        // From here it is a good successor, and maybe the next incumbent: it leaves only on Commit.
        good.exitOnAbort = false;
        peer.proc.ignoreTerm = false;
        if (!helloSent) good.sayHello();
        const begin = peer.messages().find((m) => m.type === 'Begin');
        if (begin?.type === 'Begin') peer.send({ type: 'Ready', handoff_id: begin.handoff_id, listening_on: [], healthz_ok: true, advertised_revision_per_shard: [...REVS] });
        break;
      }
    }
  }
}

export interface CaseOutcome {
  failures: string[];
  record: HandoffRecord | undefined;
  /** The offender read an Abort for this handoff before end of stream. */
  abortBeforeEof: boolean;
  abortsSent: number;
  ms: number;
}

export interface RunOptions {
  /** Upper bound for each wait of the case (a bound, not a wait). */
  boundMs?: number;
}

/** Where S was when it aborted, by its own record: the phase before `rollback`. */
function abortPhase(rec: HandoffRecord): string | undefined {
  const i = rec.phases.findIndex((p) => p.phase === 'rollback');
  return i > 0 ? rec.phases[i - 1]?.phase : undefined;
}

/** Runs one case: one handoff attempt with `c`'s successor; returns what went wrong. */
export async function runCase(rig: Rig, c: AbuseCase, opts: RunOptions = {}): Promise<CaseOutcome> {
  const t0 = performance.now();
  const failures: string[] = [];
  const fail = (what: string): void => {
    failures.push(what);
  };
  const bound = opts.boundMs ?? 15_000;
  const sup = rig.sup;
  const before = sup.status();
  const inc = rig.incumbent();
  const incPid = inc.peer.pid;
  // Park the handoff where the case acts: the incumbent holds back its answer.
  inc.hold = { drained: c.state === 'hello' || c.state === 'drain', sealed: c.state === 'seal' };
  let onSealRequest!: () => void;
  const sealing = new Promise<void>((r) => (onSealRequest = r));
  const incSeen: Message[] = [];
  const onInc = (m: Message): void => {
    incSeen.push(m);
    if (m.type === 'SealRequest') onSealRequest();
  };
  inc.peer.on('message', onInc);

  let offender: PeerEnd | undefined;
  let offGood: GoodPeer | undefined;
  rig.onLaunch = (peer, spec) => {
    if (spec.role !== 'successor' || offender) return false;
    offender = peer;
    peer.proc.ignoreTerm = c.ignoreTerm;
    offGood = new GoodPeer(peer);
    offGood.behaving = false;
    offGood.exitOnAbort = c.exitOnAbort;
    // A successor that closed its side stays alive: S must notice a live process it cannot talk to.
    offGood.exitOnEof = c.expect !== 'peer_closed';
    rig.good.set(peer.pid, offGood);
    return true;
  };
  let record: HandoffRecord | undefined;
  let abortBeforeEof = false;
  let abortsSent = 0;
  try {
    const recP = sup.upgrade({});
    const inflight = sup.status().inflight;
    if (!offender || !offGood || !inflight) throw new Error('upgrade did not launch a successor');
    const id = uuidToId(inflight.handoff_id);
    const peer = offender;
    const ctx: Ctx = { id, pid: peer.pid, prev: rig.lastId };
    await within(peer.attached, bound, 'the successor socket to connect');
    const script = runSteps(c.steps, { peer, good: offGood, ctx, sealing }).then(() => {
      // A script within the protocol ends with a good successor: the incumbent may finish its part.
      if (c.expect === 'committed') inc.release();
    });
    script.catch((err: unknown) => fail(`script threw: ${String(err)}`));
    record = await within(recP, bound, `the handoff record (expected ${c.expect})`);
    // An aborted successor is reaped, and S closes its channel; a committed one is the incumbent now.
    if (c.expect !== 'committed' || record.outcome !== 'committed') await within(peer.closed, bound, 'S to close the successor channel');

    // What S recorded.
    if (c.expect === 'committed') {
      if (record.outcome !== 'committed') fail(`outcome ${record.outcome} (${record.reason ?? ''}), expected committed`);
    } else {
      if (record.outcome !== 'aborted') fail(`outcome ${record.outcome}, expected aborted`);
      if (record.reason_kind !== c.expect) fail(`reason_kind ${String(record.reason_kind)} (${record.reason ?? ''}), expected ${c.expect}`);
    }

    // What the offender read.
    const seen = peer.seen;
    if (seen.some((s) => s.kind === 'garbage')) fail('S sent bytes that do not decode');
    const eofAt = seen.findIndex((s) => s.kind === 'eof');
    const aborts = seen.filter((s) => s.kind === 'msg' && s.msg.type === 'Abort');
    abortsSent = aborts.length;
    const firstAbort = seen.findIndex((s) => s.kind === 'msg' && s.msg.type === 'Abort');
    abortBeforeEof = firstAbort >= 0 && (eofAt < 0 || firstAbort < eofAt);
    if (c.expect !== 'committed' && c.abortRequired) {
      if (!abortBeforeEof) fail(`no Abort before end of stream (S sent: ${seen.map((s) => (s.kind === 'msg' ? s.msg.type : s.kind)).join(', ') || 'nothing'})`);
      else {
        const a = seen[firstAbort];
        if (a?.kind === 'msg' && a.msg.type === 'Abort') {
          if (idToString(a.msg.handoff_id) !== inflight.handoff_id) fail(`Abort names ${idToString(a.msg.handoff_id)}, not this handoff`);
          if (!a.msg.reason.startsWith(`${c.expect}: `)) fail(`Abort reason ${JSON.stringify(a.msg.reason)} does not start with "${c.expect}: "`);
          if (a.version !== 1) fail(`Abort under header version ${a.version}`);
        }
      }
      if (aborts.length > 1) fail(`${aborts.length} Aborts sent`);
    }
    if (c.expect === 'committed' && aborts.length > 0) fail('Abort sent to a successor that committed');

    // The incumbent: still serving, untouched, and given back its role the way the table says.
    const now = sup.status();
    if (now.state !== 'serving') fail(`S state ${now.state} after the case`);
    if (now.inflight !== null) fail('a handoff is still in flight after its record');
    if (now.incumbent_restarts !== before.incumbent_restarts) fail(`incumbent restarted (${before.incumbent_restarts} → ${now.incumbent_restarts})`);
    if (c.expect === 'committed') {
      if (now.incumbent?.pid !== peer.pid) fail(`incumbent is ${String(now.incumbent?.pid)}, expected the successor ${peer.pid}`);
      if (!incSeen.some((m) => m.type === 'Commit')) fail('the old incumbent got no Commit');
    } else {
      if (now.incumbent?.pid !== incPid) fail(`incumbent is ${String(now.incumbent?.pid)}, expected ${incPid}`);
      if (inc.peer.proc.signals.length > 0 || !inc.peer.proc.alive) fail(`incumbent signalled: ${inc.peer.proc.signals.join(',')}`);
      if (!inc.peer.writable) fail('the incumbent channel was closed');
      const phase = abortPhase(record);
      const want = phase === 'hello' ? undefined : phase === 'begin' ? 'ResumeAfterAbort' : 'Abort';
      if (want !== undefined) {
        const got = await within(
          new Promise<Message>((resolve) => {
            const hit = incSeen.find((m) => m.type === want);
            if (hit) return resolve(hit);
            const fn = (m: Message): void => {
              if (m.type !== want) return;
              inc.peer.off('message', fn);
              resolve(m);
            };
            inc.peer.on('message', fn);
          }),
          bound,
          `${want} to the incumbent`,
        ).catch(() => undefined);
        if (!got) fail(`the incumbent got no ${want} (aborted in ${phase ?? '?'})`);
      }
      const stray = incSeen.filter((m) => m.type !== 'Heartbeat' && m.type !== 'HelloAck' && m.type !== 'PrepareHandoff' && m.type !== 'SealRequest' && m.type !== want);
      if (stray.length > 0) fail(`the incumbent also got ${stray.map((m) => m.type).join(', ')} (aborted in ${phase ?? '?'})`);
      if (peer.proc.alive) fail('the successor double was never reaped');
    }
  } catch (err) {
    fail(err instanceof Error ? err.message : String(err));
  } finally {
    if (record) rig.lastId = uuidToId(record.handoff_id);
    inc.peer.off('message', onInc);
    inc.release();
    rig.onLaunch = undefined;
    rig.prune();
  }
  return { failures, record, abortBeforeEof, abortsSent, ms: performance.now() - t0 };
}

/** A handoff with a well-behaved successor; returns its record (must commit). */
export async function goodHandoff(rig: Rig, boundMs = 15_000): Promise<HandoffRecord> {
  rig.onLaunch = undefined;
  const rec = await within(rig.sup.upgrade({}), boundMs, 'a good handoff');
  rig.lastId = uuidToId(rec.handoff_id);
  rig.prune();
  return rec;
}

export function describeCase(c: AbuseCase, seed: number): string {
  return `#${c.n} [seed ${seed}] ${c.category} in ${c.state}: ${c.note} → expect ${c.expect}`;
}

export type { Json };
