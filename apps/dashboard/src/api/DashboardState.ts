import { Queue, type Job, type JobType } from 'bullmq';
import { BlobLeases, RedisCacheIndex, pruneCache, type CacheRecord } from '@buildyard/cache';
import {
  BuildRecords, BUILD_RECORD_STATUSES, isUnfinished, DEFAULT_KEYS, buildRecordFromHash, cacheRecordSchema, describeQueueName, jsonFromRedis, scanKeys, stageRef,
  type BuildRecord, type RedisClient as Redis, type RedisKeys,
} from '@buildyard/contracts';
import type { ProgressEvent } from '@buildyard/progress';
import { askWorkersDisk, pruneWorkers } from '@buildyard/cache';
import { Scheduler, WorkerRegistry, parseBuildEvent, queueView, waitingStages, type BuildEvent, type BuildState, type QueueViewInput, type StageState, type WorkerStatus } from '@buildyard/scheduler';

/** A stage as the Dockerfile has it (from its payload): what progress events name it by. */
export interface StagePlanInfo { name?: string; index: number; platform: string }
import { stageNameOf } from './LogLines.js';
import { foldProgress, ProgressFolds, type ProgressReadLimits, type VertexFold } from './progressFold.js';
import type {
  BuildDetail, BuildList, BuildListStatus, BuildSummary, CacheEntryView, CacheTenantView, CacheView, PlatformTenantRow, PruneRequest, PruneResult,
  QueueView, RunningStage, StageView, VertexView, WorkerDiskView, WorkerPruneResult, WorkerView,
} from './types.js';

const STATUSES = new Set<string>(BUILD_RECORD_STATUSES);

export interface DashboardStateOptions {
  /** The deployment's Redis keys (`redis.keyPrefix`); the default prefix when absent. */
  keys?: RedisKeys;
  /** Scheduler key prefix when it differs from `<keys.prefix>:sched` (tests use private ones). */
  prefix?: string;
  /** Must equal the frontend's limits.tenantConcurrency: the Scheduler records it in Redis. */
  tenantLimit?: number | 'fleet';
  /** Shown as the cache "store" (config blobStore.type). */
  blobStore?: string;
  /** How long one read of every running build (queue view, holds) is shared: the sampler's interval. */
  fleetReadMs?: number;
  limits?: Partial<DashboardLimits>;
}

/**
 * What one request may read, whatever a tenant's builds and cache hold (a read token polls
 * these every few seconds). The defaults suit a deployment; tests set small ones.
 */
export interface DashboardLimits extends ProgressReadLimits {
  /** Build records a filtered build list examines before it answers with what it found. */
  buildsScanned: number;
  /** Cache entries examined per tenant (its most recently used) for sizes and largest entries. */
  cacheEntriesPerTenant: number;
}

export const DEFAULT_LIMITS: DashboardLimits = {
  buildsScanned: 10_000,
  // 500 log entries are at most ~11 MiB of base64 in memory at once; 10 000 a request bound the
  // time a first view of a 100 000-entry stream takes before it answers (the next polls read on).
  progressPage: 500,
  progressPerRequest: 10_000,
  progressBuilds: 64,
  cacheEntriesPerTenant: 2_000,
};

type FleetBuilds = { running: QueueViewInput['running']; finished: BuildState[] };

export interface BuildFilter {
  status?: string;
  tenant?: string;
  platform?: string;
  limit?: number;
}

function json<T>(text: string | undefined, fallback: T): T {
  if (!text) return fallback;
  try { return JSON.parse(text) as T; } catch { return fallback; }
}

const num = (s: string | undefined): number | null => (s === undefined || s === '' || !Number.isFinite(Number(s)) ? null : Number(s));

/**
 * Reads a build hash into the API shape through the contract's schema; a hash that does not
 * pass is still shown (as it is, with the reason as its error) rather than dropped.
 */
export function toBuildSummary(h: Record<string, string>): BuildSummary {
  let record: BuildRecord;
  try {
    record = buildRecordFromHash(h);
  } catch (err) {
    return { ...looseSummary(h), error: (err as Error).message };
  }
  const { buildId, tenant, status, platforms, createdMs, digest, error, verticesTotal, verticesCached, pushed } = record;
  const finishedMs = record.finishedMs || null;
  return {
    buildId, tenant, status, platforms, createdMs, finishedMs,
    durationMs: finishedMs && createdMs ? finishedMs - createdMs : null,
    digest, error, verticesTotal, verticesCached,
    cacheHitRatio: verticesTotal > 0 ? verticesCached / verticesTotal : null,
    pushed, ...derived(pushed, error, record.images),
  };
}

