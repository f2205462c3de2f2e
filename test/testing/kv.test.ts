/**
 * The example service under the fake supervisor of `handoff-supervisor/testing`, the way a service
 * author would test their own: kv's real code (examples/kv/service.ts) in this process, handed over
 * step by step. Asserts on kv's data (no acknowledged write lost, none answered twice), on the
 * hooks it ran, and on the frames it exchanged.
 */

import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { pino } from 'pino';
import t, { type Test } from 'tap';
import { kvService, type Fault } from '../../examples/kv/service.js';
import { FakeSupervisor, type ServiceUnderTest } from '../../src/testing/index.js';

interface Reply {
  status: number;
  body: string;
  build: string | undefined;
}

function request(port: number, method: 'GET' | 'PUT', key: string, body?: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path: `/kv/${encodeURIComponent(key)}`, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, build: res.headers['x-kv-build'] as string | undefined }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** kv on one data directory: each call is a new build of it, as each process would be. */
function kvOn(dir: string) {
  return (buildId: string, faults: Fault[] = []) =>
    kvService({ dataDir: dir, shards: 2, buildId, lockPath: path.join(dir, 'kv.lock'), logger: pino({ level: 'silent' }), faults: new Set(faults) }).options;
}

async function setup(t: Test): Promise<{ sup: FakeSupervisor; kv: ReturnType<typeof kvOn>; acked: Map<string, string> }> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-testing-kv-'));
  const sup = await FakeSupervisor.create({ listen: ['http'] });
  t.teardown(async () => {
    await sup.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { sup, kv: kvOn(dir), acked: new Map() };
}

/** PUTs `n` keys and remembers what was acknowledged. */
async function write(port: number, acked: Map<string, string>, prefix: string, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const key = `${prefix}-${i}`;
    const r = await request(port, 'PUT', key, `value of ${key}`);
    if (r.status === 201 || r.status === 200) acked.set(key, `value of ${key}`);
  }
}

/** Every acknowledged write reads back from whoever serves now. */
async function assertNoneLost(t: Test, port: number, acked: Map<string, string>, build: string): Promise<void> {
  let missing = 0;
  for (const [key, value] of acked) {
    const r = await request(port, 'GET', key);
    if (r.status !== 200 || r.body !== value || r.build !== build) missing++;
  }
  t.equal(missing, 0, `all ${acked.size} acknowledged writes read back from ${build}`);
}

const types = (s: ServiceUnderTest): string[] => s.frames.filter((f) => f.message.type !== 'SealProgress').map((f) => `${f.from === 'supervisor' ? '>' : '<'}${f.message.type}`);
/** The events that mark protocol steps (accept's own come and go around them). */
const steps = (s: ServiceUnderTest): string[] => s.events.map((e) => e.event).filter((e) => e !== 'accepting' && e !== 'accept-closed');

t.test('a full handoff: a request queued while nobody accepts is served by the successor, no write is lost', async (t) => {
  const { sup, kv, acked } = await setup(t);
  const port = sup.port('http');
  const v1 = await sup.coldStart(kv('v1'));
  t.same(v1.calls, ['open'], 'a cold start opens its state');
  await write(port, acked, 'before', 20);
  t.equal(acked.size, 20, 'v1 acknowledged every write');

  const drained = await sup.handoff(kv('v2'));
  t.equal(drained.message.open_conns_remaining, 0, 'nothing left open after the drain');
  // Nobody accepts from here until v2 does: this request waits in the kernel queue.
  const queued = request(port, 'PUT', 'queued', 'value of queued');
  const sealed = await drained.seal();
  t.same(sealed.message.last_revision_per_shard.reduce((a, b) => a + b, 0n), 20n, 'sealed at 20 writes over both shards');
  const ready = await sealed.begin();
  t.ok(ready.message.healthz_ok, 'v2 is healthy');
  t.same(ready.message.advertised_revision_per_shard, sealed.message.last_revision_per_shard, 'v2 opened what v1 sealed');
  const v2 = await ready.commit();
  t.equal(sup.incumbent, v2, 'v2 is the incumbent');
  t.equal(v1.exitCode, 0, 'v1 exited 0 after Commit');

  const q = await queued;
  t.equal(q.status, 201, 'the queued write was acknowledged');
  t.equal(q.build, 'v2', 'by v2');
  acked.set('queued', 'value of queued');
  await write(port, acked, 'after', 10);
  await assertNoneLost(t, port, acked, 'v2');

  t.same(v1.calls, ['open', 'seal', 'close'], 'v1: open, seal, close after Commit');
  t.same(v2.calls, ['begin', 'open', 'health'], 'v2: begin, open (lock held), health');
  t.same(types(v1), ['<Hello', '>HelloAck', '>PrepareHandoff', '<Drained', '>SealRequest', '<SealComplete', '>Commit'], 'v1’s frames');
  t.same(types(v2), ['<Hello', '>HelloAck', '>Begin', '<Ready'], 'v2’s frames');
  t.ok(v1.frames.some((f) => f.message.type === 'SealProgress'), 'v1 reported seal progress');
  t.same(steps(v1), ['hello', 'prepare', 'drained', 'seal', 'sealed', 'committed'], 'v1’s handoff events');
  t.same(steps(v2), ['hello', 'begin', 'ready'], 'v2’s handoff events');
});

