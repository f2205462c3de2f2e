/** The library's logger: pino JSON lines on stderr, written synchronously so nothing is lost at exit. */

import { pino, type Logger } from 'pino';

export type { Logger } from 'pino';

/** A logger on fd 2; the level comes from HANDOFF_LOG_LEVEL (default `info`). */
export function defaultLogger(env: NodeJS.ProcessEnv = process.env): Logger {
  return pino(
    { name: 'handoff-service', level: env.HANDOFF_LOG_LEVEL ?? 'info', base: { pid: process.pid } },
    pino.destination({ dest: 2, sync: true }),
  );
}
