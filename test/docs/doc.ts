/**
 * Reading numbers out of README.md and ARCHITECTURE.md, to compare them with the constants the
 * code uses (the pattern of test/protocol/errors.test.ts, which reads the error kinds). A claim is
 * a pattern that must match its document exactly once: reworded text fails the test until the
 * pattern follows, so a number cannot drift out of the check unnoticed.
 */

import fs from 'node:fs';
import type { Test } from 'tap';

export const ROOT = new URL('../../', import.meta.url);

/** A document with its whitespace collapsed (a sentence may wrap anywhere). */
export function readDoc(name: string): string {
  return fs.readFileSync(new URL(name, ROOT), 'utf8').replace(/\s+/g, ' ');
}

const UNIT_MS: Readonly<Record<string, number>> = { ms: 1, s: 1_000, second: 1_000, seconds: 1_000, m: 60_000, min: 60_000 };

/**
 * A number as a document writes it: `1,048,576`, `4,096`, `5`, or a duration (`250 ms`, `5 s`,
 * `5s`, `250ms`, `1.5 s`, `second` as in "every second"), which comes back in milliseconds.
 */
export function docNumber(text: string): number {
  const plain = /^\d{1,3}(,\d{3})*$|^\d+$/.exec(text.trim());
  if (plain) return Number(text.trim().replace(/,/g, ''));
  const d = /^(\d+(?:\.\d+)?)?\s*(ms|s|m|min|seconds?)$/.exec(text.trim());
  if (!d?.[2]) throw new Error(`not a number or a duration: ${JSON.stringify(text)}`);
  return Number(d[1] ?? '1') * (UNIT_MS[d[2]] ?? Number.NaN);
}

/**
 * `pattern` matches `doc` exactly once; its capture groups, read with docNumber, equal `expected`
 * in order (durations in milliseconds).
 */
export function claim(t: Test, doc: string, docName: string, pattern: RegExp, expected: readonly number[]): void {
  const g = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
  const found = [...doc.matchAll(g)];
  if (!t.equal(found.length, 1, `one statement of ${docName} matches /${pattern.source.slice(0, 60)}…/`)) return;
  const got = found[0]!.slice(1).map((c) => docNumber(c ?? ''));
  t.same(got, expected, `${docName}: ${found[0]![0]}`);
}
