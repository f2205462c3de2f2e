/**
 * Wire abuse end to end: S spawns real successor processes (test/fixtures/abuse-successor.mjs) that
 * play generated abuse scripts on their real control socketpair, against a real kv incumbent that
 * drains, seals, and resumes for real. Bounded in count and time.
 *
 * Per case: S records the right reason_kind; the fixture read Abort{id, "<kind>: …"} before end of
 * stream; the fixture was reaped; the kv incumbent is the same process (no restart), answers, and
 * keeps every acknowledged write. S's heap after GC is bounded; a good kv handoff commits at the end.
 *
 *   ABUSE_SEED=<n>       replay (the seed is printed first)
 *   ABUSE_E2E_CASES=<n>  how many generated cases (default 200)
 */

import fs from 'node:fs';
import path from 'node:path';
import t from 'tap';
import type { Supervisor } from '../../src/supervisor/supervisor.js';
import type { HandoffRecord } from '../../src/supervisor/types.js';
import { ROOT, cleanup, info, isAlive, makeEnv, portOf, request, startSupervisor, upgrade, type Env } from '../supervisor/harness.js';
import { generate, prefix, sampleJson, type AbuseCase, type Step } from './cases.js';
import { MB, Rng, heapAfterGc, runSeed, within } from './harness.js';
import { describeCase } from './runner.js';

const FIXTURE = path.join(ROOT, 'test/fixtures/abuse-successor.mjs');
const seed = runSeed();
const CASES = Number(process.env['ABUSE_E2E_CASES'] ?? 300);
/** Cases always run, whatever the machine's load. */
const MIN_CASES = 100;
/** Past MIN_CASES the generated run stops at this (the file must stay within ~2 minutes). */
const RUN_BUDGET_MS = 75_000;

t.comment(`e2e wire abuse seed ${seed} (replay with ABUSE_SEED=${seed})`);

interface ReportLine {
  ev: string;
  type?: string;
  id?: string;
  reason?: string;
  version?: number;
}

function readReport(p: string): ReportLine[] {
  try {
    return fs
      .readFileSync(p, 'utf8')
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l) as ReportLine);
  } catch {
    return [];
  }
}

interface Rigged {
  env: Env;
  s: Supervisor;
  port: number;
  incPid: number;
  writes: Map<string, string>;
}

async function setUp(): Promise<Rigged> {
  const env = makeEnv('handoff-abuse-');
  // A fixture never heartbeats: a long silence limit, so that only its script decides the outcome.
  const s = await startSupervisor(env, { heartbeatMs: 1000, heartbeatTimeoutMs: 30_000, exitTimeoutMs: 200, helloTimeoutMs: 10_000 });
  const port = portOf(s);
  const incPid = s.status().incumbent?.pid ?? 0;
  return { env, s, port, incPid, writes: new Map() };
}

