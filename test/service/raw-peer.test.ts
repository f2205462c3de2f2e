/** The raw-protocol peer fixture misbehaves exactly as advertised (the supervisor's failure tests rely on it). */

import t, { type Test } from 'tap';
import fs from 'node:fs';
import { newHandoffId } from '../../src/protocol/index.js';
import { Child, bindListener, makeLayout, within } from './harness.js';

async function peer(t: Test, script: string, role: 'cold-start' | 'successor' = 'successor'): Promise<Child> {
  const layout = makeLayout();
  const listener = await bindListener();
  const ch = new Child({ role, listener, layout, peerScript: script, sHeartbeatMs: 0 });
  t.teardown(async () => {
    await ch.kill();
    listener.close();
    fs.rmSync(layout.dir, { recursive: true, force: true });
  });
  return ch;
}

const closeKind = (ch: Child): Promise<string> =>
  within(new Promise<string>((resolve) => ch.channel.once('close', (e) => resolve(e.kind))), 10_000, 'the channel to close');

t.test('hello: a correct Hello; exits when the channel closes', async (t) => {
  const ch = await peer(t, 'hello');
  const h = await ch.handshake(newHandoffId());
  t.equal(h.role, 'Successor');
  t.equal(h.pid, ch.pid);
  t.equal((await ch.channel.receive()).type, 'Heartbeat');
  ch.channel.close();
  t.equal((await ch.waitExit()).code, 0);
});

t.test('wrong-pid, wrong-role, bad-version', async (t) => {
  const a = await peer(t, 'wrong-pid');
  t.not((await a.expect('Hello')).pid, a.pid);
  const b = await peer(t, 'wrong-role');
  t.equal((await b.expect('Hello')).role, 'Incumbent');
  const c = await peer(t, 'wrong-role', 'cold-start');
  t.equal((await c.expect('Hello')).role, 'Successor');
  const d = await peer(t, 'bad-version');
  const h = await d.expect('Hello');
  t.same([h.proto_min, h.proto_max], [7, 9]);
});

t.test('broken frames', async (t) => {
  for (const [script, kind] of [
    ['garbage', 'malformed_message'],
    ['short-frame', 'frame_malformed'],
    ['oversize', 'frame_too_large'],
    ['torn', 'frame_malformed'],
  ] as const) {
    const ch = await peer(t, script);
    t.equal(await closeKind(ch), kind, script);
  }
});

t.test('scripted misbehaviour after HelloAck', async (t) => {
  const id = newHandoffId();
  const a = await peer(t, 'abort-before-begin');
  await a.handshake(id);
  t.match((await a.expect('Abort')).reason, /^successor_failed: /);
  const b = await peer(t, 'ready-before-begin');
  await b.handshake(id);
  await b.expect('Ready');
  const c = await peer(t, 'hello-then-crash');
  await c.handshake(id);
  t.equal((await c.waitExit()).code, 1);
  const d = await peer(t, 'double-hello');
  await d.expect('Hello');
  await d.expect('Hello');
  const e = await peer(t, 'hello-then-exit');
  await e.expect('Hello');
  t.equal((await e.waitExit()).code, 0);
});