t.test('abort after seal: the incumbent retakes the lock, reopens its store and serves; the next handoff commits', async (t) => {
  const { sup, kv, acked } = await setup(t);
  const port = sup.port();
  const v1 = await sup.coldStart(kv('v1'));
  await write(port, acked, 'before', 12);

  const sealed = await (await sup.handoff(kv('v2'))).seal();
  t.notOk(v1.service.lockHeld, 'v1 let the lock go when it sealed');
  const queued = request(port, 'PUT', 'queued', 'value of queued');
  const resumed = v1.next('resumed');
  await sealed.abort('the test changed its mind');
  await resumed;
  t.ok(v1.service.lockHeld, 'v1 holds the lock again');
  t.equal(sealed.successor.exitCode, 0, 'v2 left (exit 0) without ever opening');
  t.same(sealed.successor.calls, [], 'v2 ran no hook');
  t.same(types(sealed.successor), ['<Hello', '>HelloAck', '>Abort'], 'v2 was told Abort');
  t.same(v1.calls, ['open', 'seal', 'resume'], 'v1: resume after its seal');
  t.match(sealed.successor.frames.at(-1)?.message, { type: 'Abort', reason: 'operator_abort: the test changed its mind' }, 'v2 got the reason');
  t.match(v1.events.find((e) => e.event === 'aborted')?.detail, { phase: 'sealed' }, 'v1 was called off while sealed');
  t.equal(types(v1).at(-1), '>ResumeAfterAbort', 'and told ResumeAfterAbort');
  t.same(steps(v1), ['hello', 'prepare', 'drained', 'seal', 'sealed', 'aborted', 'resumed'], 'v1’s handoff events');

  const q = await queued;
  t.same([q.status, q.build], [201, 'v1'], 'the write queued while sealed was served by v1 after the resume');
  acked.set('queued', 'value of queued');
  await write(port, acked, 'resumed', 8);
  await assertNoneLost(t, port, acked, 'v1');

  const v3 = await sup.upgrade(kv('v3'));
  t.equal(v1.exitCode, 0, 'the next handoff committed');
  await assertNoneLost(t, port, acked, 'v3');
  t.same(v3.calls, ['begin', 'open', 'health']);
});

t.test('a seal that fails rolls back as S does: the step rejects, the incumbent keeps its lock and serves', async (t) => {
  const { sup, kv, acked } = await setup(t);
  const port = sup.port();
  const v1 = await sup.coldStart(kv('v1', ['seal-fail']));
  await write(port, acked, 'before', 5);
  const drained = await sup.handoff(kv('v2'));
  const err = await drained.seal().then(
    () => undefined,
    (e: unknown) => e,
  );
  t.match(err, { name: 'HandoffStepError', step: 'seal', kind: 'seal_failed', got: { type: 'SealFailed', partial_state: 'writes stopped, all shards fsynced, lock kept' } });
  t.ok(v1.service.lockHeld, 'v1 kept the lock');
  t.equal(drained.successor.exitCode, 0, 'v2 was told Abort and left');
  t.same(types(v1).slice(-3), ['>SealRequest', '<SealFailed', '>Abort'], 'v1 got Abort (not ResumeAfterAbort): it never let the lock go');
  t.same(v1.calls, ['open', 'seal', 'resume'], 'v1 resumed its store');
  await write(port, acked, 'after', 5);
  await assertNoneLost(t, port, acked, 'v1');
  await t.rejects(() => drained.seal(), /has ended/, 'the handoff is over');
});

t.test('an unhealthy successor is not committed: it never accepted, the incumbent resumes', async (t) => {
  const { sup, kv, acked } = await setup(t);
  const port = sup.port();
  const v1 = await sup.coldStart(kv('v1'));
  await write(port, acked, 'before', 5);
  const ready = await (await (await sup.handoff(kv('v2', ['unhealthy']))).seal()).begin();
  t.equal(ready.message.healthz_ok, false, 'Ready says unhealthy');
  t.notOk(ready.successor.events.some((e) => e.event === 'accepting'), 'v2 never accepted');
  await t.rejects(ready.commit(), { name: 'HandoffStepError', kind: 'successor_unhealthy' }, 'commit() refuses as S does');
  t.equal(ready.successor.exitCode, 0, 'v2 rolled back and left');
  t.same(types(v1).at(-1), '>ResumeAfterAbort', 'v1 resumed after Begin had been sent');
  t.equal(sup.incumbent, v1, 'v1 still serves');
  await assertNoneLost(t, port, acked, 'v1');
});

t.test('the supervisor is lost mid-drain: the successor leaves, the incumbent serves on', async (t) => {
  const { sup, kv, acked } = await setup(t);
  const port = sup.port();
  const v1 = await sup.coldStart(kv('v1'));
  await write(port, acked, 'before', 5);
  const drained = await sup.handoff(kv('v2'));
  const lost = v1.next('supervisor-lost');
  const resumed = v1.next('resumed');
  sup.lose();
  t.match(await lost, { reason: /end of stream/, phase: 'drained' }, 'v1 saw the supervisor go while drained');
  await resumed;
  t.equal(await drained.successor.exited(), 1, 'v2, never begun, exited 1');
  t.same(v1.calls, ['open'], 'v1 had not sealed: nothing to resume');
  await write(port, acked, 'after', 5);
  await assertNoneLost(t, port, acked, 'v1');
  await t.rejects(() => drained.seal(), /supervisor is lost/);
});
