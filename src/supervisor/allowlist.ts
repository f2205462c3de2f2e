/**
 * Who may name which program: a handoff request may run a command other than the configured one
 * only when its canonical path (symlinks resolved) is in the allowlist given at start.
 */

import fs from 'node:fs';
import path from 'node:path';

/** A handoff request named a command outside the allowlist. */
export class ExecNotAllowedError extends Error {
  override name = 'ExecNotAllowedError';
  constructor(readonly command: string) {
    super(`command not allowed: ${command} (start the supervisor with --allow-exec for it)`);
  }
}

export function isAllowedExec(command: string, configured: string, allowExec: readonly string[]): boolean {
  if (command === configured) return true;
  let real: string;
  try {
    real = fs.realpathSync(command);
  } catch {
    return false;
  }
  return allowExec.some((p) => {
    try {
      return fs.realpathSync(p) === real;
    } catch {
      return path.resolve(p) === real;
    }
  });
}
