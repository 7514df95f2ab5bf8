import type { EgressRules } from './egressRules.js';
import type { RunOptions, RunResult } from './types.js';

/**
 * Runs one process in a container on a prepared root filesystem, as BuildKit's
 * executor.Executor: the solver knows this, never runc. RuncExecutor is the implementation.
 */
export interface Executor {
  run(options: RunOptions): Promise<RunResult>;
  /** What a build may reach on the network; the solver applies it to what it fetches for the
   *  build (ADD <url>). Absent: no restriction (an executor without a network policy). */
  readonly egressRules?: EgressRules;
}
