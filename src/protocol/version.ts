import { ProtocolError } from './errors.js';

/** The highest version in both ranges, else `version_mismatch` naming both. */
export function negotiateVersion(ourMin: number, ourMax: number, theirMin: number, theirMax: number): number {
  const hi = Math.min(ourMax, theirMax);
  const lo = Math.max(ourMin, theirMin);
  if (hi < lo || ourMin > ourMax || theirMin > theirMax) {
    throw new ProtocolError('version_mismatch', `no common version: ours ${ourMin}..${ourMax}, theirs ${theirMin}..${theirMax}`);
  }
  return hi;
}
