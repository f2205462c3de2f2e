// The kv example with its data-dir lock defeated: each process takes a lock of its own
// (BENCH_LOCK_DIR/<pid>), so two kv processes can run on one data directory at once. That is what
// PM2's reload needs (it starts the new worker before it stops the old one), and exactly what kv's
// lock exists to forbid: `npm run bench:compare` runs PM2 both ways and reports what happens to
// the acknowledged writes. Bench-only; never used by the package.

import os from 'node:os';
import path from 'node:path';

const dir = process.env.BENCH_LOCK_DIR ?? os.tmpdir();
process.argv.push('--lock', path.join(dir, `kv-${process.pid}.lock`));
await import(new URL('../dist/examples/kv/main.js', import.meta.url).href);
