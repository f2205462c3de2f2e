/**
 * The fault matrix, SIGKILL of the supervisor (S) at rest and at each point of a handoff up to
 * SealComplete, under load (kill-supervisor-late: from Begin on).
 * S runs as the real `handoff run` process.
 *
 * What the design promises: the children see their control channel end. A successor without Begin
 * exits; a successor holding the lock keeps serving; an incumbent that had not sealed reopens
 * accept; an incumbent that sealed retakes the lock if it can (it then serves), else exits. Exactly
 * one serves, never two writers, and since the listening socket lives on in the children, no
 * request fails. A new S fails with one line while the orphan holds the port (and keeps the
 * journal); once the orphan is stopped, a new S starts, reports the handoff as `interrupted` and
 * hands off.
 */

import t from 'tap';
import { Figures, runCase, POINTS, runKill, SURVIVOR_OF_S_KILL, type KillCase } from './harness.js';

const fig = new Figures();

const CASES: KillCase[] = [
  { victim: 'supervisor', at: 'at rest', expect: { outcome: 'none', serves: 'incumbent', load: 'no-failures' } },
  ...POINTS.slice(0, 6).map((p): KillCase => ({ victim: 'supervisor', at: p.name, expect: { outcome: 'interrupted', serves: SURVIVOR_OF_S_KILL[p.name]!, load: 'no-failures' } })),
];

for (const k of CASES) await runCase(t, fig, `SIGKILL the supervisor ${k.at}`, (t) => runKill(t, fig, k));
fig.comment(t, 'SIGKILL of the supervisor, up to SealComplete');
