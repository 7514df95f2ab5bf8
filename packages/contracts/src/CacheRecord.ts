import { z } from 'zod';
import { layerRecordSchema } from './StageResult.js';

/** One cache index record as stored (JSON) by the Redis cache index. */
export const cacheRecordSchema = z.object({
  key: z.string(),
  /** null when the vertex ran but changed no file (no layer, like Docker's empty layers). */
  layer: layerRecordSchema.nullable(),
  description: z.string(),
  platform: z.string(),
  createdMs: z.number(),
  lastUsedMs: z.number(),
  usageCount: z.number(),
});
export type CacheRecord = z.infer<typeof cacheRecordSchema>;
