import type { RunOptions, RunResult } from './types.js';

/**
 * Runs one process in a container on a prepared root filesystem, as BuildKit's
 * executor.Executor: the solver knows this, never runc. RuncExecutor is the implementation.
 */
export interface Executor {
  run(options: RunOptions): Promise<RunResult>;
}
