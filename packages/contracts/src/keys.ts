// Every Redis key Buildyard writes, under one prefix, so that two deployments can share a Redis
// and so that the frontend, the workers, the scheduler and the dashboard agree on the names.
// BullMQ refuses ':' in queue names, so queue names use '-'.

/** The prefix of every key when none is configured (`redis.keyPrefix`). */
export const DEFAULT_KEY_PREFIX = 'buildyard';

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

/** What a stage queue name says about itself (the inverse of the two functions above). */
export function describeQueueName(name: string): { kind: 'worker'; workerId: string } | { kind: PlacementClass; platform: string } | undefined {
  const worker = /^stages-w-(.+)$/.exec(name);
  if (worker) return { kind: 'worker', workerId: worker[1] };
  const platform = /^stages-(.+)-(native|emulated)$/.exec(name);
  // queueSafe turned '/' into '-'; platform components never contain '-'.
  return platform ? { kind: platform[2] as PlacementClass, platform: platform[1].replace(/-/g, '/') } : undefined;
}

/** The scheduler's keys under its own prefix (`<prefix>:sched` of the deployment's keys). */
export function schedulerKeys(prefix: string) {
  // Every scheduler key (BullMQ's too) carries one hash tag, `{<prefix>}`: the scheduler's Lua
  // scripts move stages between builds, tenants and queues atomically, and Redis Cluster runs a
  // script or MULTI only on keys of one slot. On a single Redis the braces are just characters.
  const base = `{${prefix}}`;
  return {
    prefix,
    /** `{prefix}`: what every key starts with (the Lua scripts' P). */
    base,
    bullPrefix: `${base}:bull`,
    build: (buildId: string) => `${base}:build:${buildId}`,
    buildStages: (buildId: string) => `${base}:build:${buildId}:stages`,
    buildEvents: (buildId: string) => `${base}:build:${buildId}:events`,
    stage: (ref: string) => `${base}:stage:${ref}`,
    worker: (id: string) => `${base}:worker:${id}`,
    /** Sorted set: registered worker id -> heartbeat expiry (ms, Redis clock); dead ones by one range query. */
    workerBeats: `${base}:workers:beats`,
    /** Set: ids of draining workers (the scheduler's tick re-homes their queued jobs). */
    workersDraining: `${base}:workers:draining`,
    /** Sorted set: live, not draining worker ids of one platform and class -> heartbeat expiry. */
    platformWorkers: (platform: string, cls: PlacementClass) => `${base}:platform:${platform}:${cls}`,
    /** Set: consumers of one stage queue waiting for work (a placement wakes as many as it added jobs). */
    idleConsumers: (queue: string) => `${base}:idle:${queue}`,
    /** Pub/sub: one worker's wake-ups (a queue name, or drain/undrain). */
    wakeChannel: (workerId: string) => `${base}:wake:${workerId}`,
    /** Set: tenants with ready stages that may claim now. */
    tenants: `${base}:tenants`,
    /** Set: tenants with ready stages held at their limit (back in `tenants` when a slot frees). */
    tenantsHeld: `${base}:tenants:held`,
    /** Hash: tenant -> stages holding one of its slots (dispatching, queued or running). */
    tenantsActive: `${base}:tenants:active`,
    /** Hash: cache key -> the stage leading it (its followers wait for its result). */
    inflight: `${base}:inflight`,
    /** Hash: cache key -> its followers' stage refs, newline-separated. */
    inflightFollowers: `${base}:inflight:followers`,
    /** Set: stages between claim and job add (the recover script gives back those of dead claimers). */
    claimed: `${base}:claimed`,
    /** String with a TTL: a dispatcher's lease on the stages it claimed. */
    claimerLease: (claimerId: string) => `${base}:claimer:${claimerId}`,
    cancelChannel: `${base}:cancel`,
    config: `${base}:config`,
    /** String: one tenant's limit (a number or 'fleet'), overriding the configured one. */
    tenantLimit: (tenant: string) => `${base}:tenant:${tenant}:limit`,
    /** Set of the stage queues jobs were placed on (the dashboard lists queues from it). */
    queues: `${base}:queues`,
    /** Counter: the ready order of stages of equal priority. */
    seq: `${base}:seq`,
    /** Sorted set: one tenant's ready stage refs by priority, then readiness. */
    tenantReady: (tenant: string) => `${base}:tenant:${tenant}:ready`,
    /** BullMQ's keys of one stage queue (the placement view counts what waits there). */
    bullQueue: (queue: string) => `${base}:bull:${queue}`,
  };
}

export type SchedulerKeys = ReturnType<typeof schedulerKeys>;

