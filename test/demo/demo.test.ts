/**
 * `handoff demo` as a newcomer runs it: a real process, a real supervisor, three handoffs of the kv
 * example under load. Shortened (fewer clients, a shorter load) but otherwise the real thing.
 */

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.join(ROOT, 'bin/handoff');
const DEMO_JS = path.join(ROOT, 'dist/src/cli/demo/index.js');
const OPTS = { handoffs: 3, clients: 10, durationMs: 3000 };

/**
 * `node bin/handoff demo`, shortened with --clients and --duration when the CLI offers them (else
 * at its defaults: about 10 s); runDemo from dist only while the CLI has no demo subcommand.
 */
function demoCommand(): { args: string[]; via: string } {
  const help = spawnSync(process.execPath, [BIN, 'demo', '--help'], { encoding: 'utf8', timeout: 20_000 });
  if (help.status === 0 && /--handoffs/.test(help.stdout)) {
    const args = [BIN, 'demo', '--handoffs', String(OPTS.handoffs)];
    if (/--clients/.test(help.stdout)) args.push('--clients', String(OPTS.clients));
    if (/--duration/.test(help.stdout)) args.push('--duration', String(OPTS.durationMs));
    return { args, via: args.slice(1).join(' ') };
  }
  const code = `import(${JSON.stringify(DEMO_JS)}).then((m) => m.runDemo(${JSON.stringify(OPTS)})).then((c) => { process.exitCode = c; })`;
  return { args: ['--input-type=module', '-e', code], via: 'runDemo from dist (the CLI has no demo subcommand yet)' };
}

function run(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const t0 = Date.now();
  // The demo's services must start as a user's would, without the test runner's loaders.
  const env = { ...process.env, NODE_OPTIONS: '' };
  const p = spawn(process.execPath, args, { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  p.stdout.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  p.stderr.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const timer = setTimeout(() => p.kill('SIGKILL'), 150_000);
  return new Promise((resolve) => {
    p.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

t.test('handoff demo: 3 handoffs under load, no failure, no refusal, every write survived', async (t) => {
  t.ok(fs.existsSync(DEMO_JS), 'built');
  const cmd = demoCommand();
  t.comment(`via ${cmd.via}`);
  const r = await run(cmd.args);
  t.comment(r.stdout);
  if (r.stderr) t.comment(`stderr: ${r.stderr}`);
  t.equal(r.code, 0, 'exit code 0');
  t.match(r.stdout, /^ {2}failures +0$/m, '0 failures');
  t.match(r.stdout, /^ {2}refused +0$/m, '0 refused');
  t.match(r.stdout, /^ {2}writes survived +yes$/m, 'writes survived');
  const committed = r.stdout.split('\n').filter((l) => /^ {2}\d+ +committed /.test(l));
  t.equal(committed.length, 3, '3 handoffs committed');
  const requests = /^ {2}requests +(\d+)/m.exec(r.stdout);
  t.ok(Number(requests?.[1]) > 100, `under load: ${requests?.[1] ?? '?'} requests`);
  t.match(r.stdout, /PASS/);
  const kept = /temp dir kept: (\S+)/i.exec(r.stdout);
  t.notOk(kept, 'the temp dir is removed after a clean run');
  const tmp = /temp dir (\/\S+?),/.exec(r.stdout)?.[1];
  if (tmp) t.notOk(fs.existsSync(tmp), `${tmp} removed`);
  t.ok(r.ms < 60_000, `done in ${r.ms} ms`);
});
