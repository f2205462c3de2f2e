/**
 * The logger of the library and of the supervisor: pino on stderr, written synchronously so nothing
 * is lost at exit. JSON lines for machines (journald, files, pipes), one readable line per record on
 * a terminal. Timestamps are ISO-8601 in both.
 */

import fs from 'node:fs';
import { pino, type DestinationStream, type Logger } from 'pino';
import { prettyFactory } from 'pino-pretty';

export type { Logger } from 'pino';

export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

const LEVELS: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'];

export interface LoggerSettings {
  /** pino's `name` field. */
  name: string;
  level: string;
  format: LogFormat;
  /** The file descriptor written to (default 2, stderr). */
  fd?: number;
  /** Colours in the pretty format (default: off). */
  color?: boolean;
}

/**
 * `pretty` or `json`: the explicit value when it is one of them, else pretty on a terminal and JSON
 * anywhere else. Undefined or unknown values fall back to the terminal test.
 */
export function logFormatFor(value: string | undefined, isTTY: boolean): LogFormat {
  const v = value?.trim().toLowerCase();
  if (v === 'pretty' || v === 'json') return v;
  return isTTY ? 'pretty' : 'json';
}

/**
 * Formats each record in the writing thread and writes it with one writeSync: no worker thread that
 * keeps the process alive, no buffer that a process.exit() drops, and one whole line per record.
 */
function prettyDestination(fd: number, color: boolean): DestinationStream {
  const format = prettyFactory({ colorize: color, singleLine: true, ignore: 'hostname', translateTime: false });
  return {
    write(chunk: string): void {
      writeAll(fd, format(chunk));
    },
  };
}

function writeAll(fd: number, text: string): void {
  const buf = Buffer.from(text);
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off);
    } catch (err) {
      // A non-blocking stderr (a pipe under load): retry; anything else drops the line.
      if ((err as NodeJS.ErrnoException).code !== 'EAGAIN') return;
    }
  }
}

/** A pino logger in the given format; `pid` is this process's. */
export function createLogger(s: LoggerSettings): Logger {
  const fd = s.fd ?? 2;
  const opts = { name: s.name, level: LEVELS.includes(s.level) ? s.level : 'info', base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime };
  return s.format === 'pretty' ? pino(opts, prettyDestination(fd, s.color === true)) : pino(opts, pino.destination({ dest: fd, sync: true }));
}

/**
 * A logger on fd 2. The level comes from HANDOFF_LOG_LEVEL (default `info`), the format from
 * HANDOFF_LOG_FORMAT (`pretty` or `json`; default pretty on a terminal, else JSON): a supervisor
 * passes its own to the children it runs.
 */
export function defaultLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  const format = logFormatFor(env.HANDOFF_LOG_FORMAT, process.stderr.isTTY === true);
  return createLogger({ name: 'handoff-service', level: env.HANDOFF_LOG_LEVEL?.trim().toLowerCase() ?? 'info', format, color: format === 'pretty' && process.stderr.isTTY === true && env.NO_COLOR === undefined });
}
