/**
 * Wire abuse, generated: a successor that sends instead of behaving, against S's real Channel,
 * router and handoff table, over real Unix socket connections (the process is a double; see
 * harness.ts). One handoff attempt per case; a few Supervisors share the cases (each plays its
 * share in order), so that waiting on one does not idle the run.
 *
 * Per case: S records the right reason_kind, the offender reads Abort{id, "<kind>: …"} before end of
 * stream, the incumbent keeps serving (not signalled, not restarted, given back its role as the
 * transition table says), and nothing is left in flight. A good handoff commits every 500 cases of
 * each supervisor and at the end. S's heap after GC is bounded.
 *
 *   ABUSE_SEED=<n>   replay a run (the seed is printed first)
 *   ABUSE_CASES=<n>  how many cases (default 10,000)
 */

import t from 'tap';
import { generate, type AbuseCase } from './cases.js';
import { MB, Rig, Rng, heapAfterGc, runSeed } from './harness.js';
import { describeCase, goodHandoff, runCase, type CaseOutcome } from './runner.js';

const seed = runSeed();
const CASES = Number(process.env['ABUSE_CASES'] ?? 10_000);
const RIGS = 4;
/** Growth of S's heap (after GC) allowed over the run: a leak of 2 KB per case would exceed it. */
const HEAP_BOUND = 20 * 1024 * 1024;

t.comment(`wire abuse seed ${seed} (replay with ABUSE_SEED=${seed})`);

interface Tally {
  cases: number;
  failed: number;
  examples: string[];
  abortBeforeEof: number;
  ms: number;
}

t.test('generated wire abuse: S aborts with the right kind, tells the offender, keeps serving', async (t) => {
  const rigs: Rig[] = [];
  for (let k = 0; k < RIGS; k++) rigs.push(await Rig.start({ over: { heartbeatTimeoutMs: 30_000 } }, 100_000 + k * 1_000_000));
  t.teardown(async () => {
    for (const r of rigs) await r.stop();
  });
  const rng = new Rng(seed);
  const cases: AbuseCase[] = [];
  for (let i = 0; i < CASES; i++) cases.push(generate(rng, i, { idBeforeHello: true, sealGate: true, prevId: true }));

  const tallies = new Map<string, Tally>();
  const kinds = new Map<string, number>();
  let goodCommitted = 0;
  let goodTried = 0;
  let slowest = 0;
  let stuck: string | undefined;
  const record = (c: AbuseCase, out: CaseOutcome): void => {
    slowest = Math.max(slowest, out.ms);
    const key = `${c.category} / ${c.state}`;
    const tally = tallies.get(key) ?? { cases: 0, failed: 0, examples: [], abortBeforeEof: 0, ms: 0 };
    tally.cases++;
    tally.ms += out.ms;
    if (out.abortBeforeEof) tally.abortBeforeEof++;
    if (out.failures.length > 0) {
      tally.failed++;
      if (tally.examples.length < 3) tally.examples.push(`${describeCase(c, seed)}: ${out.failures.join('; ')}`);
    }
    tallies.set(key, tally);
    kinds.set(String(c.expect), (kinds.get(String(c.expect)) ?? 0) + 1);
  };

  // Warm up (code paths compiled, buffers grown) before the heap baseline.
  const warm = Math.min(200, cases.length);
  for (let i = 0; i < warm; i++) record(cases[i]!, await runCase(rigs[i % RIGS]!, cases[i]!));
  const heapWarm = heapAfterGc();
  const t0 = performance.now();
  await Promise.all(
    rigs.map(async (rig, k) => {
      let done = 0;
      for (let i = warm + k; i < cases.length && stuck === undefined; i += RIGS) {
        const c = cases[i]!;
        const out = await runCase(rig, c);
        record(c, out);
        if (out.failures.some((f) => f.startsWith('timed out'))) {
          // This supervisor is stuck on the case: the next ones would only repeat it.
          stuck = `${describeCase(c, seed)}: ${out.failures.join('; ')}`;
          return;
        }
        if (++done % 500 === 0) {
          goodTried++;
          const rec = await goodHandoff(rig);
          if (rec.outcome === 'committed') goodCommitted++;
          else t.fail(`a good handoff after case ${i} did not commit: ${rec.reason ?? ''}`);
        }
      }
    }),
  );
  const elapsed = performance.now() - t0;
  t.equal(stuck, undefined, 'no case left S stuck');
  for (const rig of rigs) {
    const final = await goodHandoff(rig);
    goodTried++;
    t.equal(final.outcome, 'committed', `the final good handoff commits (${final.reason ?? ''})`);
    if (final.outcome === 'committed') goodCommitted++;
    t.equal(rig.sup.state, 'serving', 'S serves');
  }
  const heapEnd = heapAfterGc();

  let total = 0;
  for (const [key, tally] of [...tallies].sort()) {
    total += tally.cases;
    t.equal(tally.failed, 0, `${key}: ${tally.cases} cases`, { examples: tally.examples });
  }
  t.ok(total >= Math.min(CASES, 10_000), `${total} cases run`);
  t.ok(heapEnd - heapWarm < HEAP_BOUND, `S heap after GC: ${MB(heapWarm)} after ${warm} cases, ${MB(heapEnd)} at the end (bound +${MB(HEAP_BOUND)})`);

  const launched = rigs.reduce((n, r) => n + r.launches, 0);
  t.comment(`figures: ${total} generated cases (${cases.length - warm} in ${(elapsed / 1000).toFixed(1)} s after warm-up, slowest ${slowest.toFixed(0)} ms) on ${RIGS} supervisors, ${launched} children launched, ${goodCommitted}/${goodTried} good handoffs committed`);
  t.comment(`figures: expected kinds ${[...kinds].sort().map(([k, n]) => `${k}=${n}`).join(' ')}`);
  t.comment(`figures: S heap after GC ${MB(heapWarm)} (after ${warm} cases) → ${MB(heapEnd)} (end), RSS ${MB(process.memoryUsage().rss)}`);
  for (const [key, tally] of [...tallies].sort()) t.comment(`  ${key}: ${tally.cases} cases, ${tally.failed} failed, Abort before EOF in ${tally.abortBeforeEof}, ${(tally.ms / tally.cases).toFixed(1)} ms each`);
});
