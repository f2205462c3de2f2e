// Preloaded into `handoff run` by `npm run bench:compare` (node --import bench/compare-probe.mjs
// bin/handoff run …), and only when HANDOFF_BENCH_PROBE names a file: it times the supervisor's own
// handling of each control message without changing src/. JavaScript, not TypeScript, so that S
// loads no TypeScript loader (which would change the memory and start-up being measured).
//
// It wraps three methods of the built Channel (the same module instance S imports):
// - onData(chunk): the moment S's JavaScript gets bytes from a peer (t0 of that chunk), and when
//   S is done with them and back in the event loop (t_end);
// - deliver(msg): each decoded message of that chunk, stamped with the chunk's t0;
// - send(msg): when S's write of its next message returned (the frame is in the kernel by then:
//   a socketpair write of a few bytes completes synchronously).
// A send made while a chunk is being handled carries that chunk's number, so "S got Drained and
// sent SealRequest" is a pair of the same chunk: no guessing from the order of log lines.
// Heartbeats are left out (they are not on a handoff's critical path). Events are kept in memory
// and written once, when S exits (SIGTERM makes it exit normally).

import fs from 'node:fs';
import { performance } from 'node:perf_hooks';

const file = process.env.HANDOFF_BENCH_PROBE;
if (file) {
  const { Channel } = await import(new URL('../dist/src/protocol/channel.js', import.meta.url).href);
  const P = Channel.prototype;
  const events = [];
  let chunk = -1;
  let chunkT0 = 0;
  let chunks = 0;
  const onData = P.onData;
  const deliver = P.deliver;
  const send = P.send;
  P.onData = function (c) {
    const outer = chunk;
    chunk = ++chunks;
    chunkT0 = performance.now();
    try {
      return onData.call(this, c);
    } finally {
      events.push({ c: chunk, t: performance.now(), k: 'end' });
      chunk = outer;
    }
  };
  P.deliver = function (m) {
    if (m.type !== 'Heartbeat') events.push({ c: chunk, t: chunkT0, k: 'recv', type: m.type });
    return deliver.call(this, m);
  };
  P.send = function (m) {
    const r = send.call(this, m);
    if (m.type !== 'Heartbeat') events.push({ c: chunk, t: performance.now(), k: 'send', type: m.type });
    return r;
  };
  process.on('exit', () => {
    // Only the chunks that carried something other than heartbeats are of interest.
    const keep = new Set(events.filter((e) => e.k !== 'end').map((e) => e.c));
    fs.writeFileSync(file, JSON.stringify(events.filter((e) => keep.has(e.c))));
  });
}
