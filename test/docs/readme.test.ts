/** README.md against the code: the defaults of `handoff run`, of the library and of the admin API. */

import http from 'node:http';
import t from 'tap';
import { RUN_OPTIONS } from '../../src/cli/config.js';
import { parseDuration } from '../../src/cli/duration.js';
import { HttpDrain } from '../../src/service/http-drain.js';
import { DEFAULT_STOP_GRACE_MS } from '../../src/service/stop.js';
import { DEFAULT_HISTORY_LIMIT, HEADERS_TIMEOUT_MS, MAX_BODY_BYTES, MAX_TIMEOUT_CHECK_MS, REQUEST_TIMEOUT_MS } from '../../src/supervisor/admin.js';
import { DEFAULT_OPTIONS } from '../../src/supervisor/types.js';
import { claim, readDoc } from './doc.js';

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
