import t, { type Test } from 'tap';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { KvStore, SealedError } from '../../examples/kv/store.js';

function dir(t: Test): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-kv-'));
  t.teardown(() => fs.rmSync(d, { recursive: true, force: true }));
  return path.join(d, 'data');
}

t.test('put, get, revisions, seal, reopen', async (t) => {
  const d = dir(t);
  const s = new KvStore(d, 4);
  t.same(await s.open(), [0, 0, 0, 0]);
  t.ok(s.healthy());
  const writes = await Promise.all(Array.from({ length: 40 }, (_, i) => s.put(`k${i % 10}`, Buffer.from(`v${i}`))));
  t.equal(writes.filter((w) => w.created).length, 10, 'ten new keys, the rest overwrites');
  t.equal(s.revisions().reduce((a, b) => a + b, 0), 40, 'one revision per write');
  for (let i = 30; i < 40; i++) t.equal(s.get(`k${i % 10}`)?.toString(), `v${i}`, 'the last write wins');
  const progress: number[] = [];
  const sealed = await s.seal((p) => progress.push(p.shardsSealed));
  t.same(progress, [1, 2, 3, 4]);
  t.same(sealed.revisions, s.revisions());
  t.equal(sealed.fingerprint.length, 32);
  await t.rejects(s.put('x', Buffer.from('y')), SealedError, 'no writes once sealed');
  t.same(await s.fingerprint(), sealed.fingerprint, 'the fingerprint is stable');
  // Another process (the successor) opens the same directory and sees the same state.
  const n = new KvStore(d, 4);
  t.same(await n.open(), sealed.revisions);
  await n.put('from-n', Buffer.from('n'));
  await n.close();
  t.same(await s.reopen(), [...sealed.revisions].map((r, i) => r + (i === s.shardOf('from-n') ? 1 : 0)), 'reopen replays what the successor wrote');
  t.equal(s.get('from-n')?.toString(), 'n');
  t.equal((await s.put('x', Buffer.from('y'))).created, true, 'writable again');
  t.not((await s.fingerprint()).toString('hex'), sealed.fingerprint.toString('hex'));
  await s.close();
  t.notOk(s.isOpen);
});

t.test('a torn last record is cut off; a corrupt one refuses to open', async (t) => {
  const d = dir(t);
  const s = new KvStore(d, 1);
  await s.open();
  await s.put('a', Buffer.from('1'));
  await s.close();
  const file = path.join(d, 'shard-0.log');
  fs.appendFileSync(file, '{"r":2,"k":"b","v":"Mg=');
  const r = new KvStore(d, 1);
  t.same(await r.open(), [1]);
  t.equal(fs.readFileSync(file, 'utf8'), '{"r":1,"k":"a","v":"MQ=="}\n', 'the torn tail is gone');
  t.equal((await r.put('b', Buffer.from('2'))).rev, 2);
  await r.close();
  fs.appendFileSync(file, '{"r":9,"k":"c","v":""}\n');
  await t.rejects(new KvStore(d, 1).open(), /shard 0: bad record after revision 2/);
});

t.test('the shard count is fixed per data directory', async (t) => {
  const d = dir(t);
  await new KvStore(d, 2).open();
  await t.rejects(new KvStore(d, 4).open(), /has 2 shards, not 4/);
  t.throws(() => new KvStore(d, 0), /shards must be/);
  fs.writeFileSync(path.join(d, 'meta.json'), '{');
  await t.rejects(new KvStore(d, 2).open(), /cannot read/);
});

t.test('writes before open are refused', async (t) => {
  const s = new KvStore(dir(t), 1);
  await t.rejects(s.put('a', Buffer.from('1')), SealedError);
  t.notOk(s.healthy());
});
