/**
 * The kv example: an HTTP key-value store on a sharded append-only log, handed over by `handoff`
 * without losing a request or an acknowledged write. It embeds the service library the way any
 * service would: service.ts builds the server and the hooks, this file runs them as a process (the
 * arguments, the event log, the faults that end the process). Faults are opt-in test equipment (see README.md).
 *
 *   node dist/examples/kv/main.js --data DIR [--shards 4] [--build-id X] [--fault NAME]...
 */

import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
// In your own service: import { createService, defaultLogger } from 'handoff-supervisor/service';
import { createService, defaultLogger } from '../../src/service/index.js';
import { FAULTS, kvService, type Fault } from './service.js';

// --- test equipment: an event log and breakpoints (opt-in, see README.md) ---------------------------
// KV_EVENTS=<file>: one JSON line per event, appended synchronously, so that a test can follow this
// process's protocol steps from outside, without sleeping. KV_BREAK=<file>: lines `<pid|build> <event>`;
// at a listed event this process stops itself (SIGSTOP) right after logging it, so that a test can
// inject a fault at that exact point, then SIGCONT it. The file is read at every event: the test edits it.
const eventsFile = process.env.KV_EVENTS;
const breakFile = process.env.KV_BREAK;
let eventBuild: string | null = null;

function note(event: string, detail: Record<string, unknown> = {}): void {
  if (eventsFile) {
    const rec = { event, pid: process.pid, build: eventBuild, t_ns: process.hrtime.bigint().toString(), ...detail };
    try {
      fs.appendFileSync(eventsFile, `${JSON.stringify(rec, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}\n`);
    } catch {
      // A test aid must never take the service down.
    }
  }
  if (breakFile !== undefined && breakpointAt(event)) process.kill(process.pid, 'SIGSTOP');
}

function breakpointAt(event: string): boolean {
  let text: string;
  try {
    text = fs.readFileSync(breakFile!, 'utf8');
  } catch {
    return false;
  }
  return text.split('\n').some((line) => {
    const [who, ev] = line.trim().split(/\s+/);
    return ev === event && (who === String(process.pid) || (eventBuild !== null && who === eventBuild));
  });
}

// The build before the arguments are parsed, so that a breakpoint at `start` can name it.
const buildArg = process.argv.findIndex((a) => a === '--build-id' || a.startsWith('--build-id='));
eventBuild = buildArg < 0 ? 'kv-dev' : (process.argv[buildArg]!.split('=')[1] ?? process.argv[buildArg + 1] ?? null);
note('start', { argv: process.argv.slice(2) });
process.on('exit', (code) => note('exit', { code }));

function usage(msg: string): never {
  process.stderr.write(`kv: ${msg}\nusage: main.js --data DIR [--shards N] [--build-id ID] [--lock PATH] [--listen HOST:PORT] [--fault NAME]... [--fault-ms MS]\n`);
  process.exit(2);
}

const { values } = (() => {
  try {
    return parseArgs({
      options: {
        data: { type: 'string' },
        shards: { type: 'string', default: '4' },
        'build-id': { type: 'string', default: 'kv-dev' },
        lock: { type: 'string' },
        listen: { type: 'string' },
        fault: { type: 'string', multiple: true, default: [] },
        'fault-ms': { type: 'string', default: '2000' },
      },
      strict: true,
    });
  } catch (err) {
    return usage((err as Error).message);
  }
})();

if (!values.data) usage('--data is required');
const shards = Number(values.shards);
if (!Number.isInteger(shards) || shards < 1 || shards > 1024) usage('--shards must be an integer from 1 to 1024');
const faultMs = Number(values['fault-ms']);
if (!Number.isFinite(faultMs) || faultMs < 0) usage('--fault-ms must be a non-negative number');
const faults = new Set<Fault>();
for (const f of values.fault) {
  if (!(FAULTS as readonly string[]).includes(f)) usage(`unknown fault ${f} (known: ${FAULTS.join(', ')})`);
  faults.add(f as Fault);
}
const fault = (f: Fault): boolean => faults.has(f);
const die = (): never => process.kill(process.pid, 'SIGKILL') as never;

if (fault('crash-before-hello')) process.exit(1);
// No heartbeats from us: S must notice the silence.
if (fault('silent')) process.env.HANDOFF_HEARTBEAT_MS = String(2 ** 31 - 1);

function parseListen(s: string): { host: string; port: number } {
  const m = /^(.*):(\d+)$/.exec(s);
  if (!m) usage('--listen takes HOST:PORT');
  return { host: m[1] || '127.0.0.1', port: Number(m[2]) };
}

const dataDir = path.resolve(values.data);
// The default lock lives in the data directory, so it must exist before the lock is taken.
fs.mkdirSync(dataDir, { recursive: true });
const buildId = values['build-id'];
eventBuild = buildId;
const log = defaultLogger().child({ svc: 'kv', build_id: buildId });
const { options, server } = kvService({
  dataDir,
  shards,
  buildId,
  lockPath: values.lock ?? (process.env.HANDOFF_LOCK_PATH ? undefined : path.join(dataDir, 'kv.lock')),
  listen: values.listen ? parseListen(values.listen) : undefined,
  logger: log,
  faults,
  faultMs,
  note,
});

const service = createService(options);
if (eventsFile !== undefined || breakFile !== undefined) {
  const events = ['hello', 'accepting', 'accept-closed', 'prepare', 'drained', 'seal', 'sealed', 'seal-failed', 'begin', 'ready', 'committed', 'aborted', 'resumed', 'supervisor-lost'] as const;
  for (const ev of events) {
    service.on(ev, (...args: unknown[]) => {
      const detail = (args[0] ?? {}) as Record<string, unknown>;
      // Where a standalone copy listens (it is not told its port otherwise).
      const addr = ev === 'accepting' ? server.address() : undefined;
      note(ev, addr && typeof addr === 'object' ? { ...detail, port: addr.port } : detail);
    });
  }
}
if (fault('crash-on-prepare')) service.on('prepare', die);
if (fault('crash-after-seal')) service.on('sealed', () => process.exit(1));
if (fault('crash-after-ready')) service.on('ready', die);
if (faults.size > 0) log.warn({ faults: [...faults], fault_ms: faultMs }, 'fault injection enabled');

await service.start();
log.info({ role: service.contract.role, supervised: service.supervised }, 'serving');
