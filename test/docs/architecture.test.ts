/**
 * ARCHITECTURE.md against the code: every default and timing it states is read from the document
 * and compared with the constant the code uses, every path of its map exists, and the layers
 * import downward only.
 */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import t from 'tap';
import { MAX_REASON_DETAIL } from '../../src/protocol/errors.js';
import { MIN_FRAME } from '../../src/protocol/frame.js';
import { MAX_FRAME, PROTO_MAX, PROTO_MIN } from '../../src/protocol/messages.js';
import { MAX_DEPTH } from '../../src/protocol/msgpack.js';
import { MAX_BUILD_ID, MAX_LISTENING_ON, MAX_REVISIONS, MAX_STR_BYTES } from '../../src/protocol/schema.js';
import { DRAIN_SLACK_MS } from '../../src/shared/constants.js';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS } from '../../src/shared/contract.js';
import { MIN_STALE_MS, STALE_HEARTBEAT_TIMEOUTS, defaultStaleMs } from '../../src/shared/lock.js';
import { CLOCK_TICK_MS } from '../../src/supervisor/clock.js';
import { ABORT_EXIT_WAIT_MS } from '../../src/supervisor/handoff.js';
import { LISTEN_BACKLOG } from '../../src/supervisor/listeners/bind.js';
import { STDERR_TAIL_LINES } from '../../src/supervisor/stderr-tail.js';
import { STABLE_MS } from '../../src/supervisor/restarts.js';
import { DEFAULT_OPTIONS as D } from '../../src/supervisor/types.js';
import { ROOT, claim, readDoc } from './doc.js';

const NAME = 'ARCHITECTURE.md';
const doc = readDoc(NAME);
const say = (t: Parameters<typeof claim>[0], pattern: RegExp, ...expected: number[]): void => claim(t, doc, NAME, pattern, expected);

// A duration or a number as the document writes it; the claims below capture these.
const DUR = String.raw`(\d+(?:\.\d+)? ?(?:ms|s))`;
const re = (s: string): RegExp => new RegExp(s);

t.test('the heartbeat', (t) => {
  t.equal(D.heartbeatMs, DEFAULT_HEARTBEAT_MS, "S's default is the library's");
  t.equal(D.heartbeatTimeoutMs, DEFAULT_HEARTBEAT_TIMEOUT_MS, "S's default is the library's");
  say(t, /heartbeat interval \((\d+)\) and silence limit \((\d+)\)/, DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS);
  say(t, re(`sends \`Heartbeat\` every ${DUR} \\(\`--heartbeat\``), D.heartbeatMs);
  say(t, re(`a peer silent for ${DUR} \\(\`--heartbeat-timeout\`\\)`), D.heartbeatTimeoutMs);
  say(t, re(`with a ${DUR} tick`), CLOCK_TICK_MS);
  t.end();
});

t.test('the handoff sequence', (t) => {
  say(t, re(`≤ ${DUR} \\(hello timeout\\)`), D.helloTimeoutMs);
  say(t, re(`deadline \\(${DUR}\\) starts`), D.deadlineMs);
  say(t, re(`close, exit ≤ ${DUR} \\(then SIGTERM, \\+${DUR} SIGKILL\\)`), D.exitTimeoutMs, D.killAfterMs);
  say(t, re(`SIGTERM after \`--exit-timeout\` \\(${DUR}\\), SIGKILL \`--kill-after\` \\(${DUR}\\) later`), D.exitTimeoutMs, D.killAfterMs);
  t.end();
});

t.test('abort and stop', (t) => {
  // Abort: N first gets a moment (or, after Begin, the drain grace and the slack), then signals.
  say(t, re(`waits up to ${DUR} for it to exit \\(after \`Begin\`, when it may have accepted and drains like an incumbent, the drain grace \\+ ${DUR}\\)`), ABORT_EXIT_WAIT_MS, DRAIN_SLACK_MS);
  // Stop: SIGTERM, the drain grace and the slack, SIGTERM again, --kill-after, SIGKILL (ServiceChild.retire).
  say(t, re(`if it is still there after the drain grace \\+ ${DUR}, it gets SIGTERM again, and SIGKILL \`--kill-after\` \\(${DUR}\\) later`), DRAIN_SLACK_MS, D.killAfterMs);
  t.end();
});

t.test('restarts and the start limit', (t) => {
  say(t, re(`\`--restart-initial\` ${DUR} doubling to \`--restart-max\` ${DUR}`), D.restartInitialMs, D.restartMaxMs);
  say(t, re(`the backoff resets once an incumbent has lived ${DUR}`), STABLE_MS);
  say(t, re(`exponential backoff capped at ${DUR}`), D.restartMaxMs);
  say(t, /`--start-limit` \((\d+)\) cold starts/, D.startLimit);
  say(t, /keeping its last (\d+) lines/, STDERR_TAIL_LINES);
  t.end();
});

t.test("the lock's stale time", (t) => {
  t.equal(defaultStaleMs(), Math.max(MIN_STALE_MS, STALE_HEARTBEAT_TIMEOUTS * DEFAULT_HEARTBEAT_TIMEOUT_MS));
  say(t, re(`ours is (\\d+) × the heartbeat timeout, at least ${DUR}, so ${DUR} by default`), STALE_HEARTBEAT_TIMEOUTS, MIN_STALE_MS, defaultStaleMs());
  t.end();
});

