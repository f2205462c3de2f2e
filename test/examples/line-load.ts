/**
 * A bounded load for the line example (examples/net): persistent clients (one connection each,
 * kept across lines) and new-connection clients (one connection per line), each sending one line
 * at a time and checking its answer: the line upper-cased, or for `/who`, `pid <pid> build <b>`.
 *
 * It follows the protocol's one rule: `BYE` instead of an answer (or while idle) means the server
 * answered every line before it and reads none after it, so the unanswered line is sent again on a
 * new connection. That is the protocol working, counted apart (`byes`). Anything else is a failure:
 * a refused or reset connection, a connection that ends without BYE while a line waits, a wrong
 * answer, no answer in time. It stops by itself after `maxLines` lines or `maxMs` (the caps, waits
 * and stop are test/lib/bounded-load.ts's).
 */

import net from 'node:net';
import { BoundedLoad, ClientStats, type LoadFailure } from '../lib/bounded-load.js';

export interface LineLoadOptions {
  port: number;
  persistentClients: number;
  newConnectionClients: number;
  intervalMs: number;
  maxLines: number;
  maxMs: number;
  timeoutMs?: number;
}

export class LineClientStats extends ClientStats {
  byes = 0;

  constructor(
    name: string,
    readonly persistent: boolean,
  ) {
    super(name);
  }
}

export interface LineLoadResult {
  answered: number;
  byes: number;
  failures: LoadFailure[];
  capped: boolean;
}

class LineError extends Error {
  constructor(
    readonly kind: string,
    message: string,
  ) {
    super(message);
  }
}

/** One connection: lines out, lines in, one line in flight at a time. */
export class LineConn {
  private readonly socket: net.Socket;
  private buf = '';
  private waiting: { resolve: (line: string) => void; reject: (e: LineError) => void } | undefined;
  /** The server said BYE, or the connection ended: not to be used again. */
  done = false;
  /** The server said BYE (answering a line, or while idle). */
  saidBye = false;
  private isConnected = false;
  private readonly connected: Promise<void>;

  /** `onIdleLoss`: the connection was lost (reset, or ended without BYE) while no line waited. */
  constructor(
    port: number,
    private readonly onIdleLoss: (e: LineError) => void,
  ) {
    this.socket = net.connect({ host: '127.0.0.1', port });
    this.socket.setEncoding('utf8');
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => {
        this.isConnected = true;
        resolve();
      });
      this.socket.once('error', (err: NodeJS.ErrnoException) => reject(new LineError(err.code ?? 'error', err.message)));
    });
    // Unhandled otherwise when nothing awaits `connected` any more.
    this.connected.catch(() => undefined);
    this.socket.on('data', (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (line === 'BYE') {
          this.saidBye = true;
          this.done = true;
        }
        const w = this.waiting;
        this.waiting = undefined;
        if (w) w.resolve(line);
        else if (line !== 'BYE') this.lost(new LineError('unexpected line', JSON.stringify(line)));
      }
    });
    this.socket.on('error', (err: NodeJS.ErrnoException) => this.lost(new LineError(err.code ?? 'error', err.message)));
    this.socket.on('close', () => this.lost(new LineError('closed without BYE', 'the connection ended before the server said BYE')));
  }

  /** The answer to `line` (`BYE` included); rejects on a connection error or after `timeoutMs`. */
  async ask(line: string, timeoutMs: number): Promise<string> {
    await this.connected;
    if (this.done) return 'BYE';
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting = undefined;
        this.done = true;
        this.socket.destroy();
        reject(new LineError('timeout', `no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting = {
        resolve: (l) => {
          clearTimeout(timer);
          resolve(l);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      };
      this.socket.write(`${line}\n`);
    });
  }

  close(): void {
    this.done = true;
    this.socket.end();
  }

  /** The first loss counts: to the line waiting for its answer, else as an idle loss. */
  private lost(e: LineError): void {
    const w = this.waiting;
    this.waiting = undefined;
    // Done already: after BYE, our own close, a timeout, or an earlier loss, an end is expected.
    const expected = this.done;
    this.done = true;
    if (w) w.reject(e);
    else if (!expected && this.isConnected) this.onIdleLoss(e);
  }
}

export class LineLoad extends BoundedLoad<LoadFailure, LineLoadResult> {
  readonly clients: LineClientStats[] = [];
  private answered = 0;

  constructor(private readonly o: LineLoadOptions) {
    super({ maxSends: o.maxLines, maxMs: o.maxMs, unit: 'lines' });
  }

  start(): void {
    const loops: Array<Promise<void>> = [];
    for (let i = 0; i < this.o.persistentClients; i++) loops.push(this.client(new LineClientStats(`p${i}`, true)));
    for (let i = 0; i < this.o.newConnectionClients; i++) loops.push(this.client(new LineClientStats(`n${i}`, false)));
    this.begin(loops);
  }

  protected result(): LineLoadResult {
    const byes = this.clients.reduce((n, c) => n + c.byes, 0);
    return { answered: this.answered, byes, failures: this.failures, capped: this.capped };
  }

  private async client(c: LineClientStats): Promise<void> {
    this.clients.push(c);
    await this.pause(Math.random() * this.o.intervalMs);
    let conn: LineConn | undefined;
    let seq = 0;
    while (this.next()) {
      const started = performance.now();
      // Every other line asks who answers; the others are text to upper-case.
      const line = seq++ % 2 === 0 ? '/who' : `${c.name} line ${seq}`;
      try {
        for (;;) {
          if (!conn || conn.done) {
            if (conn?.saidBye) c.byes++;
            conn?.close();
            conn = new LineConn(this.o.port, (e) => this.failures.push({ client: c.name, kind: `${e.kind} (idle)`, detail: e.message }));
            c.connections++;
          }
          const answer = await conn.ask(line, this.o.timeoutMs ?? 10_000);
          // Not read by that server: send it again, to whoever accepts now.
          if (answer === 'BYE') continue;
          this.check(c, line, answer);
          break;
        }
      } catch (err) {
        const e = err as LineError;
        this.failures.push({ client: c.name, kind: e.kind ?? 'error', detail: e.message });
        conn = undefined;
      }
      if (!c.persistent) {
        conn?.close();
        conn = undefined;
      }
      this.wake();
      await this.pause(this.o.intervalMs - (performance.now() - started));
    }
    conn?.close();
  }

  private check(c: LineClientStats, line: string, answer: string): void {
    if (line === '/who') {
      const m = /^pid (\d+) build \S+$/.exec(answer);
      if (!m) {
        this.failures.push({ client: c.name, kind: 'wrong answer', detail: `${line} -> ${answer}` });
        return;
      }
      c.answeredBy(Number(m[1]));
    } else if (answer !== line.toUpperCase()) {
      this.failures.push({ client: c.name, kind: 'wrong answer', detail: `${line} -> ${answer}` });
      return;
    }
    this.answered++;
  }
}
