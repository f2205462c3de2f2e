/**
 * The package as a user gets it: `npm pack` of this tree (dist as built; `npm test` builds it
 * first), installed by file name into an empty project, then used there as documented: the
 * entry points typecheck under NodeNext and import as ESM, README.md's example test (its
 * "Testing your service") compiles and passes under `node --test`, and the installed `handoff`
 * command runs.
 * Dependencies come from the npm cache when they are there (--prefer-offline).
 */

import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import t from 'tap';

const run = promisify(execFile);
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  main: string;
  types: string;
  bin: Record<string, string>;
  exports: Record<string, { types: string; default: string }>;
};

/** The children run plain Node: no test loader, no coverage hooks of this process. */
const env: NodeJS.ProcessEnv = { ...process.env };
delete env.NODE_OPTIONS;
delete env.NODE_V8_COVERAGE;

/** Every entry point, imported with its types as a strict NodeNext project would. */
const CONSUMER_TS = `
import { Supervisor, type HandoffRecord, type SupervisorOptions } from '${pkg.name}';
import { SealError, createService, startService, type HandoffService, type ServiceOptions } from '${pkg.name}/service';
import { FakeSupervisor, HandoffStepError, type HookCall, type ServiceUnderTest } from '${pkg.name}/testing';
import { Channel, type Message } from '${pkg.name}/protocol';

export type Shapes = [SupervisorOptions, HandoffRecord, HandoffService, ServiceOptions, HookCall, ServiceUnderTest, Message];
const values = { Supervisor, SealError, createService, startService, FakeSupervisor, HandoffStepError, Channel };
console.log(JSON.stringify(Object.entries(values).map(([k, v]) => k + ':' + typeof v)));
`;

/** The code blocks README.md marks `<!-- file: NAME -->` ("Testing your service"), by file name. */
function readmeFiles(): Map<string, string> {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const out = new Map<string, string>();
  for (const m of readme.matchAll(/<!-- file: (\S+) -->\n```ts\n([\s\S]*?)```/g)) out.set(m[1]!, m[2]!);
  return out;
}

t.test('packed, installed by name, imported with types, run, and the CLI works', async (t) => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-pack-'));
  t.teardown(() => fs.rmSync(tmp, { recursive: true, force: true }));

  // --ignore-scripts: pack dist as built (prepare would rebuild it under the other tests' feet).
  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], { cwd: ROOT, env, timeout: 120_000 });
  const [info] = JSON.parse(packed.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const files = new Set(info!.files.map((f) => f.path));

  const needed = [
    'package.json',
    'README.md',
    ...Object.values(pkg.bin),
    pkg.main,
    pkg.types,
    ...Object.values(pkg.exports).flatMap((e) => [e.types, e.default]),
    'dist/src/cli/main.js',
    'dist/examples/kv/main.js',
    'systemd/handoff@.service',
    'systemd/handoff@.socket',
    'systemd/README.md',
  ].map((p) => p.replace(/^\.\//, ''));
  t.same(
    needed.filter((p) => !files.has(p)),
    [],
    'ships the entry points, their types, the CLI, the demo service and the units',
  );
  const unwanted = [...files].filter((p) => /^(test|bench|scripts|src)\//.test(p) || /^dist\/(test|bench)\//.test(p) || /\.test\.|\.map$/.test(p));
  t.same(unwanted, [], 'ships no tests, benchmarks, TypeScript sources of the library or source maps');

  const app = path.join(tmp, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', '--ignore-scripts', path.join(tmp, info!.filename)], { cwd: app, env, timeout: 240_000 });
  t.ok(fs.existsSync(path.join(app, 'node_modules', pkg.name, 'package.json')), `installed as node_modules/${pkg.name}`);

  // Compiled as a strict NodeNext project would (@types/node is the consumer's own: ours here), then run.
  const example = readmeFiles();
  t.same([...example.keys()].sort(), ['handoff.test.ts', 'service.ts'], 'README.md has the example test and its service');
  for (const [name, code] of example) fs.writeFileSync(path.join(app, name), code);
  fs.writeFileSync(path.join(app, 'consumer.ts'), CONSUMER_TS);
  fs.writeFileSync(
    path.join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
      },
      files: ['consumer.ts', ...example.keys()],
    }),
  );
  const tsc = await run(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', app], { cwd: app, env, timeout: 180_000 }).catch(
    (err: { stdout?: string; message: string }) => ({ stdout: err.stdout ?? err.message, failed: true }),
  );
  t.notOk('failed' in tsc, `the consumer and README's example typecheck${'failed' in tsc ? `:\n${tsc.stdout}` : ''}`);

  const ran = await run(process.execPath, ['consumer.js'], { cwd: app, env, timeout: 60_000 });
  t.same(
    JSON.parse(ran.stdout),
    ['Supervisor', 'SealError', 'createService', 'startService', 'FakeSupervisor', 'HandoffStepError', 'Channel'].map((k) => `${k}:function`),
    'every entry point imports as ESM',
  );
  const tested = await run(process.execPath, ['--test', 'handoff.test.js'], { cwd: app, env, timeout: 120_000 }).catch(
    (err: { stdout?: string; message: string }) => ({ stdout: err.stdout ?? err.message, failed: true }),
  );
  t.notOk('failed' in tested, `README's example test passes under node --test, from the installed package${'failed' in tested ? `:\n${tested.stdout}` : ''}`);
  t.match(tested.stdout, /^# pass 1$/m, 'its one test ran');

  const bin = path.join(app, 'node_modules', '.bin', 'handoff');
  const version = await run(bin, ['--version'], { cwd: app, env, timeout: 30_000 });
  t.equal(version.stdout.trim(), pkg.version, 'handoff --version');
  const help = await run(bin, ['--help'], { cwd: app, env, timeout: 30_000 });
  for (const cmd of ['run', 'upgrade', 'status', 'abort', 'history', 'demo']) t.match(help.stdout, new RegExp(`\\n\\s+${cmd}\\b`), `handoff --help lists ${cmd}`);
});
