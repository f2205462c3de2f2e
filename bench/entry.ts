/** How a bench runs as a script: its result is the exit code, and a throw is one line on stderr and exit code 2. */

import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** True when the module at `url` (its import.meta.url) is the script node was started with, not a module a test imports. */
export function isScript(url: string): boolean {
  return process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(url);
}

/** Runs `main` as the process: the number it returns is the exit code; a throw is `name: stack` on stderr and 2. */
export function runMain(name: string, main: () => Promise<number>): void {
  main().then(
    (code) => {
      process.exitCode = code;
    },
    (err: unknown) => {
      process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exitCode = 2;
    },
  );
}
