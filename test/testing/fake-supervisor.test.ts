/**
 * The fake supervisor's own promises, on a minimal service: each failing step rolls back as S does
 * and says why, a service that cannot start is reported, the end of a process is emulated (open
 * connections reset), and the stages cannot be taken out of order.
 */

import http from 'node:http';
import net from 'node:net';
import t, { type Test } from 'tap';
import type { ServiceOptions } from '../../src/service/index.js';
import { FakeSupervisor, HandoffStepError } from '../../src/testing/index.js';

/** A service with one shard whose revision is a counter; `over` replaces any option. */
function app(over: Partial<ServiceOptions> = {}): ServiceOptions & { server: http.Server } {
  let rev = 0;
  const server = http.createServer((req, res) => {
    if (req.method === 'POST') rev++;
    res.end(String(rev));
  });
  return {
    server,
    buildId: 'app',
    servers: { http: server },
    open: async () => ({ revisions: [rev] }),
    seal: async () => ({ revisions: [rev], fingerprint: new Uint8Array(32) }),
    health: () => true,
    ...over,
  };
}

async function fake(t: Test): Promise<FakeSupervisor> {
  const sup = await FakeSupervisor.create({ timeoutMs: 5_000, drainGraceMs: 1_000 });
  t.teardown(() => sup.close());
  return sup;
}

t.test('a begin hook that throws: begin() rejects with the successor’s Abort, the incumbent resumes', async (t) => {
  const sup = await fake(t);
  const v1 = await sup.coldStart(app());
  const sealed = await (await sup.handoff(app({ begin: () => Promise.reject(new Error('no disk')) }))).seal();
  const err = await sealed.begin().catch((e: unknown) => e);
  t.ok(err instanceof HandoffStepError, 'a HandoffStepError');
  t.match(err, { step: 'begin', kind: 'successor_failed', got: { type: 'Abort', reason: /no disk/ } });
  t.same(sealed.successor.hooks, [{ hook: 'begin', outcome: 'threw', error: 'no disk' }], 'the hook call is recorded with its error');
  t.equal(sealed.successor.exitCode, 1, 'the successor exited 1');
  t.equal(v1.frames.at(-1)?.message.type, 'ResumeAfterAbort', 'Begin was sent: the incumbent is told to resume');
  t.ok(v1.service.phase === 'serving', 'the incumbent serves');
  await t.rejects(sealed.abort(), /has ended/, 'nothing left to abort');
});

t.test('revisions that differ from the sealed ones are not committed', async (t) => {
  const sup = await fake(t);
  await sup.coldStart(app());
  const ready = await (await (await sup.handoff(app({ open: async () => ({ revisions: [7] }) }))).seal()).begin();
  await t.rejects(ready.commit(), { kind: 'revision_mismatch', message: /sealed \[0\], the successor advertises \[7\]/ });
  t.equal(ready.successor.exitCode, 0, 'rolled back: the successor drained and left');
  t.equal(sup.incumbent, ready.incumbent, 'the incumbent still serves');
});

t.test('hooks: sync ones stay sync, values are recorded; one handoff at a time; stages in order', async (t) => {
  const sup = await fake(t);
  const v1 = await sup.coldStart(app());
  const drained = await sup.handoff(app());
  await t.rejects(sup.handoff(app()), /already in flight/);
  const sealed = await drained.seal();
  await t.rejects(drained.seal(), /already called/);
  const v2 = await (await sealed.begin()).commit();
  t.match(v2.hooks, [
    { hook: 'open', outcome: 'returned', value: { revisions: [0] } },
    { hook: 'health', outcome: 'returned', value: true },
  ]);
  t.match(v1.hooks[1], { hook: 'seal', outcome: 'returned', value: { revisions: [0] } });
  t.equal(sup.incumbent, v2);
  await t.rejects(sup.coldStart(app()), /already serves/);
});

t.test('a cold start whose open throws is reported with its exit', async (t) => {
  const sup = await fake(t);
  await t.rejects(sup.coldStart(app({ open: () => Promise.reject(new Error('corrupt')) })), { name: 'HandoffStepError', step: 'hello', kind: 'incumbent_failed', message: /exit code 1/ });
  await t.rejects(sup.handoff(app()), /no incumbent serves/);
});

t.test('an exit resets the connections still open, as the end of a process does', async (t) => {
  // A long drain grace and linger: only the exit can close the idle connection in time.
  const sup = await FakeSupervisor.create({ drainGraceMs: 60_000 });
  t.teardown(() => sup.close());
  const v1 = await sup.coldStart(app({ lingerMs: 60_000 }));
  const sock = net.connect(sup.port());
  await new Promise((r) => sock.once('connect', r));
  let closed = false;
  sock.once('close', () => (closed = true));
  const draining = v1.next('accept-closed');
  void v1.service.stop();
  await draining;
  t.notOk(closed, 'the stop’s drain leaves the idle connection to its linger');
  // A second stop exits at once (exit 1), without waiting for the drain.
  void v1.service.stop();
  t.equal(await v1.exited(), 1, 'exited on the second stop');
  const reset = await new Promise<boolean>((r) => {
    if (closed) return r(true);
    sock.once('close', () => r(true));
    setTimeout(() => r(false), 10_000).unref();
  });
  t.ok(reset, 'the connection was reset by the exit');
});

t.test('close() stops what still runs, as S’s SIGTERM does', async (t) => {
  const sup = await FakeSupervisor.create();
  const v1 = await sup.coldStart(app({ close: () => undefined }));
  await sup.close();
  t.equal(v1.exitCode, 0, 'stopped cleanly');
  t.same(v1.calls, ['open', 'close'], 'its close hook ran');
  await t.rejects(sup.coldStart(app()), /lost or closed/);
});
