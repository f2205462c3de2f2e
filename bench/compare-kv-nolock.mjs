// The kv example with its data-dir lock defeated: each process takes a lock of its own
// (BENCH_LOCK_DIR/<pid>), so two kv processes can run on one data directory at once. That is what
// PM2's reload needs (it starts the new worker before it stops the old one), and exactly what kv's
// lock exists to forbid: `npm run bench:compare` runs PM2 both ways and reports what happens to
// the acknowledged writes. With BENCH_DATA_PER_PROCESS=1 each process also gets a data directory
// of its own (DIR/p<pid>): kv then behaves as a stateless service would under PM2 (nothing shared,
// every write forgotten at the next reload), which shows PM2's reload mechanism on its own.
// Bench-only; never used by the package.

import os from 'node:os';
import path from 'node:path';

const dir = process.env.BENCH_LOCK_DIR ?? os.tmpdir();
if (process.env.BENCH_DATA_PER_PROCESS === '1') {
  const i = process.argv.indexOf('--data');
  if (i > 0 && process.argv[i + 1]) process.argv[i + 1] = path.join(process.argv[i + 1], `p${process.pid}`);
}
process.argv.push('--lock', path.join(dir, `kv-${process.pid}.lock`));
await import(new URL('../dist/examples/kv/main.js', import.meta.url).href);
