/**
 * The kv example's storage: a data directory of shards, each an append-only log of JSON lines
 * `{"r":<revision>,"k":<key>,"v":<base64 value>}`. A write gets the shard's next revision and is
 * acknowledged only after its line is fsynced (writes that arrive during an fsync are grouped into
 * the next one). Opening replays the logs; a torn last line (a crash mid-append, never
 * acknowledged) is cut off. Sealing stops writes, fsyncs, and reports each shard's last revision
 * and a SHA-256 fingerprint of the data files.
 */

import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';

export class SealedError extends Error {
  constructor() {
    super('the store is sealed (a handoff is in progress): retry shortly');
    this.name = 'SealedError';
  }
}

interface Pending {
  line: Buffer;
  key: string;
  value: Buffer;
  rev: number;
  resolve: (r: PutResult) => void;
  reject: (e: Error) => void;
}

export interface PutResult {
  rev: number;
  shard: number;
  created: boolean;
}

class Shard {
  rev = 0;
  readonly data = new Map<string, Buffer>();
  fh: fsp.FileHandle | undefined;
  queue: Pending[] = [];
  flushing: Promise<void> | undefined;

  constructor(
    readonly index: number,
    readonly file: string,
  ) {}
}

export interface SealProgress {
  shardsSealed: number;
  shardsTotal: number;
  lastRevision: number;
}

export class KvStore {
  private shards: Shard[] = [];
  private sealed = false;
  private broken: string | undefined;
  private opened = false;

  constructor(
    readonly dir: string,
    readonly shardCount: number,
  ) {
    if (!Number.isInteger(shardCount) || shardCount < 1 || shardCount > 1024) throw new RangeError('shards must be 1..1024');
  }

  get isOpen(): boolean {
    return this.opened;
  }

  get isSealed(): boolean {
    return this.sealed;
  }

  /** Replays every shard; returns the last revision of each. */
  async open(): Promise<number[]> {
    await fsp.mkdir(this.dir, { recursive: true });
    await this.checkMeta();
    const shards: Shard[] = [];
    try {
      for (let i = 0; i < this.shardCount; i++) {
        const s = new Shard(i, path.join(this.dir, `shard-${i}.log`));
        s.fh = await fsp.open(s.file, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_APPEND, 0o644);
        await replay(s);
        shards.push(s);
      }
    } catch (err) {
      for (const s of shards) await s.fh?.close().catch(() => undefined);
      throw err;
    }
    this.shards = shards;
    this.sealed = false;
    this.broken = undefined;
    this.opened = true;
    return this.revisions();
  }

  revisions(): number[] {
    return this.shards.map((s) => s.rev);
  }

  healthy(): boolean {
    return this.opened && this.broken === undefined;
  }

  shardOf(key: string): number {
    return createHash('sha256').update(key).digest().readUInt32BE(0) % this.shardCount;
  }

  get(key: string): Buffer | undefined {
    return this.shards[this.shardOf(key)]?.data.get(key);
  }

  /** Resolves once the write is durable. Throws SealedError while sealed. */
  put(key: string, value: Buffer): Promise<PutResult> {
    if (this.sealed || !this.opened) return Promise.reject(new SealedError());
    if (this.broken) return Promise.reject(new Error(`the store is broken: ${this.broken}`));
    const s = this.shards[this.shardOf(key)]!;
    const rev = ++s.rev;
    const line = Buffer.from(`${JSON.stringify({ r: rev, k: key, v: value.toString('base64') })}\n`);
    return new Promise<PutResult>((resolve, reject) => {
      s.queue.push({ line, key, value, rev, resolve, reject });
      if (!s.flushing) s.flushing = this.flush(s).finally(() => (s.flushing = undefined));
    });
  }

