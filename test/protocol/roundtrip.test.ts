import t from 'tap';
import { MESSAGE_TYPES, SCHEMAS, decodeFrames, decodeMessage, encodeFrame, encodeMessage, type Message } from '../../src/protocol/index.js';
import { hex, uint } from './raw.js';
import { U64_EDGES, allSamples, base, withField } from './samples.js';

t.test('every sample survives encode/decode, as a payload and as a frame', (t) => {
  const samples = allSamples();
  const seen = new Set(samples.map((s) => s.msg.type));
  t.equal(seen.size, 14, 'the samples cover all 14 variants');
  for (const { label, msg } of samples) {
    const payload = encodeMessage(msg);
    t.strictSame(decodeMessage(payload), msg, `${label}: payload`);
    const frames = decodeFrames(encodeFrame(msg, 1));
    t.equal(frames.length, 1);
    t.equal(frames[0]?.version, 1);
    t.strictSame(frames[0]?.message, msg, `${label}: frame`);
    // Canonical means one encoding per message: re-encoding what was decoded gives the same bytes.
    t.equal(hex(encodeMessage(decodeMessage(payload))), hex(payload), `${label}: re-encoding is identical`);
  }
  t.end();
});

t.test('u64 edge values 0, 2^32, 2^53+1, 2^64-1 in every u64 position of every variant', (t) => {
  let positions = 0;
  for (const type of MESSAGE_TYPES) {
    for (const f of SCHEMAS[type]) {
      for (const v of U64_EDGES) {
        let msg: Message;
        if (f.kind === 'u64') msg = withField(type, f.name, v);
        else if (f.kind === 'u64_list') msg = withField(type, f.name, [v, v]);
        else if (f.kind === 'capabilities') msg = withField(type, f.name, { reserved: v });
        else continue;
        positions++;
        const payload = encodeMessage(msg);
        const got = decodeMessage(payload) as unknown as Record<string, unknown>;
        const want = f.kind === 'u64' ? v : f.kind === 'u64_list' ? [v, v] : { reserved: v };
        t.strictSame(got[f.name], want, `${type}.${f.name} = ${v}`);
        // The value is written in its smallest unsigned format, right after its key.
        const key = f.kind === 'capabilities' ? 'reserved' : f.name;
        const keyHex = hex(Buffer.from(key));
        const after = f.kind === 'u64_list' ? `92${hex(uint(v))}${hex(uint(v))}` : hex(uint(v));
        t.ok(hex(payload).includes(keyHex + after), `${type}.${f.name} = ${v} is ${hex(uint(v))} on the wire`);
      }
    }
  }
  t.equal(positions, 7 * U64_EDGES.length, 'Hello.capabilities, 2 in PrepareHandoff, SealProgress, SealComplete, Ready, Heartbeat');
  t.end();
});

t.test('u64 values are bigints after decoding, even when small', (t) => {
  const m = decodeMessage(encodeMessage({ type: 'Heartbeat', ts_ms: 5n }));
  t.equal(m.type === 'Heartbeat' && typeof m.ts_ms, 'bigint');
  t.end();
});

t.test('u64 fields also take a safe JS number when encoding (written as the same integer)', (t) => {
  const asNumber = { type: 'Heartbeat', ts_ms: 2 ** 40 } as unknown as Message;
  t.equal(hex(encodeMessage(asNumber)), hex(encodeMessage({ type: 'Heartbeat', ts_ms: 2n ** 40n })));
  t.end();
});

t.test('a string starting with U+FEFF keeps it (the UTF-8 decoder must not eat a BOM)', (t) => {
  const m: Message = { type: 'Abort', handoff_id: new Uint8Array(16), reason: '\uFEFFx é' };
  const got = decodeMessage(encodeMessage(m));
  t.equal(got.type === 'Abort' && got.reason, '\uFEFFx é');
  t.end();
});

t.test('decoded bins are copies: the input buffer can be reused afterwards', (t) => {
  const msg = base('SealComplete');
  for (const input of [encodeMessage(msg), new Uint8Array(encodeMessage(msg))]) {
    const got = decodeMessage(input);
    input.fill(0);
    t.strictSame(got, msg, `input is a ${input.constructor.name}`);
    if (got.type === 'SealComplete') {
      t.not(got.handoff_id.buffer, input.buffer, 'the id does not share the input memory');
      t.not(got.data_dir_fingerprint.buffer, input.buffer, 'the fingerprint does not share the input memory');
    }
  }
  t.end();
});

t.test('a later encode does not overwrite the bytes of an earlier one', (t) => {
  const msg = base('Begin');
  const a = encodeMessage(msg);
  const f = encodeFrame(msg, 1);
  encodeMessage(base('Ready'));
  encodeFrame(base('Ready'), 1);
  t.strictSame(decodeMessage(a), msg);
  t.strictSame(decodeFrames(f)[0]?.message, msg);
  t.end();
});
