/** Exit codes of every `handoff` command, and the one error type that carries them. */

export const EXIT = {
  /** Done: a handoff committed, a command succeeded, a supervisor stopped cleanly. */
  ok: 0,
  /** A handoff aborted (or could not start), nothing to abort, a supervisor failed to start. */
  failed: 1,
  /** A usage error, or no supervisor to talk to. */
  usage: 2,
  /** Another handoff is in flight. */
  busy: 3,
  /** `handoff run` forced down by a second SIGINT; `handoff upgrade` detached by Ctrl-C. */
  interrupted: 130,
} as const;

/** An error the CLI reports as one line (`handoff: <message>`) and turns into an exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export function usageError(message: string): CliError {
  return new CliError(message, EXIT.usage);
}
