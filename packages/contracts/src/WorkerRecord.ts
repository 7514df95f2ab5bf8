import { z } from 'zod';
import { jsonList } from './fromRedis.js';

const num = (fallback: number) => z.coerce.number().nonnegative().default(fallback);

/** A worker's registry hash as Redis returns it (the scheduler's `<prefix>:worker:<id>`). */
export const workerHashSchema = z.object({
  nativePlatforms: jsonList,
  emulatedPlatforms: jsonList,
  capacity: z.coerce.number().int().positive(),
  cacheBytes: num(0),
  version: z.string().default(''),
  running: num(0),
  draining: z.string().default('0').transform((v) => v === '1'),
  registeredAt: num(0),
  lastHeartbeat: z.coerce.number().nonnegative().optional(),
});

/**
 * What the scheduler's `view` script returns (JSON, w_view.lua): per platform the live native
 * and emulating worker counts, per live input holder its hash fields and own queue length.
 * cjson encodes an empty table as `{}`, so both maps may be empty objects.
 */
export const placementViewSchema = z.object({
  platforms: z.record(z.string(), z.object({ native: z.number().int().nonnegative(), emulated: z.number().int().nonnegative() })),
  holders: z.record(z.string(), z.object({
    capacity: z.number().int().positive(),
    running: z.number().nonnegative(),
    draining: z.boolean(),
    nativePlatforms: jsonList,
    emulatedPlatforms: jsonList,
    queued: z.number().int().nonnegative(),
  })),
});