/** One handoff attempt with a fixture successor playing `c`; failure lines, empty when all holds. */
async function play(r: Rigged, c: AbuseCase, n: number): Promise<{ failures: string[]; record?: HandoffRecord; ms: number }> {
  const t0 = performance.now();
  const failures: string[] = [];
  const { s, env, port } = r;
  const before = s.status();
  const reportPath = path.join(env.dir, `case-${n}.jsonl`);
  const script = Buffer.from(JSON.stringify({ steps: c.steps, exitOnAbort: c.exitOnAbort, stayOnEof: c.expect === 'peer_closed' })).toString('base64');
  let record: HandoffRecord | undefined;
  try {
    record = await within(s.upgrade({ command: process.execPath, args: [FIXTURE, script, reportPath] }), 30_000, 'the handoff record');
    if (record.outcome !== 'aborted') failures.push(`outcome ${record.outcome}, expected aborted`);
    if (record.reason_kind !== c.expect) failures.push(`reason_kind ${String(record.reason_kind)} (${record.reason ?? ''}), expected ${c.expect}`);
    if (record.successor_pid !== null && isAlive(record.successor_pid)) failures.push(`successor ${record.successor_pid} still alive after the record`);
    const lines = readReport(reportPath);
    if (lines.some((l) => l.ev === 'garbage')) failures.push('S sent bytes that do not decode');
    const eofAt = lines.findIndex((l) => l.ev === 'eof');
    const abortAt = lines.findIndex((l) => l.ev === 'msg' && l.type === 'Abort');
    if (c.abortRequired) {
      if (abortAt < 0 || (eofAt >= 0 && eofAt < abortAt)) failures.push(`no Abort before end of stream (fixture saw: ${lines.map((l) => (l.ev === 'msg' ? l.type : l.ev)).join(', ')})`);
      else {
        const a = lines[abortAt]!;
        if (a.id !== record.handoff_id.replace(/-/g, '')) failures.push(`Abort names ${a.id ?? '?'}, not ${record.handoff_id}`);
        if (!(a.reason ?? '').startsWith(`${c.expect}: `)) failures.push(`Abort reason ${JSON.stringify(a.reason)} does not start with "${c.expect}: "`);
      }
    }
    // The incumbent: the same kv process, serving, every acknowledged write there.
    const now = s.status();
    if (now.state !== 'serving') failures.push(`S state ${now.state}`);
    if (now.incumbent?.pid !== r.incPid) failures.push(`incumbent ${String(now.incumbent?.pid)}, expected ${r.incPid}`);
    if (now.incumbent_restarts !== before.incumbent_restarts) failures.push('the incumbent restarted');
    const who = await info(port);
    if (who.pid !== r.incPid) failures.push(`GET /info answered by ${who.pid}, expected ${r.incPid}`);
    const key = `k${n}`;
    const value = `v${n}-${c.category}`;
    const put = await request(port, 'PUT', `/kv/${key}`, value);
    if (put.status !== 200 && put.status !== 201) failures.push(`PUT after the case: ${put.status} ${put.body}`);
    else r.writes.set(key, value);
  } catch (err) {
    failures.push(err instanceof Error ? err.message : String(err));
  }
  fs.rmSync(reportPath, { force: true });
  return { failures, ...(record ? { record } : {}), ms: performance.now() - t0 };
}