  /** Stops writes, waits for those in flight, fsyncs each shard and fingerprints the files. */
  async seal(progress: (p: SealProgress) => void = () => undefined, perShard?: (i: number) => Promise<void>): Promise<{ revisions: number[]; fingerprint: Buffer }> {
    this.sealed = true;
    for (const s of this.shards) await s.flushing;
    let i = 0;
    for (const s of this.shards) {
      await s.fh!.sync();
      await perShard?.(s.index);
      progress({ shardsSealed: ++i, shardsTotal: this.shards.length, lastRevision: s.rev });
    }
    if (this.broken) throw new Error(`the store is broken: ${this.broken}`);
    return { revisions: this.revisions(), fingerprint: await this.fingerprint() };
  }

  /** SHA-256 over every shard file, in order, each prefixed by its name and size. */
  async fingerprint(): Promise<Buffer> {
    const h = createHash('sha256');
    for (let i = 0; i < this.shardCount; i++) {
      const file = path.join(this.dir, `shard-${i}.log`);
      const bytes = await fsp.readFile(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return Buffer.alloc(0);
        throw err;
      });
      h.update(`shard-${i}.log ${bytes.length}\n`);
      h.update(bytes);
    }
    return h.digest();
  }

  /** Back to writable after an aborted handoff: replays again (a successor may have written). */
  async reopen(): Promise<number[]> {
    await this.close();
    return this.open();
  }

  async close(): Promise<void> {
    this.sealed = true;
    for (const s of this.shards) await s.flushing;
    for (const s of this.shards) await s.fh?.close().catch(() => undefined);
    this.shards = [];
    this.opened = false;
  }

  private async flush(s: Shard): Promise<void> {
    while (s.queue.length > 0) {
      const batch = s.queue.splice(0);
      try {
        await s.fh!.write(Buffer.concat(batch.map((p) => p.line)));
        await s.fh!.datasync();
      } catch (err) {
        // The log's tail is now unknown: refuse further writes until reopened (replay repairs it).
        this.broken = (err as Error).message;
        for (const p of [...batch, ...s.queue.splice(0)]) p.reject(err as Error);
        return;
      }
      for (const p of batch) {
        const created = !s.data.has(p.key);
        s.data.set(p.key, p.value);
        p.resolve({ rev: p.rev, shard: s.index, created });
      }
    }
  }

  private async checkMeta(): Promise<void> {
    const file = path.join(this.dir, 'meta.json');
    let meta: { shards?: unknown } | undefined;
    try {
      meta = JSON.parse(await fsp.readFile(file, 'utf8')) as { shards?: unknown };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cannot read ${file}: ${(err as Error).message}`);
    }
    if (meta === undefined) {
      const tmp = `${file}.tmp`;
      await fsp.writeFile(tmp, `${JSON.stringify({ shards: this.shardCount })}\n`);
      const fh = await fsp.open(tmp, 'r');
      await fh.sync();
      await fh.close();
      await fsp.rename(tmp, file);
      return;
    }
    if (meta.shards !== this.shardCount) throw new Error(`the data directory has ${String(meta.shards)} shards, not ${this.shardCount}`);
  }
}

async function replay(s: Shard): Promise<void> {
  const fh = s.fh!;
  const { size } = await fh.stat();
  const buf = Buffer.alloc(size);
  let off = 0;
  while (off < size) {
    const { bytesRead } = await fh.read(buf, off, size - off, off);
    if (bytesRead === 0) break;
    off += bytesRead;
  }
  const end = buf.lastIndexOf(0x0a) + 1;
  if (end < off) {
    // A torn append: it was never fsynced whole, so never acknowledged. Cut it off.
    await fh.truncate(end);
    await fh.sync();
  }
  let start = 0;
  let rev = 0;
  while (start < end) {
    const nl = buf.indexOf(0x0a, start);
    const rec = JSON.parse(buf.toString('utf8', start, nl)) as { r?: unknown; k?: unknown; v?: unknown };
    if (rec.r !== rev + 1 || typeof rec.k !== 'string' || typeof rec.v !== 'string') {
      throw new Error(`shard ${s.index}: bad record after revision ${rev}`);
    }
    rev = rec.r;
    s.data.set(rec.k, Buffer.from(rec.v, 'base64'));
    start = nl + 1;
  }
  s.rev = rev;
}
