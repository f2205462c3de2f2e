/** A test's own temporary directory, removed at its teardown. */

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';

/** Keep `prefix` short: an admin or notify socket inside must fit in a 107-byte path. */
export function tmpdir(t: Test, prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}
