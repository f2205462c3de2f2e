/**
 * S's logs: a child's stderr never splits one of S's records; `--log-format` and `--log-level`
 * reach the children; records about a child name it `child_pid`, `pid` is S's own.
 */

import path from 'node:path';
import t, { type Test } from 'tap';
import { BIN, CHILD_ENV, Proc, tmpdir, type LogLine } from './harness.js';

/**
 * A child that never says Hello (so S keeps killing and restarting it, logging each time) and
 * writes its stderr lines in three pieces a few ms apart: at almost any moment one is half written.
 */
const SLOW_WRITER = `
process.stdout.write('env ' + process.env.HANDOFF_LOG_LEVEL + ' ' + process.env.HANDOFF_LOG_FORMAT + '\\n');
let n = 0;
const tick = () => {
  process.stderr.write('CHILD ' + process.pid + '-' + n++ + ' ');
  setTimeout(() => {
    process.stderr.write('x'.repeat(50) + ' ');
    setTimeout(() => { process.stderr.write('END\\n'); setTimeout(tick, 1); }, 3);
  }, 3);
};
tick();
`;

function runS(t: Test, extra: string[]): Proc {
  const dir = tmpdir(t, 'hlog-');
  const p = new Proc(
    [BIN, 'run', '--admin-socket', path.join(dir, 'a.sock'), '--state-dir', path.join(dir, 'state'), '--hello-timeout', '1s', '--restart-initial', '10ms', '--restart-max', '20ms', '--start-limit', '1000', ...extra, '--', process.execPath, '-e', SLOW_WRITER],
    CHILD_ENV,
  );
  t.teardown(async () => {
    p.signal('SIGKILL');
    await p.exit().catch(() => undefined);
  });
  return p;
}

const WHOLE_CHILD_LINE = /^CHILD \d+-\d+ x{50} END$/;
/** The last line of a child killed mid-line: cut short, but its own. */
const CUT_CHILD_LINE = /^CHILD \d+-\d+ (x{50} )?(END)?$/;

t.test("a child writing partial lines slowly while S logs: no line mixes the two", async (t) => {
  const s = runS(t, ['--log-format', 'json', '--log-level', 'debug']);
  const spawned = (): LogLine[] => s.logs().filter((l) => l.msg === 'spawned');
  await s.until(() => (spawned().length >= 3 && s.err.filter((l) => WHOLE_CHILD_LINE.test(l)).length >= 30 ? true : undefined), 'three cold starts and thirty child lines', 60_000);
  s.signal('SIGTERM');
  await s.exit(30_000);

  const mixed = s.err.filter((l) => {
    if (l.startsWith('{')) {
      try {
        return typeof (JSON.parse(l) as LogLine).level !== 'number';
      } catch {
        return true;
      }
    }
    return !CUT_CHILD_LINE.test(l);
  });
  t.same(mixed, [], 'every line is one record of S or one line of a child');
  t.ok(s.err.filter((l) => WHOLE_CHILD_LINE.test(l)).length >= 30, 'the child lines are passed on');
  t.ok(s.logs().length >= 12, `S logged meanwhile (${s.logs().length} records)`);

  const first = spawned()[0]!;
  t.type(first['child_pid'], 'number', "'spawned' names the child child_pid");
  t.equal(first['pid'], s.pid, "pid is S's own");
  t.match(String(first['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO-8601 time');
  t.ok(s.out.includes('env debug json'), 'the children get S’s level and format');
});

t.test('--log-format pretty: one readable line per record, ISO time, to the children too', async (t) => {
  const s = runS(t, ['--log-format', 'pretty']);
  const line = await s.until(() => s.err.find((l) => / INFO \(handoff\/\d+\): spawned /.test(l)), 'a pretty spawned line', 30_000);
  t.match(line, /^\[\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\] INFO \(handoff\/\d+\): spawned \{.*"child_pid":\d+/);
  t.match(line, `(handoff/${s.pid})`, "S's own pid");
  await s.waitStdout(/^env info pretty$/);
  t.equal(s.logs().length, 0, 'no JSON lines');
});
