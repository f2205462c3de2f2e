import t from 'tap';
import { decodeMessage, encodeFrame, FrameDecoder, newHandoffId, type Message } from '../../src/protocol/index.js';

t.test('a Ready with large u64 values survives a byte-by-byte stream', (t) => {
  const m: Message = { type: 'Ready', handoff_id: newHandoffId(), listening_on: ['http'], healthz_ok: true, advertised_revision_per_shard: [0n, 2n ** 64n - 1n] };
  const bytes = encodeFrame(m, 1);
  const dec = new FrameDecoder();
  const got: Message[] = [];
  for (let i = 0; i < bytes.length; i++) for (const f of dec.push(bytes.subarray(i, i + 1))) got.push(decodeMessage(f.payload));
  t.same(got, [m]);
  t.end();
});
