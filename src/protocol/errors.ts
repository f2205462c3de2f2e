/** The one error type of the protocol, with a stable `kind` that crosses the wire in `Abort.reason`. */

export const ERROR_KINDS = [
  'frame_too_large',
  'frame_malformed',
  'malformed_message',
  'unknown_message',
  'version_mismatch',
  'unexpected_message',
  'handoff_id_mismatch',
  'handoff_in_progress',
  'pid_mismatch',
  'deadline_exceeded',
  'heartbeat_timeout',
  'peer_closed',
  'seal_failed',
  'successor_failed',
  'successor_unhealthy',
  'revision_mismatch',
  'lock_held',
  'operator_abort',
  'incumbent_failed',
  'incumbent_hung',
  'supervisor_stopping',
] as const;

export type ErrorKind = (typeof ERROR_KINDS)[number];

const KIND_SET: ReadonlySet<string> = new Set(ERROR_KINDS);

export function isErrorKind(s: string): s is ErrorKind {
  return KIND_SET.has(s);
}

/** Longest detail an `Abort.reason` carries, in UTF-8 bytes. */
export const MAX_REASON_DETAIL = 512;

export class ProtocolError extends Error {
  readonly kind: ErrorKind;
  readonly detail: string;

  constructor(kind: ErrorKind, detail: string) {
    super(`${kind}: ${detail}`);
    this.name = 'ProtocolError';
    this.kind = kind;
    this.detail = detail;
  }

  /** The `<kind>: <detail>` form used for `Abort.reason`, made safe to send. */
  toReason(): string {
    return abortReason(this.kind, this.detail);
  }
}

/**
 * Builds `<kind>: <detail>`, keeping only the first line of the detail (a stack trace starts on the
 * second), dropping control characters (C0, DEL and C1), and cutting it to MAX_REASON_DETAIL bytes of
 * UTF-8 without splitting a character.
 */
export function abortReason(kind: ErrorKind, detail: string): string {
  const firstLine = detail.split(/\r\n|[\n\r\u2028\u2029]/, 1)[0] as string; // split always yields one
  // eslint-disable-next-line no-control-regex
  let clean = firstLine.replace(/[\u0000-\u001f\u007f-\u009f]/g, '').trim();
  const bytes = Buffer.from(clean, 'utf8');
  if (bytes.length > MAX_REASON_DETAIL) {
    // Back up over continuation bytes (10xxxxxx) to the start of the character the limit falls in.
    let end = MAX_REASON_DETAIL;
    while (end > 0 && ((bytes[end] as number) & 0xc0) === 0x80) end--;
    clean = bytes.subarray(0, end).toString('utf8');
  }
  return `${kind}: ${clean}`;
}

/** Splits an `Abort.reason` back into kind and detail; an unknown kind is kept as detail. */
export function parseReason(reason: string): { kind: ErrorKind | undefined; detail: string } {
  const i = reason.indexOf(': ');
  const head = i < 0 ? reason : reason.slice(0, i);
  if (isErrorKind(head)) return { kind: head, detail: i < 0 ? '' : reason.slice(i + 2) };
  return { kind: undefined, detail: reason };
}

/** Wraps anything thrown into a ProtocolError of the given kind, never leaking a stack. */
export function asProtocolError(err: unknown, kind: ErrorKind): ProtocolError {
  if (err instanceof ProtocolError) return err;
  const msg = err instanceof Error ? err.message : String(err);
  return new ProtocolError(kind, msg);
}
