/**
 * Writes the golden vectors: test/vectors/<Type>.hex (one whole frame) and <Type>.json (the same
 * message). Run once, from the repository root, after changing VECTOR_MESSAGES:
 *
 *   node --import ./bench/register.mjs test/vectors/generate.ts
 *
 * The vectors are then frozen: test/protocol/vectors.test.ts checks the codec against them, so a
 * change to the encoding shows up as a failing test, not as silently regenerated files.
 */

import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { encodeFrame } from '../../src/protocol/index.js';
import { toJson } from './json.js';
import { VECTOR_MESSAGES, formatHex } from './messages.js';

const dir = dirname(fileURLToPath(import.meta.url));
for (const msg of VECTOR_MESSAGES) {
  writeFileSync(join(dir, `${msg.type}.hex`), formatHex(encodeFrame(msg, 1)));
  writeFileSync(join(dir, `${msg.type}.json`), JSON.stringify(toJson(msg), null, 2) + '\n');
  console.log(`wrote ${msg.type}.hex and ${msg.type}.json`);
}
