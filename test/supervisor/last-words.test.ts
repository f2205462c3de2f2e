/**
 * A dead child's last words count. When S learns of a child's exit while its event loop has just
 * been stalled (a busy machine, SIGSTOP), the frames the child sent before it died (a Ready that
 * decides a handoff) may still wait unread in the control socket. S must read them before it
 * reports the exit, however late its timers fire: the CI failure this guards against was a
 * successor killed right after Ready, recorded as "killed in phase begin" instead of committed.
 */

import { EventEmitter } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import fs from 'node:fs';
import t, { type Test } from 'tap';
import { encodeFrame } from '../../src/protocol/frame.js';
import { Clock } from '../../src/supervisor/clock.js';
import { ServiceChild, type Launcher } from '../../src/supervisor/child.js';

/** A connected pair of real Unix stream sockets. */
async function socketPair(t: Test): Promise<[net.Socket, net.Socket]> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'handoff-lastwords-'));
  const p = path.join(dir, 's.sock');
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(p, r));
  const accepted = new Promise<net.Socket>((r) => server.once('connection', r));
  const client = net.connect(p);
  await new Promise((r) => client.once('connect', r));
  const peer = await accepted;
  server.close();
  t.teardown(() => {
    client.destroy();
    peer.destroy();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return [client, peer];
}

for (const how of ['the default timer', "S's clock"] as const) {
  t.test(`a Ready written just before death is read before the exit is reported, after a stall (${how})`, async (t) => {
    const [ours, theirs] = await socketPair(t);
    const proc = Object.assign(new EventEmitter(), { pid: 424242, kill: () => true });
    const launch: Launcher = () => ({ proc, control: ours, stderr: null });
    const clock = new Clock();
    t.teardown(() => clock.close());
    const spec = { command: 'x', args: [], role: 'successor' as const, listeners: [], env: {}, heartbeatMs: 1000, heartbeatTimeoutMs: 5000, drainGraceMs: 1000 };
    const child = how === "S's clock" ? new ServiceChild(spec, launch, (ms, fn) => clock.timer(ms, fn)) : new ServiceChild(spec, launch);
    const order: string[] = [];
    child.channel.on('message', (m) => order.push(m.type));
    void child.exited.then(() => order.push('exit'));

    // The child's last frame reaches the kernel now; it dies; S hears of the death first...
    theirs.end(encodeFrame({ type: 'Ready', handoff_id: new Uint8Array(16), listening_on: [], healthz_ok: true, advertised_revision_per_shard: [] }, 1));
    proc.emit('exit', null, 'SIGKILL');
    // ...and then does not run for longer than the bound on its last words.
    const until = performance.now() + 600;
    while (performance.now() < until);

    await child.exited;
    await new Promise((r) => setImmediate(r));
    t.same(order, ['Ready', 'exit'], 'the Ready counted: read before the exit was reported');
  });
}
