/**
 * The public API, pinned: each entry point of package.json's `exports` map exports exactly these
 * names (from the built dist, as an installed package would), and README.md's API section names
 * each of them. Growing the API is deliberate: change this list, the README, and say why.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import t from 'tap';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** Runtime names per entry point (types are not values: the compiler checks those). */
const PINNED: Record<string, string[]> = {
  '.': ['ConfigReloadError', 'DEFAULT_OPTIONS', 'ExecNotAllowedError', 'HANDOFF_PHASES', 'ProtocolError', 'StartLimitError', 'Supervisor', 'isRestartRecord'],
  './service': ['ContractError', 'HttpDrain', 'SealError', 'createService', 'defaultLogger', 'startService'],
  './testing': ['FakeSupervisor', 'HandoffStepError'],
  './protocol': [
    'Channel',
    'ERROR_KINDS',
    'FrameDecoder',
    'MAX_BUILD_ID',
    'MAX_FRAME',
    'MAX_LISTENING_ON',
    'MAX_REASON_DETAIL',
    'MAX_REVISIONS',
    'MAX_STR_BYTES',
    'MESSAGE_TYPES',
    'MIN_FRAME',
    'NIL_ID',
    'PROTO_MAX',
    'PROTO_MIN',
    'ProtocolError',
    'SCHEMAS',
    'abortReason',
    'asProtocolError',
    'decodeFrames',
    'decodeMessage',
    'describe',
    'encodeFrame',
    'encodeMessage',
    'idEquals',
    'idToString',
    'isErrorKind',
    'isNilId',
    'messageHandoffId',
    'negotiateVersion',
    'newHandoffId',
    'parseReason',
    'shortName',
    'uuidToId',
  ],
};

interface Entry {
  types: string;
  default: string;
}
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { exports: Record<string, Entry> };

t.test('package.json exports exactly the pinned entry points', async (t) => {
  t.same(Object.keys(pkg.exports).sort(), Object.keys(PINNED).sort());
});

for (const [entry, names] of Object.entries(PINNED)) {
  t.test(`${entry} exports exactly its pinned names`, async (t) => {
    const target = pkg.exports[entry];
    if (!target) return t.fail(`no ${entry} in package.json exports`);
    t.ok(fs.existsSync(path.join(ROOT, target.types)), `${target.types} is built`);
    const mod = (await import(pathToFileURL(path.join(ROOT, target.default)).href)) as Record<string, unknown>;
    t.same(Object.keys(mod).sort(), [...names].sort(), `${target.default}`);
  });
}

t.test('README.md’s API section documents every exported name', async (t) => {
  const readme = fs.readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const m = /<!-- section: api -->([\s\S]*?)<!-- \/section: api -->/.exec(readme);
  if (!m) return t.fail('README.md has no API section (<!-- section: api -->)');
  const api = m[1]!;
  for (const [entry, names] of Object.entries(PINNED)) {
    const missing = names.filter((n) => !api.includes(`\`${n}\``) && !new RegExp(`\`${n}[(.<]`).test(api));
    t.same(missing, [], `every export of ${entry} is named in the API section`);
  }
  for (const entry of Object.keys(PINNED)) {
    const spec = entry === '.' ? 'handoff-supervisor' : `handoff-supervisor/${entry.slice(2)}`;
    t.ok(api.includes(`\`${spec}\``), `the API section names the entry ${spec}`);
  }
});