/**
 * The image names its outputs asked for (the record has them from the start), else those of its
 * pushed references without their digest (records of older frontends); the error's first line.
 * Timings come later.
 */
function derived(pushed: string[], error: string, asked: string[]): Pick<BuildSummary, 'images' | 'errorLine' | 'queueMs' | 'runMs'> {
  const images = asked.length > 0 ? asked : [...new Set(pushed.map((p) => p.replace(/@sha256:[0-9a-f]+$/, '')))];
  return { images, errorLine: error.split('\n')[0] ?? '', queueMs: null, runMs: null };
}

function looseSummary(h: Record<string, string>): BuildSummary {
  const createdMs = num(h.createdMs) ?? 0;
  const finishedMs = num(h.finishedMs) || null;
  const total = num(h.verticesTotal) ?? 0;
  const cached = num(h.verticesCached) ?? 0;
  const status = (STATUSES.has(h.status as BuildListStatus) ? h.status : 'queued') as BuildListStatus;
  return {
    buildId: h.buildId ?? '',
    tenant: h.tenant ?? '',
    status,
    platforms: json<string[]>(h.platforms, []),
    createdMs,
    finishedMs,
    durationMs: finishedMs && createdMs ? finishedMs - createdMs : null,
    digest: h.digest ?? '',
    error: h.error ?? '',
    verticesTotal: total,
    verticesCached: cached,
    cacheHitRatio: total > 0 ? cached / total : null,
    pushed: json<string[]>(h.pushed, []),
    ...derived(json<string[]>(h.pushed, []), h.error ?? '', json<string[]>(h.images, [])),
  };
}

/** One stage job a worker took, and how long it had waited in its queue. */
export interface StageWait {
  key: string;
  platform: string;
  emulated: boolean;
  waitMs: number;
  startedMs: number;
}

/**
 * Everything the dashboard shows, read through the public APIs of the packages that write it:
 * the scheduler (queue names, builds, stage placement, events), BullMQ's Queue methods (job
 * counts and jobs, under the scheduler's `keys.bullPrefix`), the build records, the cache
 * index and the progress stream (contracts' key builders). It writes nothing itself except
 * through the scheduler's own operations (drain, cancel) and the cache's prune. It never reads
 * stage payloads or results: secrets must not leak here.
 */
export class DashboardState {
  readonly scheduler: Scheduler;
  readonly registry: WorkerRegistry;
  readonly bullPrefix: string;
  readonly keys: RedisKeys;
  private readonly records: BuildRecords;
  private readonly queues = new Map<string, Queue>();
  private readonly blobStore: string;
  readonly limits: DashboardLimits;
  private readonly progress: ProgressFolds;
  private readonly fleetReadMs: number;
  private fleet: { at: number; builds: Promise<FleetBuilds> } | undefined;

  constructor(readonly redis: Redis, opts: DashboardStateOptions = {}) {
    this.keys = opts.keys ?? DEFAULT_KEYS;
    this.records = new BuildRecords(redis, this.keys);
    const prefix = opts.prefix ?? this.keys.scheduler.prefix;
    // tickMs 0: the dashboard must not dispatch or re-home stages, only observe and operate.
    this.scheduler = new Scheduler(redis, { prefix, tickMs: 0, tenantLimit: opts.tenantLimit });
    this.registry = new WorkerRegistry(redis, { prefix });
    this.bullPrefix = this.scheduler.keys.bullPrefix;
    this.blobStore = opts.blobStore ?? 'fs';
    this.tenantLimit = opts.tenantLimit;
    this.limits = { ...DEFAULT_LIMITS, ...opts.limits };
    this.progress = new ProgressFolds(redis, (id) => this.keys.progress(id), this.limits);
    this.fleetReadMs = opts.fleetReadMs ?? 5000;
  }

  private readonly tenantLimit: number | 'fleet' | undefined;
  private readonly disks = new Map<string, WorkerDiskView>();
  private measuring: Promise<void> | undefined;

