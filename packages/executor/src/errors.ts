/** A process ran and exited non-zero (BuildKit's wording), or could not be started. */
export class ExecError extends Error {
  override name = 'ExecError';
  constructor(
    message: string,
    readonly exitCode: number,
    readonly args: string[],
    /** Last lines the process wrote to stderr, for showing under the error. */
    readonly stderrTail: string[],
  ) {
    super(message);
  }
}

export class ExecTimeoutError extends Error {
  override name = 'ExecTimeoutError';
  constructor(readonly timeoutMs: number, readonly args: string[], readonly stderrTail: string[]) {
    super(`RUN timed out after ${formatDuration(timeoutMs)}: process "${args.join(' ')}" was killed; make the step faster or raise its timeout`);
  }
}

/** The caller's AbortSignal fired; the container was killed and removed. */
export class AbortError extends Error {
  override name = 'AbortError';
  constructor(message = 'the run was aborted', options?: { cause?: unknown }) {
    super(message, options);
  }
}

function formatDuration(ms: number): string {
  if (ms % 1000 === 0) return `${ms / 1000}s`;
  return ms < 1000 ? `${ms}ms` : `${(ms / 1000).toFixed(1)}s`;
}

/** The step was stopped or failed at one of its sandbox limits (memory, processes, disk). */
export class ExecLimitError extends ExecError {
  override name = 'ExecLimitError';
  constructor(message: string, readonly limit: 'memory' | 'pids' | 'disk', exitCode: number, args: string[], stderrTail: string[]) {
    super(message, exitCode, args, stderrTail);
  }
}
