/**
 * The fault matrix, SIGKILL of the incumbent at each point of a handoff, under load.
 *
 * What the design promises: the incumbent dead before Begin (up to its SealComplete) means roll
 * forward: S reaps the incumbent, clears the incumbent's lock, and the successor serves
 * (`committed`, `rolled_forward`, reason `incumbent_failed`). The incumbent dead after Begin is
 * only a note: the successor goes on and commits (for the begin phase the record says why:
 * `incumbent_failed`). Load: until the incumbent's drain has finished, the incumbent holds
 * keep-alive connections, and only those may be reset (one per client at most); after Drained no
 * request may fail.
 */

import t from 'tap';
import { Figures, runCase, runKill, type KillCase } from './harness.js';

const fig = new Figures();
const resets = 'resets-only' as const;
const none = 'no-failures' as const;

const CASES: KillCase[] = [
  // Up to its drain, the incumbent still holds keep-alive connections: only those may be reset.
  { victim: 'incumbent', at: 'after Hello', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'successor', load: resets } },
  { victim: 'incumbent', at: 'after PrepareHandoff', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'successor', load: resets } },
  { victim: 'incumbent', at: 'inside drain', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'successor', load: resets } },
  // Drained: the incumbent has no connection left, so no request may fail from here on.
  { victim: 'incumbent', at: 'after Drained', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'successor', load: none } },
  { victim: 'incumbent', at: 'inside seal', expect: { outcome: 'committed', rolledForward: true, reasonKind: 'incumbent_failed', serves: 'successor', load: none } },
  // SealComplete waits unread in S's socket when the incumbent dies: read first, it makes this a
  // death in the begin phase (no roll forward); either way committed, with the reason.
  { victim: 'incumbent', at: 'after SealComplete', expect: { outcome: 'committed', reasonKind: 'incumbent_failed', serves: 'successor', load: none } },
  { victim: 'incumbent', at: 'after Begin', expect: { outcome: 'committed', rolledForward: false, reasonKind: 'incumbent_failed', serves: 'successor', load: none } },
  { victim: 'incumbent', at: 'inside open', expect: { outcome: 'committed', rolledForward: false, reasonKind: 'incumbent_failed', serves: 'successor', load: none } },
  // Ready waits unread in S's socket: committed whichever S learns first.
  { victim: 'incumbent', at: 'after Ready', expect: { outcome: 'committed', rolledForward: false, serves: 'successor', load: none } },
  { victim: 'incumbent', at: 'after Commit', expect: { outcome: 'committed', rolledForward: false, serves: 'successor', load: none } },
];

for (const k of CASES) await runCase(t, fig, `SIGKILL the incumbent ${k.at}`, (t) => runKill(t, fig, k));
fig.comment(t, 'SIGKILL of the incumbent');
