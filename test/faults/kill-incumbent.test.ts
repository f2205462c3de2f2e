/**
 * The fault matrix, SIGKILL of the incumbent (O) at each point of a handoff, under load.
 *
 * What the design promises: O dead before Begin (up to its SealComplete) means roll forward: S
 * reaps O, clears O's lock, and N serves (`committed`, `rolled_forward`, reason `incumbent_failed`).
 * O dead after Begin is only a note: N goes on and commits (for the begin phase the record says
 * why: `incumbent_failed`). Load: until O's drain has finished, O holds keep-alive connections, and
 * only those may be reset (one per client at most); after Drained no request may fail.
 */

import t from 'tap';
import { Figures, runCase, runKill, type KillCase } from './harness.js';

const fig = new Figures();
const resets = 'resets-only' as const;
const none = 'no-failures' as const;

const CASES: KillCase[] = [
  // Up to its drain, O still holds keep-alive connections: only those may be reset.
  { victim: 'O', at: 'after Hello', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'N', load: resets } },
  { victim: 'O', at: 'after PrepareHandoff', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'N', load: resets } },
  { victim: 'O', at: 'inside drain', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'N', load: resets } },
  // Drained: O has no connection left, so no request may fail from here on.
  { victim: 'O', at: 'after Drained', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'N', load: none } },
  { victim: 'O', at: 'inside seal', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'N', load: none } },
  // SealComplete waits unread in S's socket when O dies: read first, it makes this a death in the
  // begin phase (no roll forward); either way committed, with the reason.
  { victim: 'O', at: 'after SealComplete', expect: { outcome: 'committed', reasonKind: 'incumbent_failed', serves: 'N', load: none } },
  { victim: 'O', at: 'after Begin', expect: { outcome: 'committed', rolledForward: false, reasonKind: 'incumbent_failed', serves: 'N', load: none } },
  { victim: 'O', at: 'inside open', expect: { outcome: 'committed', rolledForward: false, reasonKind: 'incumbent_failed', serves: 'N', load: none } },
  // Ready waits unread in S's socket: committed whichever S learns first.
  { victim: 'O', at: 'after Ready', expect: { outcome: 'committed', rolledForward: false, serves: 'N', load: none } },
  { victim: 'O', at: 'after Commit', expect: { outcome: 'committed', rolledForward: false, serves: 'N', load: none } },
];

for (const k of CASES) await runCase(t, fig, `SIGKILL O ${k.at}`, (t) => runKill(t, fig, k));
fig.comment(t, 'SIGKILL of the incumbent');
