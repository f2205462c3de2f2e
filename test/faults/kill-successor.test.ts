/**
 * The fault matrix, SIGKILL of the successor at each point of a handoff, under load.
 *
 * What the design promises: the successor dead before Ready means `aborted` (`successor_failed`); S
 * reaps the successor, clears a lock the successor took, and the incumbent serves again with the
 * lock. The successor never accepted before its open ended, so no request may fail. The successor
 * dead after Ready (Ready waiting unread in S's socket) or after Commit means `committed`: S read
 * what the successor said before it died; and since nobody serves, S starts a fresh incumbent at
 * once (connections wait in the kernel queue meanwhile), not after the exit timeout. The successor
 * had accepted by then: only resets of its connections are allowed.
 */

import t from 'tap';
import { Figures, runCase, POINTS, runKill, type KillCase } from './harness.js';

const fig = new Figures();

const CASES: KillCase[] = POINTS.map((p): KillCase => {
  if (p.name === 'after Ready' || p.name === 'after Commit') {
    return { victim: 'successor', at: p.name, expect: { outcome: 'committed', serves: 'other', load: 'resets-only' }, freshIncumbent: true };
  }
  return { victim: 'successor', at: p.name, expect: { outcome: 'aborted', reasonKind: 'successor_failed', serves: 'incumbent', load: 'no-failures' } };
});

for (const k of CASES) await runCase(t, fig, `SIGKILL the successor ${k.at}`, (t) => runKill(t, fig, k));
fig.comment(t, 'SIGKILL of the successor');
