/**
 * A child's stderr, passed through to S's own stderr whole lines at a time (so a child's stack
 * trace is never spliced into the middle of one of S's log records), with its last lines kept for
 * the failure report of a child that could not start or died.
 *
 * What is kept is bounded (lines and bytes), and stack frames (`    at …`) are left out: the tail
 * reaches status and history, and those say why a process failed, not where in its code.
 */

import type { Readable } from 'node:stream';

/** Lines kept, and the longest line kept (longer ones are cut). */
export const STDERR_TAIL_LINES = 10;
export const STDERR_TAIL_LINE_BYTES = 240;
/** A line still unterminated after this many bytes is passed on as it is. */
const MAX_PENDING = 64 * 1024;

const STACK_FRAME = /^\s+at\s|^\s*\^+\s*$|node:internal\//;

const PINO_LEVELS: Record<number, string> = { 10: 'trace', 20: 'debug', 30: 'info', 40: 'warn', 50: 'error', 60: 'fatal' };

/** A JSON log line (pino's, or any with `msg`) as `level: msg (err)`; any other line as it is. */
function readable(line: string): string {
  if (!line.startsWith('{')) return line;
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return line;
  }
  if (typeof v !== 'object' || v === null) return line;
  const r = v as Record<string, unknown>;
  const msg = typeof r['msg'] === 'string' ? r['msg'] : typeof r['message'] === 'string' ? r['message'] : undefined;
  if (msg === undefined) return line;
  const level = typeof r['level'] === 'number' ? (PINO_LEVELS[r['level']] ?? String(r['level'])) : typeof r['level'] === 'string' ? r['level'] : 'log';
  const e = r['err'];
  const err = typeof e === 'string' ? e : typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string' ? (e as { message: string }).message : undefined;
  return `${level}: ${msg}${err !== undefined ? ` (${err.split('\n')[0] ?? ''})` : ''}`;
}

export class StderrTail {
  private readonly lines: string[] = [];
  private pending = '';

  /** Follows `from` until it ends, writing each complete line to `to`. */
  follow(from: Readable, to: { write(s: string): unknown }): void {
    from.setEncoding('utf8');
    from.on('data', (chunk: string) => {
      const text = this.pending + chunk;
      const cut = text.lastIndexOf('\n');
      if (cut < 0 && text.length < MAX_PENDING) {
        this.pending = text;
        return;
      }
      const whole = cut < 0 ? text : text.slice(0, cut + 1);
      this.pending = cut < 0 ? '' : text.slice(cut + 1);
      to.write(cut < 0 ? `${whole}\n` : whole);
      this.keep(whole);
    });
    from.on('end', () => {
      if (this.pending === '') return;
      to.write(`${this.pending}\n`);
      this.keep(this.pending);
      this.pending = '';
    });
    // A broken pipe from a dying child says nothing worth keeping.
    from.on('error', () => undefined);
  }

  /** The last lines, oldest first. */
  get(): string[] {
    return [...this.lines];
  }

  private keep(text: string): void {
    for (const raw of text.split('\n')) {
      // eslint-disable-next-line no-control-regex -- control characters are what this removes
      const line = readable(raw).replace(/[\u0000-\u0008\u000b-\u001f\u007f]/g, '').trimEnd();
      if (line === '' || STACK_FRAME.test(line)) continue;
      this.lines.push(Buffer.byteLength(line) > STDERR_TAIL_LINE_BYTES ? `${Buffer.from(line).subarray(0, STDERR_TAIL_LINE_BYTES).toString('utf8').replace(/\uFFFD$/, '')}…` : line);
      if (this.lines.length > STDERR_TAIL_LINES) this.lines.shift();
    }
  }
}
