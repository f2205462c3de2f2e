/**
 * The fault matrix, SIGKILL of the successor (N) at each point of a handoff, under load.
 *
 * What the design promises: N dead before Ready means `aborted` (`successor_failed`); S reaps N,
 * clears a lock N took, and O serves again with the lock. N never accepted before its open ended,
 * so no request may fail. N dead after Ready (Ready waiting unread in S's socket) or after Commit
 * means `committed`: S read what N said before it died; and since nobody serves, S starts a fresh
 * incumbent at once (connections wait in the kernel queue meanwhile), not after the exit timeout.
 * N had accepted by then: only resets of its connections are allowed.
 */

import t from 'tap';
import { Figures, runCase, POINTS, runKill, type KillCase } from './harness.js';

const fig = new Figures();

const CASES: KillCase[] = POINTS.map((p): KillCase => {
  if (p.name === 'after Ready' || p.name === 'after Commit') {
    return { victim: 'N', at: p.name, expect: { outcome: 'committed', serves: 'other', load: 'resets-only' }, freshIncumbent: true };
  }
  return { victim: 'N', at: p.name, expect: { outcome: 'aborted', reasonKind: 'successor_failed', serves: 'O', load: 'no-failures' } };
});

for (const k of CASES) await runCase(t, fig, `SIGKILL N ${k.at}`, (t) => runKill(t, fig, k));
fig.comment(t, 'SIGKILL of the successor');
