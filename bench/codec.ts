/**
 * Codec benchmark: frames encoded + decoded per second over a realistic mix of the 14 variants, for
 * our strict codec and, in the same run, @msgpack/msgpack.
 *
 *   npm run bench:codec            (runs this file with bench/register.mjs; about 7 s)
 *
 * Every codec does the same work per message: encode it into a whole frame (u32 length, u16 version,
 * payload), push the frame through the same FrameDecoder, decode the payload. Ours also validates
 * against the schema both ways (the libraries produce and accept any object); that is the cost the
 * ratio shows. Results go to the codec section of bench/RESULTS.md, between the codec markers.
 */

import { Decoder, Encoder } from '@msgpack/msgpack';
import { existsSync, readFileSync } from 'node:fs';
import { cpus, platform, arch } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeSection } from './results-md.js';
import { FrameDecoder, decodeMessage, encodeFrame, encodeMessage, type Message, type MessageType } from '../src/protocol/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const ROUNDS = 5;
const ROUND_MS = 400;
const WARMUP_MS = 300;

// ---------------------------------------------------------------------------------------------
// The mix: what a supervisor's channels carry, heartbeats first, with a handoff now and then.

/** Share of each variant in the mix, in percent. */
const MIX: Record<MessageType, number> = {
  Heartbeat: 65,
  SealProgress: 10,
  Hello: 3,
  HelloAck: 3,
  SealComplete: 3,
  Ready: 3,
  PrepareHandoff: 2,
  Drained: 2,
  SealRequest: 2,
  Begin: 2,
  Commit: 2,
  SealFailed: 1,
  Abort: 1,
  ResumeAfterAbort: 1,
};

let state = 0x2545f491;
const rnd = (): number => {
  // xorshift32, fixed seed: the mix is the same in every run.
  state ^= state << 13;
  state ^= state >>> 17;
  state ^= state << 5;
  return (state >>> 0) / 4294967296;
};
const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, () => Math.floor(rnd() * 256));
const revisions = (n: number): bigint[] => Array.from({ length: n }, () => BigInt(Math.floor(rnd() * 50_000_000)));

function sample(type: MessageType): Message {
  const id = bytes(16);
  const now = 1_760_000_000_000n + BigInt(Math.floor(rnd() * 1e9));
  switch (type) {
    case 'Hello':
      return { type, role: rnd() < 0.5 ? 'Incumbent' : 'Successor', pid: 1000 + Math.floor(rnd() * 60_000), build_id: bytes(20), proto_min: 1, proto_max: 1, capabilities: { reserved: 0n } };
    case 'HelloAck':
      return { type, proto_version_chosen: 1, handoff_id: id };
    case 'PrepareHandoff':
      return { type, handoff_id: id, successor_pid: 1000 + Math.floor(rnd() * 60_000), deadline_ms: now + 30_000n, drain_grace_ms: 10_000n };
    case 'Drained':
      return { type, open_conns_remaining: Math.floor(rnd() * 5), accept_closed: true };
    case 'SealRequest':
    case 'Begin':
    case 'Commit':
    case 'ResumeAfterAbort':
      return { type, handoff_id: id };
    case 'SealProgress':
      return { type, shards_sealed: Math.floor(rnd() * 16), shards_total: 16, last_revision: BigInt(Math.floor(rnd() * 50_000_000)) };
    case 'SealComplete':
      return { type, handoff_id: id, last_revision_per_shard: revisions(16), data_dir_fingerprint: bytes(32) };
    case 'SealFailed':
      return { type, handoff_id: id, error: 'fsync failed on shard 3: EIO', partial_state: 'shards 0-2 sealed' };
    case 'Ready':
      return { type, handoff_id: id, listening_on: ['http', 'admin'], healthz_ok: true, advertised_revision_per_shard: revisions(16) };
    case 'Abort':
      return { type, handoff_id: id, reason: 'deadline_exceeded: seal took longer than 30000 ms' };
    case 'Heartbeat':
      return { type, ts_ms: now };
  }
}

const messages: Message[] = [];
for (const [type, pct] of Object.entries(MIX) as Array<[MessageType, number]>) for (let i = 0; i < pct * 10; i++) messages.push(sample(type));
for (let i = messages.length - 1; i > 0; i--) {
  const j = Math.floor(rnd() * (i + 1));
  [messages[i], messages[j]] = [messages[j]!, messages[i]!];
}
const avgPayload = messages.reduce((n, m) => n + encodeMessage(m).length, 0) / messages.length;

// ---------------------------------------------------------------------------------------------
// The codecs: one call = encode one frame, split it, decode it.

type RoundTrip = (msg: Message, dec: FrameDecoder) => unknown;

