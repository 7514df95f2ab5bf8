// Redis key and BullMQ queue naming live in @buildyard/contracts, so the frontend, the workers
// and the dashboard agree with the scheduler and its Lua scripts; re-exported here for callers.
import { DEFAULT_KEYS } from '@buildyard/contracts';

export {
  stageRef, parseStageRef, platformQueueName, workerQueueName, schedulerKeys, type PlacementClass, type SchedulerKeys,
} from '@buildyard/contracts';

/** The scheduler's prefix when none is given: `<redis.keyPrefix>:sched` of the default deployment. */
export const DEFAULT_PREFIX = DEFAULT_KEYS.scheduler.prefix;
