/** Where the package's built files are, found from this module's own location (never the cwd). */

import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The directory of the `handoff-supervisor` package.json above this module (src/ under ts-node, dist/src/ when built). */
export function packageRoot(from: string = path.dirname(fileURLToPath(import.meta.url))): string {
  let dir = from;
  for (;;) {
    const pj = path.join(dir, 'package.json');
    if (fs.existsSync(pj)) {
      try {
        const name: unknown = (JSON.parse(fs.readFileSync(pj, 'utf8')) as { name?: unknown }).name;
        if (name === 'handoff-supervisor') return dir;
      } catch {
        // not ours: keep looking
      }
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`no handoff package.json above ${from}`);
    dir = up;
  }
}

export interface BuiltPaths {
  root: string;
  /** The example service. */
  kvMain: string;
  /** The process that runs a Supervisor for the demo and the bench. */
  host: string;
}

/** The built files the demo runs; throws with a hint when `npm run build` has not produced them. */
export function builtPaths(root: string = packageRoot()): BuiltPaths {
  const p = {
    root,
    kvMain: path.join(root, 'dist', 'examples', 'kv', 'main.js'),
    host: path.join(root, 'dist', 'src', 'cli', 'demo', 'host.js'),
  };
  for (const f of [p.kvMain, p.host]) {
    if (!fs.existsSync(f)) throw new Error(`${path.relative(root, f)} is missing: run \`npm run build\` first`);
  }
  return p;
}
