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
