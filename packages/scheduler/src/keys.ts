// Redis key and BullMQ queue naming live in @buildyard/contracts, so the frontend, the workers
// and the dashboard agree with the scheduler and its Lua scripts; re-exported here for callers.
import { DEFAULT_KEYS, type SchedulerKeys } from '@buildyard/contracts';

export {
  stageRef, parseStageRef, platformQueueName, workerQueueName, describeQueueName, schedulerKeys, type PlacementClass, type SchedulerKeys,
} from '@buildyard/contracts';

/** The scheduler's prefix when none is given: `<redis.keyPrefix>:sched` of the default deployment. */
export const DEFAULT_PREFIX = DEFAULT_KEYS.scheduler.prefix;

/**
 * The keys every scheduler script declares first, in prelude.lua's order (CONFIG, TENANTS, HELD,
 * SEQ, BEATS, DRAINING, ACTIVE, CLAIMED, INFLIGHT, FOLLOWERS); a script's own keys follow. The
 * first one also routes the call to the scheduler's slot on a Redis Cluster.
 */
export function fixedScriptKeys(k: SchedulerKeys): string[] {
  return [k.config, k.tenants, k.tenantsHeld, k.seq, k.workerBeats, k.workersDraining, k.tenantsActive, k.claimed, k.inflight, k.inflightFollowers];
}

/**
 * The key a script asks for by label (prelude.lua): a script names the keys it finds only by what
 * it reads (a stage's dependents, a tenant's ready stages, a worker's platforms) by what they are,
 * `<kind>:<id>`, and its caller declares them under these names on its next call.
 */
export function labelKey(k: SchedulerKeys, label: string): string {
  const i = label.indexOf(':');
  const id = label.slice(i + 1);
  switch (i < 0 ? label : label.slice(0, i)) {
    case 's': return k.stage(id);
    case 'b': return k.build(id);
    case 'bs': return k.buildStages(id);
    case 'be': return k.buildEvents(id);
    case 'tr': return k.tenantReady(id);
    case 'tl': return k.tenantLimit(id);
    case 'w': return k.worker(id);
    case 'pn': return k.platformWorkers(id, 'native');
    case 'pe': return k.platformWorkers(id, 'emulated');
    case 'idle': return k.idleConsumers(id);
    case 'lease': return k.claimerLease(id);
    // `job:<queue>:<job id>`: a BullMQ job's hash (queue names hold no ':')
    case 'job': {
      const j = id.indexOf(':');
      return `${k.bullQueue(id.slice(0, j))}:${id.slice(j + 1)}`;
    }
    default: throw new Error(`scheduler script asked for a key labelled "${label.slice(0, 200)}", which names no scheduler key`);
  }
}
