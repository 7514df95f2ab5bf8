// Public API of @buildyard/contracts: everything that crosses Redis between the frontend, the
// workers, the scheduler and the dashboard — key names under one prefix, stage payloads and
// results, build records, worker and cache records, sealed build secrets — each with the zod
// schema its reader validates it with. Depends only on graph (the stage type), so both the
// frontend (control) and the worker (fleet) sit above it without loading each other.
export {
  DEFAULT_KEY_PREFIX, DEFAULT_KEYS, redisKeys, schedulerKeys, stageRef, parseStageRef, platformQueueName, workerQueueName, describeQueueName,
  type RedisKeys, type SchedulerKeys, type PlacementClass,
} from './keys.js';
export { fromRedis, jsonFromRedis, MalformedRedisDataError } from './fromRedis.js';
export { stagePayloadSchema, type StagePayload } from './StagePayload.js';
export { stageResultSchema, layerRecordSchema, type StageResult, type LayerRecord } from './StageResult.js';
export {
  stageJobDataSchema, traceContextSchema, stageHashSchema, schedulerBuildHashSchema, STAGE_STATUSES, SCHEDULER_BUILD_STATUSES, type StageJobData,
} from './StageJobData.js';
export { BuildRecords, isUnfinished, buildRecordFromHash, buildRecordHashSchema, BUILD_RECORD_STATUSES, type BuildRecord, type BuildRecordStatus } from './BuildRecords.js';
export { BuildSecrets, sealSecrets, unsealSecrets, secretsKey, buildSecretsPayloadSchema, type BuildSecretsPayload } from './BuildSecrets.js';
export { workerHashSchema, placementViewSchema } from './WorkerRecord.js';
export { SshRelay, MAX_SSH_CONN_BYTES, MAX_SSH_CONNS_PER_SOCKET, MAX_SSH_CONNS_PER_BUILD, MAX_SSH_UNREAD_BYTES, SSH_FRAME_BYTES, SSH_WINDOW_FRAMES, SSH_WINDOW_BYTES, missingSshAgent, DEFAULT_SSH_ID, type SshOpenRequest } from './SshRelay.js';
export { luaCommands, type LuaScript, type LuaCommand } from './luaCommands.js';
export { cacheRecordSchema, type CacheRecord } from './CacheRecord.js';
export {
  workerDiskRequestSchema, workerDiskReportSchema, workerDiskPartSchema, type WorkerDiskRequest, type WorkerDiskReport, type WorkerDiskPart,
} from './WorkerDisk.js';
export { openRedis, duplicateRedis, keepSubscribed, scanKeys, parseRedisUrl, replyWithin, closeRedis, abandonRedis, reportOutages, untilRedisGone, STOP_WITHOUT_REDIS_MS, type OutageLog, type RedisClient, type RedisConnection, type RedisClientOptions, type RedisUrlParts } from './redisClient.js';
