/** The two errors of the admin API: one for the operator at start, one for a client. */

/** The admin server could not start; the message is one line for the operator. */
export class AdminStartError extends Error {
  override name = 'AdminStartError';
}

/** An error answered to the client as `{"error": {kind, message}}`, with its status and headers. */
export class HttpError extends Error {
  override name = 'HttpError';
  constructor(
    readonly status: number,
    readonly kind: string,
    message: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }
}

/** The answer to a request whose failure is S's own: nothing of it (message, stack) reaches the client. */
export function internalError(): HttpError {
  return new HttpError(500, 'internal', 'internal error (see the supervisor log)');
}