function framed(payload: Uint8Array): Buffer {
  const f = Buffer.allocUnsafe(6 + payload.length);
  f.writeUInt32LE(payload.length + 2, 0);
  f.writeUInt16LE(1, 4);
  f.set(payload, 6);
  return f;
}

const mpEncoder = new Encoder({ useBigInt64: true });
const mpDecoder = new Decoder({ useBigInt64: true });

const CODECS: Array<{ name: string; run: RoundTrip }> = [
  {
    name: 'handoff (strict, validating)',
    run: (msg, dec) => {
      let out: unknown;
      for (const f of dec.push(encodeFrame(msg, 1))) out = decodeMessage(f.payload);
      return out;
    },
  },
  {
    name: `@msgpack/msgpack ${version('@msgpack/msgpack')}`,
    run: (msg, dec) => {
      let out: unknown;
      for (const f of dec.push(framed(mpEncoder.encode(msg)))) out = mpDecoder.decode(f.payload);
      return out;
    },
  },
];

function version(pkg: string): string {
  const p = join(here, '..', 'node_modules', pkg, 'package.json');
  return existsSync(p) ? String((JSON.parse(readFileSync(p, 'utf8')) as { version?: unknown }).version) : '?';
}

/** Frames per second over `ms` milliseconds (whole passes over the mix). */
function measure(run: RoundTrip, ms: number): number {
  const dec = new FrameDecoder();
  let n = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    for (const m of messages) run(m, dec);
    n += messages.length;
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return (n * 1000) / elapsed;
}

// Sanity: every codec gives back the message's type and field names.
for (const c of CODECS) {
  const dec = new FrameDecoder();
  for (const m of messages) {
    const out = c.run(m, dec) as Record<string, unknown>;
    if (out['type'] !== m.type || Object.keys(out).join() !== Object.keys(m).join()) throw new Error(`${c.name} did not round-trip ${m.type}`);
  }
}

for (const c of CODECS) measure(c.run, WARMUP_MS);
const rates = new Map<string, number[]>(CODECS.map((c) => [c.name, []]));
for (let r = 0; r < ROUNDS; r++) for (const c of CODECS) rates.get(c.name)!.push(measure(c.run, ROUND_MS));
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const results = CODECS.map((c) => {
  const rs = rates.get(c.name)!;
  return { name: c.name, rate: median(rs), min: Math.min(...rs), max: Math.max(...rs) };
});
const ours = results[0]!.rate;

// ---------------------------------------------------------------------------------------------
// Report

function cpuModel(): string {
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m?.[1]) return m[1].trim();
  } catch {
    // not Linux: fall back to what Node knows
  }
  return cpus()[0]?.model ?? 'unknown CPU';
}

const HEADER = '| codec | frames/s (median) | rounds min – max | relative to handoff |';
const RULE = '|---|---:|---:|---:|';
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');
const machine = `${cpuModel()} (${cpus().length} logical CPUs), Node ${process.version}, ${platform()} ${arch()}, ${new Date().toISOString().slice(0, 10)}`;
const rows = results.map((r) => `| ${r.name} | ${fmt(r.rate)} | ${fmt(r.min)} – ${fmt(r.max)} | ${(r.rate / ours).toFixed(2)} |`);
const ratioLines = results.slice(1).map((r) => `handoff / ${r.name.split(' ')[0]}: ${(ours / r.rate).toFixed(2)}`);

console.log(`codec bench: ${messages.length} messages in the mix, average payload ${avgPayload.toFixed(1)} bytes`);
console.log(`median of ${ROUNDS} rounds of ${ROUND_MS} ms each\n`);
console.log([HEADER, RULE, ...rows].join('\n'));
console.log(`\n${ratioLines.join('\n')}\n${machine}`);

const section = [
  '## Codec (`npm run bench:codec`)',
  '',
  `Frames encoded and decoded per second: encode one whole frame, push it through \`FrameDecoder\`,`,
  `decode the payload. The mix is ${messages.length} messages of all 14 variants (${MIX.Heartbeat}% Heartbeat, ${MIX.SealProgress}% SealProgress,`,
  `the rest spread over a handoff's messages; 16-shard revision lists), average payload ${avgPayload.toFixed(1)} bytes.`,
  `Median of ${ROUNDS} rounds of ${ROUND_MS} ms per codec, interleaved (a busy machine shows as a wide min – max).`,
  'Ours validates every field against the schema in both directions and writes canonical formats;',
  'the libraries do neither.',
  '',
  HEADER,
  RULE,
  ...rows,
  '',
  ratioLines.map((l) => `${l}  `).join('\n'),
  '',
  `Machine: ${machine}.`,
].join('\n');

const resultsPath = join(here, 'RESULTS.md');
writeSection(resultsPath, 'codec', section);
console.log(`\nwrote the codec section of ${resultsPath}`);