  /**
   * Asks every live worker to measure its state dir (the frontend's \`du\` request) and keeps
   * the answers; one measurement at a time, so a page polling every 2 s costs at most one du
   * running per worker. A worker that does not answer within \`timeoutMs\` keeps its last figure.
   */
  measureWorkerDisks(timeoutMs = 15_000): Promise<void> {
    this.measuring ??= (async () => {
      const ids = (await this.registry.list()).map((w) => w.id);
      for (const r of await askWorkersDisk(this.redis, this.keys.prefix, { op: 'du' }, ids, timeoutMs)) {
        const parts = Object.fromEntries(r.parts.map((p) => [p.kind, p.bytes]));
        this.disks.set(r.workerId, { parts, totalBytes: r.parts.reduce((n, p) => n + p.bytes, 0), measuredMs: Date.now() });
      }
    })().finally(() => { this.measuring = undefined; });
    return this.measuring;
  }

  private queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.bullPrefix });
      q.on('error', () => undefined); // surfaces on the next call
      this.queues.set(name, q);
    }
    return q;
  }

  /** Stage queue names, as the scheduler knows them (queues used plus live workers' platforms). */
  queueNames(): Promise<string[]> {
    return this.scheduler.queueNames();
  }

  /** Current depth of every queue; `history` is filled in by the QueueSampler. */
  async listQueues(): Promise<QueueView[]> {
    const now = Date.now();
    const out: QueueView[] = [];
    for (const name of await this.queueNames()) {
      const q = this.queue(name);
      const counts = await q.getJobCounts('wait', 'prioritized', 'paused', 'active', 'delayed', 'waiting-children');
      // BullMQ keeps finished jobs for a while (see the scheduler), newest first through its API.
      const [doneMin, failedHour] = await Promise.all([finishedSince(q, 'completed', now - 60_000), finishedSince(q, 'failed', now - 3_600_000)]);
      const failedMin = failedHour.filter((j) => (j.finishedOn ?? 0) >= now - 60_000);
      // The oldest of (at most) the first 200 waiting jobs: enough to flag a stuck queue.
      const waitingJobs = await q.getJobs(['wait', 'prioritized', 'paused'], 0, 199, true);
      const oldest = waitingJobs.reduce<number | null>((m, j) => (j && (m === null || j.timestamp < m) ? j.timestamp : m), null);
      const described = describeQueueName(name);
      out.push({
        name,
        platform: described?.kind === 'worker' ? '' : (described?.platform ?? name.replace(/-/g, '/')),
        kind: described?.kind ?? 'native',
        ...(described?.kind === 'worker' ? { workerId: described.workerId } : {}),
        waiting: (counts.wait ?? 0) + (counts.prioritized ?? 0) + (counts.paused ?? 0) + (counts['waiting-children'] ?? 0),
        active: counts.active ?? 0,
        delayed: counts.delayed ?? 0,
        oldestWaitMs: oldest === null ? null : Math.max(0, now - oldest),
        throughputPerMin: doneMin.length + failedMin.length,
        failedLastHour: failedHour.length,
        history: [],
      });
    }
    return out;
  }

  /**
   * Stage jobs a worker took since `sinceMs` (active now, or finished since then) with how long
   * each waited (BullMQ's processedOn - timestamp). `key` identifies one take of one job.
   */
  async stageWaits(sinceMs: number): Promise<StageWait[]> {
    const out: StageWait[] = [];
    for (const name of await this.queueNames()) {
      const q = this.queue(name);
      const jobs = [...await q.getActive(0, 199), ...await finishedSince(q, 'completed', sinceMs), ...await finishedSince(q, 'failed', sinceMs)];
      const described = describeQueueName(name);
      for (const job of jobs) {
        if (!job?.id || !job.processedOn || job.processedOn < sinceMs) continue;
        const data = job.data as { ref?: string; platform?: string } | undefined;
        let emulated = described?.kind === 'emulated';
        // Per-worker queues mix classes; the stage record says how it ran.
        if (described?.kind === 'worker' && data?.ref) emulated = (await this.scheduler.stagePlacement(data.ref))?.emulated === true;
        out.push({
          key: `${name}/${job.id}/${job.processedOn}`, platform: data?.platform ?? '', emulated,
          waitMs: Math.max(0, job.processedOn - job.timestamp), startedMs: job.processedOn,
        });
      }
    }
    return out;
  }

  /** Alive workers with the stages their active jobs are running. */
  async listWorkers(): Promise<WorkerView[]> {
    const workers = await this.registry.list();
    const running = new Map<string, RunningStage[]>();
    for (const name of await this.queueNames()) {
      for (const job of await this.queue(name).getActive(0, 199)) {
        const data = job?.data as { ref?: string; buildId?: string; platform?: string; stageId?: string } | undefined;
        if (!data?.ref) continue;
        const worker = (await this.scheduler.stagePlacement(data.ref))?.worker;
        if (!worker) continue;
        const list = running.get(worker) ?? [];
        list.push({ buildId: data.buildId ?? '', platform: data.platform ?? '', stageId: data.stageId ?? '', queue: name });
        running.set(worker, list);
      }
    }
    return workers.map((w) => ({
      id: w.id,
      nativePlatforms: w.nativePlatforms,
      emulatedPlatforms: w.emulatedPlatforms,
      capacity: w.capacity,
      running: w.running,
      load: w.capacity > 0 ? w.running / w.capacity : 0,
      cacheBytes: w.cacheBytes,
      version: w.version,
      registeredAt: w.registeredAt,
      lastHeartbeat: w.lastHeartbeat,
      draining: w.draining,
      runningStages: running.get(w.id) ?? [],
      disk: this.disks.get(w.id) ?? null,
    }));
  }

  async drainWorker(id: string): Promise<void> {
    await this.registry.drain(id);
  }

  /**
   * The operator's prune of the workers' disks: every live worker removes, down to `keepBytes`
   * (0: all of it), the snapshots, contexts, layer copies and cache mounts no running stage
   * uses, every tenant's (a tenant's own prune reaches only its own). A busy worker waits up to
   * 20 s for its stages, then says so.
   */
  async pruneWorkers(keepBytes: number, timeoutMs = 30_000): Promise<WorkerPruneResult> {
    const reports = await pruneWorkers(this.redis, this.keys.prefix, (await this.registry.list()).map((w) => w.id), 'fleet', keepBytes, timeoutMs);
    return {
      workers: reports.map((r) => ({ id: r.workerId, reclaimedBytes: r.reclaimedBytes, ...(r.note ? { note: r.note } : {}) })),
      reclaimedBytes: reports.reduce((n, r) => n + r.reclaimedBytes, 0),
    };
  }

  /**
   * Newest first. Filters apply after reading, so records are read in pages until the limit is
   * met, but at most `limits.buildsScanned` of them: a filter matching nothing must not read the
   * whole history on every poll. `scanLimitReached` says older builds were left unexamined.
   */
  async listBuilds(filter: BuildFilter = {}): Promise<BuildList> {
    const limit = Math.min(Math.max(filter.limit ?? 200, 1), 1000);
    const out: BuildSummary[] = [];
    let scanned = 0;
    let scanLimitReached = false;
    while (out.length < limit) {
      if (scanned >= this.limits.buildsScanned) {
        scanLimitReached = (await this.records.idsNewestFirst(scanned, 1)).length > 0;
        break;
      }
      const ids = await this.records.idsNewestFirst(scanned, Math.min(500, this.limits.buildsScanned - scanned));
      if (ids.length === 0) break;
      scanned += ids.length;
      for (const [i, hash] of (await this.records.hashes(ids)).entries()) {
        if (Object.keys(hash).length === 0) continue;
        const b = toBuildSummary({ buildId: ids[i], ...hash });
        if (filter.status && b.status !== filter.status) continue;
        if (filter.tenant && b.tenant !== filter.tenant) continue;
        if (filter.platform && !b.platforms.includes(filter.platform)) continue;
        out.push(b);
        if (out.length >= limit) break;
      }
    }
    return { builds: await this.withTimings(out), scanLimitReached };
  }

  async getSummary(buildId: string): Promise<BuildSummary | null> {
    const h = await this.records.hash(buildId);
    return Object.keys(h).length > 0 ? (await this.withTimings([toBuildSummary({ buildId, ...h })]))[0] : null;
  }

  /** Queue and run time of each build from the scheduler's stage events (one pipelined read). */
  private async withTimings(builds: BuildSummary[], now = Date.now()): Promise<BuildSummary[]> {
    const events = await this.stageEvents(builds.map((b) => b.buildId));
    return builds.map((b) => {
      const list = events.get(b.buildId);
      return list ? { ...b, ...buildTimes(b.createdMs, stageSpans(list), b.finishedMs ?? now) } : b;
    });
  }

  /**
   * The scheduler's events of many builds in one pipelined read (eventsSoFar opens a connection
   * per build: too many for a view polled every few seconds). Entries it cannot parse are skipped.
   */
  private async stageEvents(buildIds: string[]): Promise<Map<string, BuildEvent[]>> {
    const out = new Map<string, BuildEvent[]>();
    if (buildIds.length === 0) return out;
    const pipe = this.redis.pipeline();
    for (const id of buildIds) pipe.xrange(this.scheduler.keys.buildEvents(id), '-', '+');
    for (const [i, [err, entries]] of ((await pipe.exec()) ?? []).entries()) {
      if (err || !Array.isArray(entries)) continue;
      const list: BuildEvent[] = [];
      for (const [id, flat] of entries as Array<[string, string[]]>) {
        try { list.push(parseBuildEvent(buildIds[i], id, flat)); } catch { /* a newer scheduler's event type */ }
      }
      out.set(buildIds[i], list);
    }
    return out;
  }

  /**
   * Per platform and tenant, through the scheduler's queueView: every runnable stage of a
   * running build that is not running (held by its tenant's limit, in a queue no worker serves
   * or whose workers are busy, ...), running stages, the oldest wait, and failed builds and
   * stages of the last hour. Builds are found through the frontend's build records.
   */
  async platformQueues(now = Date.now()): Promise<PlatformTenantRow[]> {
    const { running, finished } = await this.fleetBuilds(now);
    return queueView({ running, finished, workers: await this.registry.list(), tenantLimit: this.tenantLimit, now });
  }

  /**
   * The scheduler's running builds and those that failed in the last hour. Finding them reads
   * every build record of the last day (nothing indexes failures by when they ended), and every
   * queue view, sampler tick and running build's page wants them: one read is shared for
   * `fleetReadMs`, the sampler's interval, which the queue view's figures are sampled at anyway.
   */
  private fleetBuilds(now: number): Promise<FleetBuilds> {
    if (!this.fleet || now - this.fleet.at >= this.fleetReadMs) {
      const builds = this.readFleetBuilds(now);
      this.fleet = { at: now, builds };
      // A failed read is not kept: the next caller reads again.
      builds.catch(() => { if (this.fleet?.builds === builds) this.fleet = undefined; });
    }
    return this.fleet.builds;
  }

  private async readFleetBuilds(now: number): Promise<FleetBuilds> {
    const ids = await this.records.idsSince(now - 24 * 3_600_000);
    const hashes = await this.records.hashes(ids);
    const running: QueueViewInput['running'] = [];
    const finished: BuildState[] = [];
    for (const [i, h] of hashes.entries()) {
      const unfinished = isUnfinished(h.status);
      const recentFailure = h.status === 'failed' && Number(h.finishedMs ?? 0) >= now - 3_600_000;
      if (!unfinished && !recentFailure) continue;
      const state = await this.scheduler.getBuild(ids[i]);
      if (!state) continue;
      if (state.status === 'running') running.push({ state, events: [] });
      else if (state.status === 'failed') finished.push(state);
    }
    const events = await this.stageEvents(running.map((b) => b.state.buildId));
    for (const b of running) b.events = events.get(b.state.buildId) ?? [];
    return { running, finished };
  }

  /** What holds each waiting stage of a running build, weighed against its tenant's other builds. */
  private async holds(state: BuildState, events: BuildEvent[], workers: WorkerStatus[], now = Date.now()): Promise<Map<string, StageView['waiting']>> {
    const out = new Map<string, StageView['waiting']>();
    if (state.status !== 'running') return out;
    // The tenant's other builds from the shared read; this one as just read (also when it has no record).
    const running = (await this.fleetBuilds(now)).running.filter((b) => b.state.tenant === state.tenant && b.state.buildId !== state.buildId);
    running.push({ state, events });
    for (const w of waitingStages({ running, workers, tenantLimit: this.tenantLimit, now })) {
      if (w.buildId === state.buildId) out.set(`${w.platform}\n${w.stageId}`, { reason: w.reason, why: w.why, sinceMs: w.sinceMs });
    }
    return out;
  }

  private async stageViewsOf(state: BuildState, events: BuildEvent[], vertices: VertexFold): Promise<BuildDetail['platforms']> {
    const workers = await this.registry.list();
    return stageViews(state, events, vertices, { plans: await this.stagePlans(state), workers, holds: await this.holds(state, events, workers) });
  }

  /** The build page. Its steps come from the build's progress fold, which each call reads on (ProgressFolds). */
  async getBuild(buildId: string): Promise<BuildDetail | null> {
    const [summary, state] = await Promise.all([this.getSummary(buildId), this.scheduler.getBuild(buildId)]);
    if (!summary && !state) return null;
    const [events, progress] = await Promise.all([state ? this.scheduler.eventsSoFar(buildId) : Promise.resolve([]), this.progress.read(buildId)]);
    const warnings = state ? [] : ['the scheduler has no record of this build (expired or never planned); only the build record is shown'];
    if (!progress.caughtUp) warnings.push(`this build's progress stream is long: its steps are shown as of the first ${progress.entriesRead} entries; each refresh reads on`);
    return {
      summary,
      scheduler: state ? { status: state.status, error: state.error ?? null, createdAt: state.createdAt, finishedAt: state.finishedAt ?? null, priority: state.priority } : null,
      platforms: state ? await this.stageViewsOf(state, events, progress.vertices) : [],
      warnings,
    };
  }

  /**
   * What each stage is in the Dockerfile (name, index, the platform it runs as), read from its
   * payload here on the server: only these three fields are kept, nothing else of the payload
   * reaches a response. Progress events name a stage by its Dockerfile name (or index) and
   * its own platform, which differs from the build's for FROM --platform=$BUILDPLATFORM.
   */
  private async stagePlans(state: BuildState): Promise<Map<string, StagePlanInfo>> {
    const out = new Map<string, StagePlanInfo>();
    if (state.stages.length === 0) return out;
    const pipe = this.redis.pipeline();
    for (const s of state.stages) pipe.hget(this.scheduler.keys.stage(stageRef(state.buildId, s.platform, s.stageId)), 'payload');
    for (const [i, [err, raw]] of ((await pipe.exec()) ?? []).entries()) {
      const s = state.stages[i];
      const stage = err || typeof raw !== 'string' ? undefined : json<{ stage?: { name?: unknown; index?: unknown; platform?: unknown } }>(raw, {}).stage;
      if (!stage || typeof stage.index !== 'number' || typeof stage.platform !== 'string') continue;
      out.set(`${s.platform}\n${s.stageId}`, { ...(typeof stage.name === 'string' ? { name: stage.name } : {}), index: stage.index, platform: stage.platform });
    }
    return out;
  }

  async cancelBuild(buildId: string): Promise<boolean> {
    return this.scheduler.cancelBuild(buildId, 'cancelled from the dashboard');
  }

  async cacheTenants(): Promise<string[]> {
    const keys = await scanKeys(this.redis, this.keys.cache.lruPattern);
    return keys.map((k) => this.keys.cache.tenantOfLru(k)).sort();
  }

  /**
   * Per tenant: how many entries it has, and the sizes, platforms and largest entries of its
   * most recently used ones, at most `limits.cacheEntriesPerTenant` (`examined`): a tenant's
   * cache may hold millions, and RedisCacheIndex offers no totals short of listing them all.
   */
  async cacheView(): Promise<CacheView> {
    const tenants: CacheTenantView[] = [];
    for (const tenant of await this.cacheTenants()) {
      const { entries, records } = await this.recentCacheEntries(tenant, this.limits.cacheEntriesPerTenant);
      const byPlatform: CacheTenantView['byPlatform'] = {};
      let bytes = 0;
      for (const r of records) {
        const size = r.layer?.size ?? 0;
        bytes += size;
        const p = (byPlatform[r.platform || 'any'] ??= { entries: 0, bytes: 0 });
        p.entries += 1;
        p.bytes += size;
      }
      const largest = [...records].sort((a, b) => (b.layer?.size ?? 0) - (a.layer?.size ?? 0)).slice(0, 20).map(entryView);
      tenants.push({ tenant, entries, examined: records.length, bytes, byPlatform, largest });
    }
    return { store: this.blobStore, tenants, hitRatio: await this.hitRatioSeries() };
  }

  /**
   * A tenant's entry count and its `max` most recently used records, read as RedisCacheIndex
   * keeps them (its LRU set and record strings, by contracts' keys) without marking them used.
   */
  private async recentCacheEntries(tenant: string, max: number): Promise<{ entries: number; records: CacheRecord[] }> {
    const lru = this.keys.cache.lru(tenant);
    const [entries, keys] = await Promise.all([this.redis.zcard(lru), this.redis.zrevrange(lru, 0, max - 1)]);
    if (keys.length === 0) return { entries, records: [] };
    const raws = await this.redis.mget(keys.map((k) => this.keys.cache.records(tenant) + k));
    const records = raws.flatMap((raw, i) => (raw === null ? [] : [jsonFromRedis(cacheRecordSchema, raw, `cache record ${keys[i].slice(0, 80)} of tenant ${tenant}`)]));
    return { entries, records };
  }

  /** Cache-hit ratio of finished builds per 5-minute bucket over the last 24 hours. */
  async hitRatioSeries(bucketMs = 5 * 60_000, spanMs = 24 * 3_600_000): Promise<CacheView['hitRatio']> {
    const now = Date.now();
    const ids = await this.records.idsSince(now - spanMs);
    const buckets = new Map<number, { total: number; cached: number; builds: number }>();
    for (let i = 0; i < ids.length; i += 500) {
      for (const hash of await this.records.hashes(ids.slice(i, i + 500))) {
        if (Object.keys(hash).length === 0) continue;
        const { createdMs: created, verticesTotal: total, verticesCached: cached } = toBuildSummary(hash);
        if (!total) continue;
        const t = Math.floor(created / bucketMs) * bucketMs;
        const b = buckets.get(t) ?? { total: 0, cached: 0, builds: 0 };
        b.total += total; b.cached += cached; b.builds += 1;
        buckets.set(t, b);
      }
    }
    return [...buckets.entries()].sort((a, b) => a[0] - b[0]).map(([t, b]) => ({ t, ratio: b.cached / b.total, builds: b.builds }));
  }

  /**
   * Removes a tenant's entries per the policy with the frontend's prune: entries whose layer a
   * running build leases are kept. The dashboard holds no blob store, so the layers no entry
   * references any more are reported and left to the frontend's blob GC.
   */
  async pruneCache(tenant: string, policy: PruneRequest): Promise<PruneResult> {
    const { removed, reclaimedBytes, unreferenced } = await pruneCache({
      index: new RedisCacheIndex(this.redis, tenant, this.keys), leases: new BlobLeases(this.redis, this.keys), policy,
    });
    return { tenant, removed: removed.length, bytes: reclaimedBytes, unreferencedLayers: unreferenced };
  }

  async ping(): Promise<boolean> {
    return (await this.redis.ping()) === 'PONG';
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    await this.scheduler.close();
  }
}

