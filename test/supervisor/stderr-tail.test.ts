/** A child's stderr through S: whole lines passed on, a bounded tail kept without stack frames. */

import { spawn } from 'node:child_process';
import t from 'tap';
import { STDERR_TAIL_LINES, StderrTail } from '../../src/supervisor/stderr-tail.js';

function run(code: string): Promise<{ tail: string[]; writes: string[] }> {
  const p = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, NODE_OPTIONS: '' } });
  const tail = new StderrTail();
  const writes: string[] = [];
  tail.follow(p.stderr, { write: (s: string) => writes.push(s) });
  return new Promise((resolve) => p.stderr.once('close', () => resolve({ tail: tail.get(), writes })));
}

t.test('a crash: its message kept, its stack frames not; output passed on whole lines only', async (t) => {
  const { tail, writes } = await run(`process.stderr.write('half a '); setTimeout(() => { process.stderr.write('line\\n'); throw new Error('boom: cannot open /data'); }, 50);`);
  t.ok(writes.every((w) => w.endsWith('\n')), 'every write to S’s stderr is whole lines');
  t.ok(writes.join('').includes('half a line\n'), 'a line split across writes arrives whole');
  t.ok(writes.join('').includes('    at '), 'the stack trace still reaches S’s own stderr');
  t.ok(tail.includes('half a line'));
  t.ok(tail.some((l) => l.includes('Error: boom: cannot open /data')), 'the error line is kept');
  t.notOk(tail.some((l) => /^\\s+at /.test(l) || l.includes('node:internal')), 'no stack frame is kept');
});

t.test('JSON log lines are kept readable, and the tail is bounded', async (t) => {
  const lines = Array.from({ length: 30 }, (_, i) => JSON.stringify({ level: 60, msg: `line ${i}`, err: 'why' }));
  const { tail } = await run(`process.stderr.write(${JSON.stringify(lines.join('\n') + '\n' + 'x'.repeat(5000) + '\n')});`);
  t.equal(tail.length, STDERR_TAIL_LINES, 'only the last lines');
  t.equal(tail[tail.length - 2], 'fatal: line 29 (why)', 'a pino line reads as level: msg (err)');
  t.ok(Buffer.byteLength(tail[tail.length - 1] ?? '') < 300, 'a long line is cut');
});
