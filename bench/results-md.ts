/** Rewrites one marked section of bench/RESULTS.md, leaving everything else in the file as it was. */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const TITLE = '# Benchmark results\n\nWritten by the `bench:*` scripts; each owns the section between its markers.\n';

export function writeSection(file: string, name: string, body: string): void {
  const start = `<!-- ${name}:start -->`;
  const end = `<!-- ${name}:end -->`;
  const block = `${start}\n${body.trimEnd()}\n${end}`;
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : TITLE;
  const i = old.indexOf(start);
  const j = i < 0 ? -1 : old.indexOf(end, i);
  let next: string;
  if (i >= 0 && j >= 0) next = old.slice(0, i) + block + old.slice(j + end.length);
  else next = `${old.trimEnd()}\n\n${block}\n`;
  // Write beside, then rename: a reader (or the other bench) never sees half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, next);
  fs.renameSync(tmp, file);
}

/** bench/RESULTS.md: every bench writes its own section of it. */
export const RESULTS = fileURLToPath(new URL('./RESULTS.md', import.meta.url));

/** Writes the section `name` of bench/RESULTS.md and says so on `out`. */
export function writeResults(name: string, body: string, out: (s: string) => unknown): void {
  writeSection(RESULTS, name, body);
  out(`\nwritten to ${path.relative(process.cwd(), RESULTS)}`);
}
