// Public API of @buildyard/scheduler: BullMQ stage queues, placement (native first, emulated as
// fallback, inputs' worker preferred), dedupe, tenant limits and the worker registry. Key names
// and job data are @buildyard/contracts'; state transitions are Lua scripts in ../lua.
export { Scheduler, NoWorkerError, type SchedulerOptions } from './Scheduler.js';
export { StageConsumer, type StageConsumerOptions, type LostWakeUp } from './StageConsumer.js';
export { WorkerRegistry, type WorkerRegistryOptions, type Heartbeat, type HolderStatus, type PlatformCount, type PlacementView } from './WorkerRegistry.js';
export { platformQueueName, workerQueueName, stageRef, parseStageRef, DEFAULT_PREFIX, type PlacementClass } from './keys.js';
export { choosePlacement, noWorkerMessage, type Placement, type StageJobData } from './Dispatcher.js';
export { planStages } from './StageStore.js';
export { isTerminalEvent, parseBuildEvent } from './buildEvents.js';
export { queueView, waitingStages, platformTotals, type HoldReason, type WaitingStage, type PlatformTenantQueue, type QueueViewInput } from './queueView.js';
export type { RedisTarget } from './connectRedis.js';
export type * from './types.js';
