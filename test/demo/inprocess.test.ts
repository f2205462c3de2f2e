/**
 * The demo driven in this process (so that its code is covered), its supervisor host run from the
 * TypeScript source with this test's loaders: one short clean run, and one that cannot start.
 */

import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { demo } from '../../src/cli/demo/index.js';
import { builtPaths, packageRoot } from '../../src/cli/demo/paths.js';
import { renderReport } from '../../src/cli/demo/report.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const internals = { hostPath: path.join(ROOT, 'src/cli/demo/host.ts'), hostExecArgv: process.execArgv };

t.test('paths are found from the module, not the cwd', async (t) => {
  t.equal(packageRoot(), ROOT);
  t.equal(builtPaths().kvMain, path.join(ROOT, 'dist/examples/kv/main.js'));
  t.throws(() => builtPaths(path.join(ROOT, 'test')), /missing: run `npm run build` first/);
  t.throws(() => packageRoot('/'), /no handoff package.json/);
});

t.test('a short clean run: one handoff under load, temp dir removed', async (t) => {
  const lines: string[] = [];
  const rep = await demo({ handoffs: 1, clients: 4, durationMs: 1500 }, (l) => lines.push(l), internals);
  t.comment(renderReport(rep));
  t.ok(rep.ok, rep.error ?? 'ok');
  t.equal(rep.committed, 1);
  t.equal(rep.failures, 0);
  t.equal(rep.refused, 0);
  t.ok(rep.writesSurvived);
  t.ok(rep.requests > 20);
  t.equal(rep.handoffs[0]?.servingAfter, 'demo-2');
  t.notOk(rep.kept);
  t.notOk(fs.existsSync(rep.tempDir));
  t.match(lines.join('\n'), /handoff 1: committed/);
});

t.test('a port already taken: the demo fails, says why, and keeps its temp dir', async (t) => {
  const blocker = net.createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  t.teardown(() => new Promise<void>((r) => blocker.close(() => r())));
  const port = (blocker.address() as net.AddressInfo).port;
  const rep = await demo({ port, handoffs: 1, clients: 2, durationMs: 500 }, undefined, internals);
  t.teardown(() => fs.rmSync(rep.tempDir, { recursive: true, force: true }));
  t.notOk(rep.ok);
  t.ok(rep.kept);
  t.ok(fs.existsSync(rep.logFile), 'the log is kept');
  t.match(rep.error, /EADDRINUSE|in use|address/i);
  t.match(renderReport(rep), /^ {2}FAIL: .*\n {2}temp dir kept: /m);
});
