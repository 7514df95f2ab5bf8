/** Exit codes of the `buildyard` CLI; documented in its --help. */
export const ExitCode = {
  Success: 0,
  BuildFailed: 1,
  Usage: 2,
  Unreachable: 3,
  Interrupted: 130,
} as const;
export type ExitCode = (typeof ExitCode)[keyof typeof ExitCode];

/** An error meant for the user: one line, and the exit code the CLI ends with. */
export class ClientError extends Error {
  constructor(message: string, readonly exitCode: ExitCode = ExitCode.BuildFailed) {
    super(message);
    this.name = 'ClientError';
  }
}

export function usageError(message: string): ClientError {
  return new ClientError(message, ExitCode.Usage);
}
