/** Rewrites one marked section of bench/RESULTS.md, leaving everything else in the file as it was. */

import fs from 'node:fs';

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
