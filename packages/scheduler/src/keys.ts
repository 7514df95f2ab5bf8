// Redis key and BullMQ queue naming, in one place so the README, the Lua scripts and the
// dashboard agree. BullMQ refuses ':' in queue names, so queue names use '-'.

export const DEFAULT_PREFIX = 'by:sched';

/** `buildId|platform|stageId`: the id of one stage of one build across all keys. */
export function stageRef(buildId: string, platform: string, stageId: string): string {
  return `${buildId}|${platform}|${stageId}`;
}

export function parseStageRef(ref: string): { buildId: string; platform: string; stageId: string } {
  const [buildId, platform, stageId] = ref.split('|');
  return { buildId: buildId ?? '', platform: platform ?? '', stageId: stageId ?? '' };
}

function queueSafe(s: string): string {
  return s.replace(/[^A-Za-z0-9_.-]/g, '-');
}

export type PlacementClass = 'native' | 'emulated';

/** `stages-linux-arm64-native`: jobs any worker running that platform natively may take. */
export function platformQueueName(platform: string, cls: PlacementClass): string {
  return `stages-${queueSafe(platform)}-${cls}`;
}

/** `stages-w-<id>`: jobs placed on one worker because it already holds their inputs. */
export function workerQueueName(workerId: string): string {
  return `stages-w-${queueSafe(workerId)}`;
}

export function schedulerKeys(prefix: string) {
  return {
    bullPrefix: `${prefix}:bull`,
    build: (buildId: string) => `${prefix}:build:${buildId}`,
    buildStages: (buildId: string) => `${prefix}:build:${buildId}:stages`,
    buildEvents: (buildId: string) => `${prefix}:build:${buildId}:events`,
    stage: (ref: string) => `${prefix}:stage:${ref}`,
    workers: `${prefix}:workers`,
    worker: (id: string) => `${prefix}:worker:${id}`,
    workerAlive: (id: string) => `${prefix}:worker:${id}:alive`,
    cancelChannel: `${prefix}:cancel`,
    workChannel: `${prefix}:work`,
    config: `${prefix}:config`,
  };
}

export type SchedulerKeys = ReturnType<typeof schedulerKeys>;