t.test('generated abuse from spawned successors against real kv incumbents', async (t) => {
  // Two supervisors, each with its own kv, share the cases: a case mostly waits on process start-up.
  const rigs = [await setUp(), await setUp()];
  t.teardown(async () => {
    for (const r of rigs) {
      await r.s.stop();
      cleanup(r.env);
    }
  });
  const rng = new Rng(seed);
  const cases: AbuseCase[] = [];
  for (let i = 0; i < CASES; i++) cases.push(generate(rng, i, { idBeforeHello: false, sealGate: false, prevId: false, realIncumbent: true }));
  const heap0 = heapAfterGc();
  const tallies = new Map<string, { cases: number; failed: number; examples: string[] }>();
  const t0 = performance.now();
  let run = 0;
  let slowest = 0;
  let stuck: string | undefined;
  await Promise.all(
    rigs.map(async (r, k) => {
      for (let i = k; i < cases.length && stuck === undefined; i += rigs.length) {
        if (run >= MIN_CASES && performance.now() - t0 > RUN_BUDGET_MS) return;
        const c = cases[i]!;
        const out = await play(r, c, i);
        run++;
        slowest = Math.max(slowest, out.ms);
        const key = `${c.category} / ${c.state}`;
        const tally = tallies.get(key) ?? { cases: 0, failed: 0, examples: [] };
        tally.cases++;
        if (out.failures.length > 0) {
          tally.failed++;
          if (tally.examples.length < 3) tally.examples.push(`${describeCase(c, seed)}: ${out.failures.join('; ')}`);
        }
        tallies.set(key, tally);
        if (out.failures.some((f) => f.startsWith('timed out'))) stuck = `${describeCase(c, seed)}: ${out.failures.join('; ')}`;
      }
    }),
  );
  const elapsed = performance.now() - t0;
  t.equal(stuck, undefined, 'no case left S stuck');
  for (const [key, tally] of [...tallies].sort()) t.equal(tally.failed, 0, `${key}: ${tally.cases} cases`, { examples: tally.examples });
  t.ok(run >= Math.min(CASES, MIN_CASES), `${run} cases end to end`);

  let writes = 0;
  for (const r of rigs) {
    // Every acknowledged write is still there, in the same incumbent.
    let lost = 0;
    for (const [k, v] of r.writes) {
      const g = await request(r.port, 'GET', `/kv/${k}`);
      if (g.status !== 200 || g.body !== v) lost++;
    }
    writes += r.writes.size;
    t.equal(lost, 0, `all ${r.writes.size} acknowledged writes read back`);
    const good = await upgrade(r.s, r.env, ['--build-id', 'after-abuse']);
    t.equal(good.outcome, 'committed', `a good kv handoff commits after the abuse (${good.reason ?? ''})`);
    t.equal((await info(r.port)).build_id, 'after-abuse', 'the new build serves');
  }
  const heap1 = heapAfterGc();
  t.ok(heap1 - heap0 < 16 * 1024 * 1024, `S heap after GC ${MB(heap0)} → ${MB(heap1)}`);
  t.comment(`figures: ${run} generated cases end to end in ${(elapsed / 1000).toFixed(1)} s on ${rigs.length} supervisors (slowest ${slowest.toFixed(0)} ms), ${writes} writes checked, S heap after GC ${MB(heap0)} → ${MB(heap1)}`);
  for (const [key, tally] of [...tallies].sort()) t.comment(`  ${key}: ${tally.cases} cases, ${tally.failed} failed`);
});

t.test('directed, end to end: a heartbeat storm, a dribbled header, a Hello flood, truncation', async (t) => {
  const r = await setUp();
  t.teardown(async () => {
    await r.s.stop();
    cleanup(r.env);
  });
  const hb = sampleJson('Heartbeat', new Rng(seed));
  const directed: Array<[string, Step[], AbuseCase['expect']]> = [
    ['100,000 heartbeats then frame_len 0', [...prefix('drain'), { op: 'msg', msg: hb, count: 100_000, chunks: 20 }, { op: 'raw', hex: '00000000' }], 'frame_malformed'],
    ['frame_len 2 dribbled a byte per 100 ms', [{ op: 'dribble', hex: '02000000', everyMs: 100 }], 'frame_malformed'],
    ['frame_len 4 GiB - 1', [...prefix('begin'), { op: 'raw', hex: 'ffffffff' }], 'frame_too_large'],
    ['2,000 Hellos', [{ op: 'msg', msg: sampleJson('Hello', new Rng(1)), count: 2000 }], 'unexpected_message'],
    ['half a Hello, then end of stream', [{ op: 'raw', hex: '40000000010082' }, { op: 'end' }], 'frame_malformed'],
    ['end of stream between frames after Begin (the process lives)', [...prefix('begin'), { op: 'end' }], 'peer_closed'],
  ];
  let i = 100_000;
  for (const [name, steps, expect] of directed) {
    const c: AbuseCase = { n: i, category: name, state: 'hello', steps, expect, abortRequired: expect !== 'peer_closed', exitOnAbort: false, ignoreTerm: false, note: name };
    const out = await play(r, c, i++);
    t.same(out.failures, [], `${name}: ${expect}${c.abortRequired ? ', Abort told' : ''}, the kv incumbent serves (${out.ms.toFixed(0)} ms)`);
  }
  const good = await upgrade(r.s, r.env);
  t.equal(good.outcome, 'committed', 'a good kv handoff commits after them');
});
