/**
 * The fault matrix, SIGSTOP of the incumbent (O) and of the successor (N) at each point where S
 * waits on them, for longer than the heartbeat timeout, then SIGCONT.
 *
 * What the design promises: a silent child is killed and reaped by S and handled as that child's
 * crash. O hung between handoffs: killed, its lock cleared (proved dead), a cold start; status,
 * metrics and history say `incumbent_hung` (systemd's WatchdogSec= is the model). O hung mid-handoff:
 * killed for `heartbeat_timeout` and rolled forward. N hung before Ready: killed, `aborted` with
 * `heartbeat_timeout`, O serves again. N hung after its Ready: the handoff commits, then N is a hung
 * incumbent like any other. Load: only the hung process's own connections may be reset.
 */

import t from 'tap';
import { Figures, runCase, runHang, type HangCase } from './harness.js';

const fig = new Figures();
const rolledForward = { outcome: 'committed', rolledForward: true, reasonKind: 'heartbeat_timeout', serves: 'N' } as const;
const abortedN = { outcome: 'aborted', reasonKind: 'heartbeat_timeout', serves: 'O', load: 'no-failures' } as const;

const CASES: HangCase[] = [
  { victim: 'O', at: 'at rest', expect: { outcome: 'none', serves: 'other', load: 'resets-only' }, hungIncumbent: true },
  { victim: 'O', at: 'after PrepareHandoff', expect: { ...rolledForward, load: 'resets-only' } },
  { victim: 'O', at: 'after Drained', expect: { ...rolledForward, load: 'no-failures' } },
  { victim: 'O', at: 'inside seal', expect: { ...rolledForward, load: 'no-failures' } },
  // O sealed; N begins and commits without it; O never exits, so S kills it.
  { victim: 'O', at: 'after SealComplete', expect: { outcome: 'committed', serves: 'N', load: 'no-failures' } },
  { victim: 'O', at: 'after Commit', expect: { outcome: 'committed', serves: 'N', load: 'no-failures' } },
  { victim: 'N', at: 'after Hello', expect: abortedN },
  { victim: 'N', at: 'after Begin', expect: abortedN },
  { victim: 'N', at: 'inside open', expect: abortedN },
  { victim: 'N', at: 'after Ready', expect: { outcome: 'committed', serves: 'other', load: 'resets-only' }, hungIncumbent: true },
];

for (const h of CASES) await runCase(t, fig, `SIGSTOP ${h.victim} ${h.at}`, (t) => runHang(t, fig, h));
fig.comment(t, 'SIGSTOP of the incumbent and the successor');
