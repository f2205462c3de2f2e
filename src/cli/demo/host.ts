/**
 * The supervisor host: a process that runs one in-process Supervisor for the demo and the handoff
 * bench, driven over Node's IPC channel (see host-protocol.ts).
 *
 * Why a process of its own rather than a Supervisor inside the demo: the services S spawns inherit
 * S's stdout and stderr, and the host's are the demo's log file, so neither S's pino logs nor the
 * services' output reach the terminal; the load generator does not share S's event loop (S's
 * timers and heartbeats run as they would in production); and the bench can read S's own RSS.
 * It talks to S through the same API the admin API uses (`upgrade`, `status`, `stop`).
 *
 * When the parent goes away (the IPC channel disconnects) the host kills every child and exits.
 */

import { pino } from 'pino';
import { Supervisor } from '../../supervisor/supervisor.js';
import type { HostCrash, HostMessage, HostRequest, HostResults } from './host-protocol.js';
import { descendantsOf, waitGone } from './procs.js';

const log = pino({ level: process.env['HANDOFF_DEMO_LOG_LEVEL'] ?? 'info', base: { pid: process.pid, name: 'supervisor' } });
let sup: Supervisor | null = null;

function send(m: HostMessage): void {
  if (process.connected) process.send?.(m);
}

async function handle(r: HostRequest): Promise<HostResults[keyof HostResults]> {
  switch (r.op) {
    case 'start': {
      if (sup) throw new Error('already started');
      sup = new Supervisor({ ...r.opts, env: process.env }, log);
      await sup.start();
      return sup.status();
    }
    case 'upgrade':
      return need().upgrade(r.req, (event) => send({ event }));
    case 'status':
      return need().status();
    case 'memory': {
      const gc = (globalThis as { gc?: () => void }).gc;
      if (r.gc && gc) gc();
      const m = process.memoryUsage();
      return { rss: m.rss, heapUsed: m.heapUsed, external: m.external };
    }
    case 'crash':
      return crash(need());
    case 'stop':
      if (sup) await sup.stop();
      return null;
  }
}

/** Kills the incumbent as a crash would (SIGKILL, lock left behind) and resolves once S schedules its cold start. */
function crash(s: Supervisor): Promise<HostCrash> {
  const inc = s.status().incumbent;
  if (!inc) return Promise.reject(new Error('no incumbent serving to crash'));
  return new Promise((resolve) => {
    log.warn({ child_pid: inc.pid }, 'demo: killing the incumbent (SIGKILL) to show a crash');
    const killedAtMs = Date.now();
    s.once('restart', (r) => resolve({ pid: inc.pid, killedAtMs, build_id: inc.build_id, ...r }));
    process.kill(inc.pid, 'SIGKILL');
  });
}

function need(): Supervisor {
  if (!sup) throw new Error('not started');
  return sup;
}

process.on('message', (raw: unknown) => {
  const r = raw as HostRequest;
  handle(r).then(
    (result) => {
      send({ id: r.id, ok: true, result });
      if (r.op === 'stop') process.disconnect();
    },
    (err: unknown) => send({ id: r.id, ok: false, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) }),
  );
});

// Ctrl-C reaches the whole process group: the demo decides, and its exit disconnects us.
process.on('SIGINT', () => log.info('SIGINT: left to the demo'));

process.on('disconnect', () => {
  const code = sup && sup.state !== 'stopped' ? 1 : 0;
  if (code !== 0) {
    log.warn('the demo went away: killing the services');
    sup?.kill();
  }
  // The services' own helpers (the library's fd-dup process) would outlive their killed parent for a
  // moment: they go too. Exit only once all are gone, so that the demo's exit means nothing is left;
  // anything else (a sonic-boom flush, a socket) must not keep an orphan alive.
  const tree = descendantsOf(process.pid);
  for (const pid of tree) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  void waitGone(tree, 3_000).then(() => setTimeout(() => process.exit(code), 50).unref());
});
