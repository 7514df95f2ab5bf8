import { z } from 'zod';
import type { StagePlan } from '@buildyard/graph';

/** What a worker receives for one stage (the scheduler's opaque job payload). */
export interface StagePayload {
  stage: StagePlan;
  /** The synced build context the stage reads (`sha256:…`), empty for none. */
  contextId: string;
  noCache: boolean;
  /** The build's network for RUN steps: `host`, `none`, or anything else for the default. */
  network: string;
}

// The stage itself is the planner's output, digested into every cache key: the fields the
// worker reads directly are checked, the vertices' own members by the solver that runs them.
const stagePlanSchema = z.looseObject({
  id: z.string(),
  name: z.string().optional(),
  index: z.number().int(),
  platform: z.string(),
  base: z.discriminatedUnion('kind', [
    z.looseObject({ kind: z.literal('image'), ref: z.string(), digest: z.string() }),
    z.looseObject({ kind: z.literal('stage'), stageId: z.string() }),
    z.looseObject({ kind: z.literal('scratch') }),
  ]),
  dependsOn: z.array(z.string()),
  vertices: z.array(z.looseObject({ kind: z.enum(['exec', 'file']), digest: z.string(), cacheKey: z.string(), name: z.string() })),
  config: z.looseObject({}),
  history: z.array(z.looseObject({})),
  cacheKey: z.string(),
  noCache: z.boolean(),
}) as unknown as z.ZodType<StagePlan>;

export const stagePayloadSchema: z.ZodType<StagePayload> = z.object({
  stage: stagePlanSchema,
  contextId: z.string(),
  noCache: z.boolean(),
  network: z.string(),
});
