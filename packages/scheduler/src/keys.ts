// Redis key and BullMQ queue naming live in @buildyard/contracts, so the frontend, the workers
// and the dashboard agree with the scheduler and its Lua scripts; re-exported here for callers.
import { DEFAULT_KEYS, type SchedulerKeys } from '@buildyard/contracts';

export {
  stageRef, parseStageRef, platformQueueName, workerQueueName, schedulerKeys, type PlacementClass, type SchedulerKeys,
} from '@buildyard/contracts';

/** The scheduler's prefix when none is given: `<redis.keyPrefix>:sched` of the default deployment. */
export const DEFAULT_PREFIX = DEFAULT_KEYS.scheduler.prefix;

/**
 * The keys every scheduler script declares first, in prelude.lua's order (CONFIG, TENANTS, HELD,
 * SEQ, BEATS, DRAINING); a script's own keys follow. The first one also routes the call to the
 * scheduler's slot on a Redis Cluster.
 */
export function fixedScriptKeys(k: SchedulerKeys): string[] {
  return [k.config, k.tenants, k.tenantsHeld, k.seq, k.workerBeats, k.workersDraining];
}
