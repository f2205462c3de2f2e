/**
 * The fault matrix, SIGSTOP of the incumbent and of the successor at each point where S
 * waits on them, for longer than the heartbeat timeout, then SIGCONT.
 *
 * What the design promises: a silent child is killed and reaped by S and handled as that child's
 * crash. The incumbent hung between handoffs: killed, its lock cleared (proved dead), a cold start;
 * status, metrics and history say `incumbent_hung` (systemd's WatchdogSec= is the model). The
 * incumbent hung mid-handoff: killed for `heartbeat_timeout` and rolled forward. The successor hung
 * before Ready: killed, `aborted` with `heartbeat_timeout`, the incumbent serves again. The
 * successor hung after its Ready: the handoff commits, then the successor is a hung incumbent like
 * any other. Load: only the hung process's own connections may be reset.
 */

import t from 'tap';
import { Figures, runCase, runHang, type HangCase } from './harness.js';

const fig = new Figures();
const rolledForward = { outcome: 'committed', rolledForward: true, reasonKind: 'heartbeat_timeout', serves: 'successor' } as const;
const abortedSuccessor = { outcome: 'aborted', reasonKind: 'heartbeat_timeout', serves: 'incumbent', load: 'no-failures' } as const;

const CASES: HangCase[] = [
  { victim: 'incumbent', at: 'at rest', expect: { outcome: 'none', serves: 'other', load: 'resets-only' }, hungIncumbent: true },
  { victim: 'incumbent', at: 'after PrepareHandoff', expect: { ...rolledForward, load: 'resets-only' } },
  { victim: 'incumbent', at: 'after Drained', expect: { ...rolledForward, load: 'no-failures' } },
  { victim: 'incumbent', at: 'inside seal', expect: { ...rolledForward, load: 'no-failures' } },
  // The incumbent sealed; the successor begins and commits without it; the incumbent never exits,
  // so S kills it.
  { victim: 'incumbent', at: 'after SealComplete', expect: { outcome: 'committed', serves: 'successor', load: 'no-failures' } },
  { victim: 'incumbent', at: 'after Commit', expect: { outcome: 'committed', serves: 'successor', load: 'no-failures' } },
  { victim: 'successor', at: 'after Hello', expect: abortedSuccessor },
  { victim: 'successor', at: 'after Begin', expect: abortedSuccessor },
  { victim: 'successor', at: 'inside open', expect: abortedSuccessor },
  { victim: 'successor', at: 'after Ready', expect: { outcome: 'committed', serves: 'other', load: 'resets-only' }, hungIncumbent: true },
];

for (const h of CASES) await runCase(t, fig, `SIGSTOP the ${h.victim} ${h.at}`, (t) => runHang(t, fig, h));
fig.comment(t, 'SIGSTOP of the incumbent and the successor');