/** Jobs of one finished state that finished at or after `sinceMs`, through BullMQ's API (newest first, bounded). */
async function finishedSince(q: Queue, type: Extract<JobType, 'completed' | 'failed'>, sinceMs: number, max = 1000): Promise<Job[]> {
  const out: Job[] = [];
  for (let start = 0; start < max; start += 100) {
    const page = await q.getJobs([type], start, start + 99, false);
    for (const job of page) {
      if (!job) continue;
      if ((job.finishedOn ?? 0) < sinceMs) return out;
      out.push(job);
    }
    if (page.length < 100) break;
  }
  return out;
}

/** [start, end) of each stage run, from the scheduler's events (end undefined: still running). */
export function stageSpans(events: BuildEvent[]): Array<[number, number | undefined]> {
  const open = new Map<string, number>();
  const spans: Array<[number, number | undefined]> = [];
  for (const ev of events) {
    if (!('stageId' in ev)) continue;
    const stage = `${ev.platform}\n${ev.stageId}`;
    if (ev.type === 'stage-started') open.set(stage, ev.at);
    else if ((ev.type === 'stage-completed' || ev.type === 'stage-failed') && open.has(stage)) {
      spans.push([open.get(stage)!, ev.at]);
      open.delete(stage);
    }
  }
  for (const start of open.values()) spans.push([start, undefined]);
  return spans;
}

