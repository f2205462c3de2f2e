/**
 * The fault matrix, SIGSTOP of the supervisor (the real `handoff run`) for twice the heartbeat
 * timeout, then SIGCONT: at rest, and at each point where a child waits on S.
 *
 * What the design promises: time S itself did not run is nobody's silence. S reads what was
 * buffered while it was stopped before it judges anyone, so no healthy process is killed. At rest
 * the incumbent keeps serving without disruption (not one failed request). Mid-handoff the handoff
 * commits, or aborts only for a real reason (never S's verdict that a child went silent, never a
 * deadline S slept through: the drain grace runs out while S is stopped, with Drained waiting in its
 * socket), and a Ready that arrived while S was stopped is committed, never reverted.
 */

import t from 'tap';
import { Figures, runCase, S_HANG_FLAGS, runHang, type HangCase } from './harness.js';

const fig = new Figures();
// S's own verdicts on a child's silence or on a timer that ran out while S was stopped. A child
// that calls the handoff off itself because S was silent (an incumbent that serves on) is a real
// reason: it is the child's decision, and it says so.
const realReason = /went silent and was killed|^deadline_exceeded/;

const CASES: HangCase[] = [
  { victim: 'supervisor', at: 'at rest', expect: { outcome: 'none', serves: 'incumbent', load: 'no-failures' } },
  // The successor waits for Begin (the incumbent drains meanwhile).
  { victim: 'supervisor', at: 'after Hello', expect: { outcome: ['committed', 'aborted'], reasonNot: realReason, serves: 'either', load: 'no-failures' } },
  // The incumbent waits for SealRequest.
  { victim: 'supervisor', at: 'after Drained', expect: { outcome: ['committed', 'aborted'], reasonNot: realReason, serves: 'either', load: 'no-failures' } },
  // The incumbent sealed and waits for Commit or Abort; SealComplete is unread in S's socket.
  { victim: 'supervisor', at: 'after SealComplete', expect: { outcome: ['committed', 'aborted'], reasonNot: realReason, serves: 'either', load: 'no-failures' } },
  // Ready is unread in S's socket; the incumbent waits for Commit.
  { victim: 'supervisor', at: 'after Ready', expect: { outcome: 'committed', serves: 'successor', load: 'no-failures' } },
];

for (const h of CASES) await runCase(t, fig, `SIGSTOP the supervisor ${h.at}`, (t) => runHang(t, fig, { ...h, flags: S_HANG_FLAGS }));
fig.comment(t, 'SIGSTOP of the supervisor');
