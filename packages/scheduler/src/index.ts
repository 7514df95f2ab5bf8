export { Scheduler, NoWorkerError, type SchedulerOptions } from './Scheduler.js';
export { StageConsumer, type StageConsumerOptions } from './StageConsumer.js';
export { WorkerRegistry, type WorkerRegistryOptions, type Heartbeat } from './WorkerRegistry.js';
export { platformQueueName, workerQueueName, stageRef, parseStageRef, DEFAULT_PREFIX, type PlacementClass } from './keys.js';
export { choosePlacement, noWorkerMessage, type Placement, type StageJobData } from './Dispatcher.js';
export { planStages } from './StageStore.js';
export { isTerminalEvent } from './buildEvents.js';
export type { RedisTarget } from './connectRedis.js';
export type * from './types.js';