/**
 * Run time: how long at least one of its stages ran on a worker (overlaps counted once). Queue
 * time: the rest of the time from submission to its last stage's end (or \`end\` while one
 * runs), i.e. how long it waited for slots between and before its stages.
 */
export function buildTimes(createdMs: number, spans: Array<[number, number | undefined]>, end: number): { queueMs: number | null; runMs: number | null } {
  if (spans.length === 0) return { queueMs: null, runMs: null };
  const closed = spans.map(([a, b]) => [a, b ?? end] as [number, number]).sort((x, y) => x[0] - y[0]);
  let run = 0;
  let reach = -Infinity;
  for (const [a, b] of closed) {
    const from = Math.max(a, reach);
    if (b > from) run += b - from;
    reach = Math.max(reach, b);
  }
  const last = spans.some(([, b]) => b === undefined) ? end : reach;
  return { queueMs: Math.max(0, last - createdMs - run), runMs: run };
}

function entryView(r: CacheRecord): CacheEntryView {
  return {
    key: r.key, description: r.description, platform: r.platform, size: r.layer?.size ?? 0, layerDigest: r.layer?.digest ?? null,
    createdMs: r.createdMs, lastUsedMs: r.lastUsedMs, usageCount: r.usageCount,
  };
}

/**
 * Joins the scheduler's stage states, its events (timings) and the progress stream (vertices:
 * its events, or their fold) with the live workers (where each step really ran).
 */
