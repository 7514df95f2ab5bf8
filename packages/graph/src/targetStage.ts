import type { PlatformPlan, StagePlan } from './types.js';

/** The stage a platform's plan builds (its image). */
export function targetStage(plan: PlatformPlan): StagePlan | undefined {
  return plan.stages.find((s) => s.id === plan.target);
}
