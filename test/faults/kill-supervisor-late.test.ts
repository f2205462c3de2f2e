/**
 * The fault matrix, SIGKILL of the supervisor (S) at each point of a handoff from Begin on, under
 * load (kill-supervisor-early: at rest and up to SealComplete).
 * S runs as the real `handoff run` process.
 *
 * What the design promises: the children see their control channel end. N without Begin exits; N
 * holding the lock keeps serving; O that had not sealed reopens accept; O that sealed retakes the
 * lock if it can (it then serves), else exits. Exactly one serves, never two writers, and since the
 * listening socket lives on in the children, no request fails. A new S fails with one line while
 * the orphan holds the port (and keeps the journal); once the orphan is stopped, a new S starts,
 * reports the handoff as `interrupted` and hands off.
 */

import t from 'tap';
import { Figures, runCase, POINTS, runKill, type Expect, type KillCase } from './harness.js';

const fig = new Figures();

const SURVIVOR: Record<string, Expect['serves']> = {
  'after Hello': 'O',
  'after PrepareHandoff': 'O',
  'inside drain': 'O',
  'after Drained': 'O',
  'inside seal': 'O',
  // O sealed and let the lock go, N never got Begin: N exits, O retakes the lock.
  'after SealComplete': 'O',
  // N got Begin: N takes the lock or O retakes it, whoever is first; the other leaves.
  'after Begin': 'O|N',
  'inside open': 'N',
  'after Ready': 'N',
  'after Commit': 'N',
};

const CASES: KillCase[] = POINTS.slice(6).map((p): KillCase => ({ victim: 'S', at: p.name, expect: { outcome: 'interrupted', serves: SURVIVOR[p.name]!, load: 'no-failures' } }));

for (const k of CASES) await runCase(t, fig, `SIGKILL S ${k.at}`, (t) => runKill(t, fig, k));
fig.comment(t, 'SIGKILL of the supervisor, from Begin on');
