import { fromRedis, stageResultSchema, type StageResult } from '@buildyard/contracts';
import type { StagePlan } from '@buildyard/graph';
import type { StageJob } from '@buildyard/scheduler';
import { answeredInputsOf } from '@buildyard/solver';

/**
 * Every input result a stage reads: those the scheduler hands over, and those of stages the
 * frontend answered from the cache, which ride in the plan (never scheduled). The worker marks
 * all their layers used and gives all of them to the solver.
 */
export function stageInputs(job: Pick<StageJob, 'inputs' | 'platform'>, stage: StagePlan): Record<string, StageResult> {
  const scheduled = Object.entries(job.inputs).map(([id, r]) => [id, fromRedis(stageResultSchema, r, `the result of stage ${id} (${job.platform})`)] as const);
  return { ...answeredInputsOf(stage), ...Object.fromEntries(scheduled) };
}
