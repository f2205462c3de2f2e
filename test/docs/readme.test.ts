/** README.md against the code: the defaults of `handoff run`, of the library and of the admin API. */

import { readFileSync } from 'node:fs';
import http from 'node:http';
import t from 'tap';
import { RUN_OPTIONS } from '../../src/cli/config.js';
import { parseDuration } from '../../src/cli/duration.js';
import { defaultAdminSocket, defaultStateDir, type Host } from '../../src/cli/paths.js';
import { HttpDrain } from '../../src/service/http-drain.js';
import { DEFAULT_STOP_GRACE_MS } from '../../src/service/stop.js';
import { DEFAULT_HISTORY_LIMIT, HEADERS_TIMEOUT_MS, MAX_BODY_BYTES, MAX_TIMEOUT_CHECK_MS, REQUEST_TIMEOUT_MS } from '../../src/supervisor/admin.js';
import { DEFAULT_OPTIONS } from '../../src/supervisor/types.js';
import { claim, readDoc, ROOT } from './doc.js';

const NAME = 'README.md';
const doc = readDoc(NAME);
const DUR = String.raw`(\d+(?:\.\d+)? ?(?:ms|s)|second)`;
const re = (s: string): RegExp => new RegExp(s);

t.test('the defaults in the table of `handoff run`', (t) => {
  // Rows such as "| `--heartbeat` / `--heartbeat-timeout` | 1s / 5s | ... |" (whitespace collapsed).
  const rows = [...doc.matchAll(/\| ((?:`--[a-z-]+`(?: \/ )?)+) \| ([^|]+) \|/g)].map((m) => ({
    flags: [...(m[1] ?? '').matchAll(/`--([a-z-]+)`/g)].map((f) => f[1] ?? ''),
    defaults: (m[2] ?? '').trim().split(' / '),
  }));
  const checked = RUN_OPTIONS.filter((o) => o.kind === 'duration' || o.kind === 'count');
  t.ok(checked.length >= 10, 'the numeric options');
  for (const o of checked) {
    const row = rows.filter((r) => r.flags.includes(o.name));
    if (!t.equal(row.length, 1, `one row for --${o.name}`)) continue;
    const r = row[0]!;
    const text = r.defaults[r.flags.indexOf(o.name)] ?? '';
    if (o.durationKey) t.equal(parseDuration(text), DEFAULT_OPTIONS[o.durationKey], `--${o.name} defaults to ${text}`);
    else t.equal(Number(text), DEFAULT_OPTIONS.startLimit, `--${o.name} defaults to ${text}`);
  }
  t.end();
});

t.test("the library's defaults", (t) => {
  const drain = new HttpDrain(http.createServer());
  claim(t, doc, NAME, re(`closed after a ${DUR} linger \\(\`lingerMs\`\\)`), [drain.lingerMs]);
  claim(t, doc, NAME, re(`so the drain ends before S kills; ${DUR} without S\\)`), [DEFAULT_STOP_GRACE_MS]);
  t.end();
});

t.test("the admin API's limits", (t) => {
  claim(t, doc, NAME, /413 for bodies over (\d+) KiB/, [MAX_BODY_BYTES / 1024]);
  claim(t, doc, NAME, /the last N entries \(default (\d+)\)/, [DEFAULT_HISTORY_LIMIT]);
  claim(t, doc, NAME, re(`headers not complete within ${DUR}, or the request within ${DUR}; checked every ${DUR}\\)`), [HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS, MAX_TIMEOUT_CHECK_MS]);
  t.end();
});

t.test('the default paths and log format of `handoff run`', (t) => {
  // Each row's default cell, as the code computes each case (placeholders for the variables).
  const cell = (flag: string): string => {
    const m = new RegExp(`\\| \`--${flag} [A-Z]+\` \\| ([^|]+) \\|`).exec(doc);
    return m?.[1] ?? '';
  };
  const user = (o: Partial<Host> = {}): Host => ({ uid: 4242, home: '~', tmpdir: '$TMPDIR', exists: () => false, ...o });
  const shown = (p: string): string => p.replace(/4242/g, 'UID');
  const socket = cell('admin-socket');
  t.match(socket, `\`${defaultAdminSocket({ RUNTIME_DIRECTORY: '$RUNTIME_DIRECTORY' }, 'NAME', user())}\``);
  t.match(socket, `\`${defaultAdminSocket({ XDG_RUNTIME_DIR: '$XDG_RUNTIME_DIR' }, 'NAME', user())}\``);
  t.match(socket, `\`${shown(defaultAdminSocket({}, 'NAME', user({ exists: (p) => p === '/run/user/4242' })))}\``);
  t.match(socket, `\`${shown(defaultAdminSocket({}, 'NAME', user()))}\``);
  t.match(socket, `root: \`${defaultAdminSocket({}, 'NAME', user({ uid: 0 }))}\``);
  const state = cell('state-dir');
  t.match(state, `\`${defaultStateDir({ STATE_DIRECTORY: '$STATE_DIRECTORY' }, 'NAME', user())}\``);
  t.match(state, `\`${defaultStateDir({ XDG_STATE_HOME: '/XDG' }, 'NAME', user()).replace('/XDG', '$XDG_STATE_HOME')}\``);
  t.match(state, `\`${defaultStateDir({}, 'NAME', user())}\``);
  t.match(state, `root: \`${defaultStateDir({}, 'NAME', user({ uid: 0 }))}\``);
  t.notMatch(doc, /\.\/handoff\.sock|\.\/\.handoff/, 'nothing in the current directory');
  t.match(cell('name'), "the command's basename");
  const format = RUN_OPTIONS.find((o) => o.name === 'log-format');
  t.equal(format?.defaultText, 'pretty on a terminal, else json');
  t.match(doc, '| `--log-format` | `pretty` on a terminal, else `json` |');
  t.end();
});

t.test('durations in the examples carry units', (t) => {
  const raw = readFileSync(new URL('README.md', ROOT), 'utf8');
  const durationKeys = RUN_OPTIONS.filter((o) => o.kind === 'duration').map((o) => o.name);
  let seen = 0;
  for (const block of raw.matchAll(/```json\n([\s\S]*?)```/g)) {
    const obj = JSON.parse(block[1] ?? '{}') as Record<string, unknown>;
    for (const k of durationKeys) {
      if (obj[k] === undefined) continue;
      seen++;
      t.doesNotThrow(() => parseDuration(obj[k] as string), `"${k}": ${JSON.stringify(obj[k])} parses`);
    }
  }
  t.ok(seen >= 2, 'the config example has durations');
  for (const m of raw.matchAll(/--(hello-timeout|drain-grace|deadline|exit-timeout|kill-after|heartbeat|heartbeat-timeout|restart-initial|restart-max)[ =](\S+)/g)) {
    if (/^[A-Z]/.test(m[2] ?? '')) continue; // a placeholder (D)
    t.doesNotThrow(() => parseDuration((m[2] ?? '').replace(/[`,.;)]+$/, '')), m[0]);
  }
  t.end();
});