t.test('wire limits and versions', (t) => {
  say(t, /`(\d+) <= frame_len <= MAX_FRAME` \(1 MiB = ([\d,]+)\)/, MIN_FRAME, MAX_FRAME);
  say(t, /valid UTF-8, ≤ ([\d,]+) bytes/, MAX_STR_BYTES);
  say(t, /`build_id`: bin ≤ (\d+) bytes/, MAX_BUILD_ID);
  say(t, /`listening_on` ≤ (\d+) strings, revision lists ≤ ([\d,]+) u64/, MAX_LISTENING_ON, MAX_REVISIONS);
  say(t, /cut to (\d+) bytes/, MAX_REASON_DETAIL);
  say(t, /nesting deeper than (\d+)/, MAX_DEPTH);
  say(t, /PROTO_MIN = PROTO_MAX = (\d+)/, PROTO_MIN);
  t.equal(PROTO_MAX, PROTO_MIN);
  say(t, /listens with backlog (\d+)/, LISTEN_BACKLOG);
  t.end();
});

// --- the map ---------------------------------------------------------------------------------------

const raw = fs.readFileSync(new URL(NAME, ROOT), 'utf8');
const root = fileURLToPath(ROOT);
const mapSection = /\n## Where things live\n([\s\S]*?)\n## /.exec(raw)?.[1] ?? '';
const TOP = /^(src|test|bench|bin|examples|systemd|scripts)(\/|$)/;

/** Table rows of the map: the path in the first column, and whether the row marks it pending. */
const rows = [...mapSection.matchAll(/^\| `([^`]+)` \|(.*)\|$/gm)].map((m) => ({ path: m[1] ?? '', pending: /\*pending\*/.test(m[2] ?? '') }));

t.test('every path in "Where things live" exists', (t) => {
  t.ok(rows.length >= 10, `the map has rows (${rows.length})`);
  const named = new Set([...mapSection.matchAll(/`([^`\s]+)`/g)].map((m) => m[1] ?? '').filter((p) => TOP.test(p)));
  for (const r of rows) t.ok(TOP.test(r.path), `${r.path} is a path of the repository`);
  for (const p of named) {
    const pending = rows.some((r) => r.path === p && r.pending);
    const exists = fs.existsSync(path.join(root, p));
    if (pending) t.notOk(exists, `${p} exists now: remove its *pending* mark`);
    else t.ok(exists, `${p} exists`);
    if (exists && p.endsWith('/')) t.ok(fs.statSync(path.join(root, p)).isDirectory(), `${p} is a directory`);
  }
  t.end();
});

t.test('every directory of src/ is in the map', (t) => {
  const mapped = new Set(rows.map((r) => r.path));
  const dirs = fs.readdirSync(path.join(root, 'src'), { withFileTypes: true }).filter((e) => e.isDirectory());
  t.ok(dirs.length > 0);
  for (const d of dirs) t.ok(mapped.has(`src/${d.name}/`), `src/${d.name}/ has a row`);
  t.end();
});

// --- the layers ------------------------------------------------------------------------------------

/** What each directory of src/ may import from (itself included). */
const MAY_IMPORT: Readonly<Record<string, readonly string[]>> = {
  protocol: ['protocol'],
  shared: ['protocol', 'shared'],
  service: ['protocol', 'shared', 'service'],
  supervisor: ['protocol', 'shared', 'supervisor'],
  load: ['protocol', 'shared', 'supervisor', 'load'],
  cli: ['protocol', 'shared', 'service', 'supervisor', 'load', 'cli'],
  // The fake supervisor binds listeners with S's helper and runs the library: it sits beside cli.
  testing: ['protocol', 'shared', 'service', 'supervisor', 'testing'],
};

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? sourceFiles(p) : e.name.endsWith('.ts') ? [p] : [];
  });
}

t.test('each layer imports downward only', (t) => {
  const src = path.join(root, 'src');
  const layers = fs.readdirSync(src, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
  t.same(Object.keys(MAY_IMPORT).sort(), layers.sort(), 'every layer has a rule');
  const wrong: string[] = [];
  let imports = 0;
  for (const [layer, allowed] of Object.entries(MAY_IMPORT)) {
    for (const file of sourceFiles(path.join(src, layer))) {
      for (const m of fs.readFileSync(file, 'utf8').matchAll(/^(?:import|export)\b[^;]*?'(\.{1,2}\/[^']+)'|\bimport\('(\.{1,2}\/[^']+)'\)/gm)) {
        imports++;
        const spec = m[1] ?? m[2] ?? '';
        const to = path.relative(src, path.resolve(path.dirname(file), spec)).split(path.sep)[0] ?? '';
        if (!allowed.includes(to)) wrong.push(`${path.relative(root, file)} imports ${spec}`);
      }
    }
  }
  t.ok(imports > 100, `the imports were found (${imports})`);
  t.same(wrong, [], 'no import goes up or sideways');
  t.end();
});
