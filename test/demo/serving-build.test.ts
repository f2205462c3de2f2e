/**
 * The CLI names the build that serves after a handoff (the demo's unhealthy scenario is a rollback):
 * `upgrade`'s outcome line after a rollback, `status`'s last line, and `history`'s BUILD column.
 * Kept beside the demo tests because the demo's scenarios are what made them matter.
 */

import t from 'tap';
import { outcomeLine, renderHistory } from '../../src/cli/render.js';
import type { HandoffRecord, RestartRecord } from '../../src/supervisor/types.js';

function record(over: Partial<HandoffRecord>): HandoffRecord {
  return {
    handoff_id: '0f1e2d3c4b5a69788796a5b4c3d2e1f0',
    outcome: 'committed',
    started_at: '2026-01-01T00:00:00.000Z',
    ended_at: '2026-01-01T00:00:01.500Z',
    incumbent_pid: 10,
    successor_pid: 11,
    command: ['node', 'main.js'],
    phases: [{ phase: 'hello', ms: 100 }],
    total_ms: 1500,
    rolled_forward: false,
    revisions_checked: true,
    ...over,
  };
}

const rolledBack = record({ outcome: 'aborted', reason: 'successor_unhealthy: the successor reported healthz_ok: false', build_id: 'v3', phases: [{ phase: 'rollback', ms: 20 }] });

t.test('a rollback says which build still serves, when what serves now is known', async (t) => {
  t.match(outcomeLine(record({ build_id: 'v2' })), /^committed in 1\.50 s .*, build v2 serves$/);
  t.match(outcomeLine(rolledBack, { pid: 10, build_id: 'v2' }), /^aborted after 1\.50 s: successor_unhealthy: .*; build v2 still serves \(pid 10\)$/);
  t.match(outcomeLine(rolledBack, { pid: 12, build_id: 'v2' }), /; build v2 serves \(pid 12, a fresh start\)$/);
  t.match(outcomeLine(rolledBack, null), /; nothing serves now$/);
  t.notMatch(outcomeLine(rolledBack), /serves/, 'no claim without knowing');
  t.notMatch(outcomeLine(rolledBack, { pid: 10, build_id: 'v2' }), /v3/, 'never the rejected build');
});

t.test('history: BUILD is the build serving after each entry, a rollback included', async (t) => {
  const restart: RestartRecord = { kind: 'restart', at: '2026-01-01T00:00:02.000Z', reason: 'incumbent_failed: killed', reason_kind: 'incumbent_failed', pid: 11, exit: 'killed by SIGKILL', command: ['node'], stderr_tail: [], attempt: 1, delay_ms: 250 };
  const rows = renderHistory([rolledBack, record({ build_id: 'v2' }), restart, rolledBack]).trim().split('\n');
  const build = (row: string | undefined): string | undefined => row?.split(/ {2,}/)[5];
  t.equal(build(rows[1]), '-', 'before any commit in the list: unknown');
  t.equal(build(rows[2]), 'v2', 'a commit: its build');
  t.equal(build(rows[3]), '-', 'a restart row has no build column of its own');
  t.equal(build(rows[4]), 'v2', 'a rollback: the build that kept serving, not the rejected v3');
});