export function stageViews(state: BuildState, events: BuildEvent[], progress: ProgressEvent[] | VertexFold, more: {
  plans?: Map<string, StagePlanInfo>;
  workers?: WorkerStatus[];
  /** What holds each waiting stage, by `platform\nstageId`. */
  holds?: Map<string, StageView['waiting']>;
} = {}): BuildDetail['platforms'] {
  const { plans = new Map<string, StagePlanInfo>(), workers = [], holds = new Map<string, StageView['waiting']>() } = more;
  const key = (platform: string, stageId: string) => `${platform}\n${stageId}`;
  const times = new Map<string, { queuedAt?: number; startedAt?: number; finishedAt?: number }>();
  for (const ev of events) {
    if (!('stageId' in ev)) continue;
    const t = times.get(key(ev.platform, ev.stageId)) ?? {};
    if (ev.type === 'stage-queued' || ev.type === 'stage-deduped') t.queuedAt ??= ev.at;
    else if (ev.type === 'stage-started') t.startedAt = ev.at;
    else if (ev.type === 'stage-completed' || ev.type === 'stage-failed') t.finishedAt = ev.at;
    times.set(key(ev.platform, ev.stageId), t);
  }
  const nativeOn = new Map(workers.map((w) => [w.id, w.nativePlatforms]));
  const vertices = Array.isArray(progress) ? foldProgress(progress) : progress;
  // Where a step really ran: natively when its worker runs the step's own platform natively
  // (a FROM --platform=$BUILDPLATFORM stage of an arm64 build runs amd64 binaries), whatever
  // queue class placed it; the worker's own word when it is gone. Copies: the fold is kept.
  const placed = (platform: string, stageVertices: Map<string, VertexView> | undefined): VertexView[] => [...(stageVertices?.values() ?? [])].map((v) => {
    const native = v.workerId ? nativeOn.get(v.workerId) : undefined;
    return native ? { ...v, emulated: !native.includes(platform) } : { ...v };
  });
  const byPlatform = new Map<string, StageView[]>();
  for (const s of state.stages) {
    const t = times.get(key(s.platform, s.stageId)) ?? {};
    const plan = plans.get(key(s.platform, s.stageId));
    // Progress names a stage by its Dockerfile name (or index) and the platform it runs as.
    const own = plan ? vertices.get(key(plan.platform, plan.name ?? String(plan.index))) : undefined;
    const vs = own ? placed(plan!.platform, own) : placed(s.platform, vertices.get(key(s.platform, s.stageId)));
    const list = byPlatform.get(s.platform) ?? [];
    list.push({ ...stageView(s, t, vs, plan), waiting: holds.get(key(s.platform, s.stageId)) ?? null });
    byPlatform.set(s.platform, list);
  }
  return [...byPlatform.entries()].map(([platform, stages]) => ({ platform, stages }));
}