function checkPrefix(prefix: string): string {
  if (!/^[A-Za-z0-9_.-]+(:[A-Za-z0-9_.-]+)*$/.test(prefix)) {
    throw new Error(`invalid Redis key prefix "${prefix.slice(0, 64)}": use letters, digits, '.', '_', '-' and ':' between parts (e.g. buildyard or team-a:buildyard)`);
  }
  return prefix;
}

/** Every key of one deployment. */
export function redisKeys(prefix: string = DEFAULT_KEY_PREFIX) {
  const p = checkPrefix(prefix);
  // Hash tags: the cache index's scripts touch one tenant's records with the shared blob counts,
  // and the leases' script every build's lease, which Redis Cluster allows only within one slot.
  const cache = `{${p}:cache}`;
  const leases = `{${p}:leases}`;
  // And the build records: a record is created, ended and forgotten together with its place in
  // the build list and the unfinished set (one MULTI), and the list's pages read many records
  // in one pipeline. Records are small, so one slot holds them all.
  const builds = `{${p}:builds}`;
  return {
    prefix: p,
    /** Sorted set of build ids by creation time (the frontend's build list). */
    builds,
    /** Set: ids of builds still queued or running (read by every frontend's orphan sweep). */
    unfinishedBuilds: `${builds}:unfinished`,
    /** Sorted set of one tenant's build ids by creation time: a tenant's list costs its own builds, not everyone's. */
    tenantBuilds: (tenant: string) => `${builds}:tenant:${tenant}`,
    /** String: set once the tenant lists hold every kept record (those older than them included). */
    tenantBuildsIndexed: `${builds}:tenant-index-v1`,
    /** Hash: one build's record (BuildRecord). */
    build: (buildId: string) => `${builds}:build:${buildId}`,
    /** String: a build's sealed secrets, only while it runs. */
    buildSecrets: (buildId: string) => `${p}:build-secrets:${buildId}`,
    /** String (protobuf SolveRequest, base64, without secrets): what a build asked for, while it
     *  runs, so another frontend can take over its coordination. */
    buildRequest: (buildId: string) => `${p}:build-request:${buildId}`,
    /** Pub/sub: ids of builds a client cancelled (the record's cancelRequested says so durably). */
    buildCancels: `${p}:build-cancels`,
    /** String with a TTL: a frontend's liveness as the coordinator of its builds. */
    frontend: (frontendId: string) => `${p}:frontend:${frontendId}`,
    /** Stream: one build's progress events. */
    progress: (buildId: string) => `${p}:progress:${buildId}`,
    /**
     * A build's SSH agent relay (RUN --mount=type=ssh; see SshRelay.ts), only while it runs. One
     * hash tag per build (the relay ends by deleting its keys in one DEL): builds spread over slots.
     */
    ssh: {
      /** String (JSON): the agent ids the client forwards; absent when it forwards none. */
      offer: (buildId: string) => `{${p}:ssh:${buildId}}:offer`,
      /** List: sealed requests of workers to open a connection to the client's agent. */
      open: (buildId: string) => `{${p}:ssh:${buildId}}:open`,
      /** List: one direction of one relayed agent connection (sealed frames). */
      conn: (buildId: string, connId: string, direction: 'up' | 'down') => `{${p}:ssh:${buildId}}:conn:${connId}:${direction}`,
    },
    cache: {
      /** Hash digest -> number of cache records (of any tenant) referencing it. */
      blobRefs: `${cache}:blobrefs`,
      /** Prefix of one tenant's record strings (the cache key follows). */
      records: (tenant: string) => `${cache}:${tenant}:rec:`,
      /** Sorted set of one tenant's cache keys by last use. */
      lru: (tenant: string) => `${cache}:${tenant}:lru`,
      /** SCAN pattern of every tenant's LRU set, and the tenant a matched key names. */
      lruPattern: `${cache}:*:lru`,
      tenantOfLru: (key: string) => key.slice(cache.length + 1, -':lru'.length),
    },
    leases: {
      /** Sorted set build id -> lease expiry. */
      expiries: `${leases}:expiries`,
      /** Set of digests one build leases; `buildPrefix` + build id. */
      build: (buildId: string) => `${leases}:build:${buildId}`,
      buildPrefix: `${leases}:build:`,
      /** Set while a build's lease has been released: a stage's write scope ending later drops its own (blobWrites.ts). */
      ended: (buildId: string) => `${leases}:ended:${buildId}`,
    },
    workerDisk: {
      /** Pub/sub channel of the frontend's du/prune requests to every worker. */
      channel: `${p}:worker-disk`,
      /** List one request's reports arrive on (BLPOP). */
      reply: (requestId: string) => `${p}:worker-disk:reply:${requestId}`,
    },
    scheduler: schedulerKeys(`${p}:sched`),
  };
}

export type RedisKeys = ReturnType<typeof redisKeys>;

/** The keys of the default prefix, for callers that were given none. */
export const DEFAULT_KEYS: RedisKeys = redisKeys();
