import { z } from 'zod';

/** What a BullMQ stage job carries: only the stage's address; payload and inputs stay in the stage record. */
export const stageJobDataSchema = z.object({
  ref: z.string().min(1),
  buildId: z.string(),
  tenant: z.string(),
  priority: z.number(),
  platform: z.string(),
  /** Where the stage executes when not on `platform` (its target); absent: on `platform`. */
  runPlatform: z.string().optional(),
  stageId: z.string(),
  cacheKey: z.string(),
  traceContext: z.record(z.string(), z.string()),
});
export type StageJobData = z.infer<typeof stageJobDataSchema>;

/** W3C trace context (`traceparent`, `tracestate`) as carried in job data and stage records. */
export const traceContextSchema = z.record(z.string(), z.string());

export const STAGE_STATUSES = ['pending', 'ready', 'dispatching', 'queued', 'running', 'deduped', 'done', 'failed', 'cancelled'] as const;
export const SCHEDULER_BUILD_STATUSES = ['running', 'done', 'failed', 'cancelled'] as const;

/** The fields of the scheduler's stage hash every reader relies on (the Lua scripts write it). */
export const stageHashSchema = z.looseObject({
  platform: z.string(),
  stage: z.string(),
  state: z.enum(STAGE_STATUSES),
  cacheKey: z.string().default(''),
  deps: z.string().default(''),
  attempts: z.coerce.number().int().nonnegative().default(0),
});

/** The fields of the scheduler's build hash every reader relies on. */
export const schedulerBuildHashSchema = z.looseObject({
  tenant: z.string(),
  prio: z.coerce.number(),
  state: z.enum(SCHEDULER_BUILD_STATUSES),
  createdAt: z.coerce.number(),
});