function stageView(s: StageState, t: { queuedAt?: number; startedAt?: number; finishedAt?: number }, vertices: VertexView[], plan: StagePlanInfo | undefined): Omit<StageView, 'waiting'> {
  const startedAt = t.startedAt ?? null;
  const finishedAt = t.finishedAt ?? null;
  const ran = vertices.filter((v) => v.emulated !== null);
  const index = plan?.index ?? /#(\d+)$/.exec(s.stageId)?.[1];
  return {
    platform: s.platform,
    stageId: s.stageId,
    name: plan?.name ?? vertices.map((v) => stageNameOf(v.name)).find(Boolean) ?? (index !== undefined ? `stage ${index}` : s.stageId),
    runsAs: plan?.platform ?? s.platform,
    status: s.status,
    dependsOn: s.dependsOn,
    worker: s.worker ?? null,
    emulated: ran.length > 0 ? ran.some((v) => v.emulated) : (s.emulated ?? null),
    queue: s.queue ?? null,
    cached: Boolean(s.dedupedFrom) || (vertices.length > 0 && vertices.every((v) => v.cached)),
    dedupedFrom: s.dedupedFrom ?? null,
    queuedAt: t.queuedAt ?? null,
    startedAt,
    finishedAt,
    durationMs: startedAt !== null && finishedAt !== null ? finishedAt - startedAt : null,
    attempts: s.attempts,
    error: s.error ?? null,
    vertices,
  };
}
