/** The one error type of all the listeners modules, so callers (config, run) catch a single class. */

export type ListenerErrorCode = 'bad_spec' | 'duplicate_name' | 'bind_failed' | 'helper_failed' | 'bad_inherited';

/** Every failure of the listeners modules: a one-line message naming the listener when there is one. */
export class ListenerError extends Error {
  readonly code: ListenerErrorCode;
  /** The listener's name, when the error is about one. */
  readonly listener: string | undefined;
  /** The errno code (`EADDRINUSE`, `EACCES`, ...) for `bind_failed`. */
  readonly errno: string | undefined;

  constructor(code: ListenerErrorCode, message: string, listener?: string, errno?: string) {
    super(oneLine(message));
    this.name = 'ListenerError';
    this.code = code;
    this.listener = listener;
    this.errno = errno;
  }
}

/** Also used by bind.ts to fold the helper's stderr into its message. */
export function oneLine(s: string): string {
  // eslint-disable-next-line no-control-regex
  return (s.split(/\r?\n/, 1)[0] ?? '').replace(/[\x00-\x1f\x7f]/g, ' ');
}
