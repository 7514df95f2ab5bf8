// JSON shapes of the dashboard API, shared by the server and the UI (ui/ imports this file).

export type BuildListStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/** One build from the frontend's `<prefix>:build:<id>` hash (contracts' BuildRecord). */
export interface BuildSummary {
  buildId: string;
  tenant: string;
  status: BuildListStatus;
  platforms: string[];
  createdMs: number;
  finishedMs: number | null;
  durationMs: number | null;
  digest: string;
  error: string;
  verticesTotal: number;
  verticesCached: number;
  /** verticesCached / verticesTotal, null before any vertex is known. */
  cacheHitRatio: number | null;
  pushed: string[];
  /** Image names its outputs name (from the start), else those it pushed without their digest. */
  images: string[];
  /** The first line of `error`, for the list. */
  errorLine: string;
  /** From submission until its first stage started on a worker (null: none started yet). */
  queueMs: number | null;
  /** From its first stage's start until it ended (or now, while it runs). */
  runMs: number | null;
}

/** `GET /api/builds`. */
export interface BuildList {
  builds: BuildSummary[];
  /** The filter examined as many records as one request may (DashboardLimits.buildsScanned) and older builds were left unread. */
  scanLimitReached: boolean;
}

/** Per platform and tenant: what waits (and what holds it), runs and failed (the scheduler's queueView). */
export interface PlatformTenantRow {
  platform: string;
  tenant: string;
  waiting: number;
  held: Record<string, number>;
  why: string[];
  running: number;
  oldestWaitMs: number | null;
  /** In the last hour. */
  failedBuilds: number;
  failedStages: number;
}

export interface QueueSample {
  t: number;
  waiting: number;
  active: number;
  /** Jobs finished (completed or failed) in the minute before `t`. */
  throughputPerMin: number;
}

export interface QueueView {
  name: string;
  /** `linux/arm64`, or '' for a worker's own queue. */
  platform: string;
  kind: 'native' | 'emulated' | 'worker';
  workerId?: string;
  waiting: number;
  active: number;
  delayed: number;
  /** Age of the oldest waiting job, null when none waits. */
  oldestWaitMs: number | null;
  throughputPerMin: number;
  failedLastHour: number;
  /** The last hour, sampled in memory by this dashboard process every few seconds. */
  history: QueueSample[];
}

export interface RunningStage {
  buildId: string;
  platform: string;
  stageId: string;
  queue: string;
}

/** A worker's state dir as it measured it (`du -s -B1` of each part). */
export interface WorkerDiskView {
  parts: Record<string, number>;
  totalBytes: number;
  measuredMs: number;
}

export interface WorkerView {
  id: string;
  nativePlatforms: string[];
  emulatedPlatforms: string[];
  capacity: number;
  running: number;
  /** running / capacity. */
  load: number;
  cacheBytes: number;
  version: string;
  registeredAt: number;
  lastHeartbeat: number;
  draining: boolean;
  runningStages: RunningStage[];
  /** Its last answer to the dashboard's `du`; null until one arrived. */
  disk: WorkerDiskView | null;
}

export interface VertexView {
  digest: string;
  name: string;
  cached: boolean;
  status: 'running' | 'done' | 'cached' | 'error';
  startedMs: number | null;
  durationMs: number | null;
  error?: string;
  /** Where the step really ran (from its progress events); null for a cache hit or before it started. */
  workerId: string | null;
  emulated: boolean | null;
}

export interface StageView {
  platform: string;
  stageId: string;
  /** The Dockerfile stage's name (`build` of `[build 2/4] RUN ...`), else `stage N`. */
  name: string;
  /** The platform its steps run as: the build's, or the one of FROM --platform (e.g. $BUILDPLATFORM). */
  runsAs: string;
  /** While it could run and does not: what holds it (tenant limit, busy workers, ...), since when. */
  waiting: { reason: string; why: string; sinceMs: number } | null;
  status: string;
  dependsOn: string[];
  worker: string | null;
  /** How its steps really ran (any step emulated); the queue class until a step ran. */
  emulated: boolean | null;
  queue: string | null;
  /** Every vertex of the stage was a cache hit, or the stage reused an identical in-flight one. */
  cached: boolean;
  dedupedFrom: string | null;
  queuedAt: number | null;
  startedAt: number | null;
  finishedAt: number | null;
  durationMs: number | null;
  attempts: number;
  error: string | null;
  vertices: VertexView[];
}

export interface BuildDetail {
  summary: BuildSummary | null;
  /** Scheduler's state: status running|done|failed|cancelled; null if the scheduler does not know it. */
  scheduler: { status: string; error: string | null; createdAt: number; finishedAt: number | null; priority: number } | null;
  /** Stages grouped by platform, in plan order. */
  platforms: Array<{ platform: string; stages: StageView[] }>;
  warnings: string[];
}

export interface CacheEntryView {
  key: string;
  description: string;
  platform: string;
  size: number;
  layerDigest: string | null;
  createdMs: number;
  lastUsedMs: number;
  usageCount: number;
}

export interface CacheTenantView {
  tenant: string;
  entries: number;
  /** Entries `bytes`, `byPlatform` and `largest` are of: the most recently used, at most DashboardLimits.cacheEntriesPerTenant. */
  examined: number;
  bytes: number;
  byPlatform: Record<string, { entries: number; bytes: number }>;
  largest: CacheEntryView[];
}

export interface CacheView {
  /** Where layer blobs live (config blobStore.type), for the "store" column. */
  store: string;
  tenants: CacheTenantView[];
  /** Cache-hit ratio of finished builds over time (from build records), oldest first. */
  hitRatio: Array<{ t: number; ratio: number; builds: number }>;
}

export interface PruneRequest {
  all?: boolean;
  keepBytes?: number;
  keepDurationMs?: number;
}

/** An operator's prune of every worker's disk (POST /api/workers/prune). */
export interface WorkerPruneResult {
  /** Per worker that answered: what it reclaimed, and why it could not do all (it stayed busy). */
  workers: Array<{ id: string; reclaimedBytes: number; note?: string }>;
  reclaimedBytes: number;
}

export interface PruneResult {
  tenant: string;
  removed: number;
  bytes: number;
  /** Layer digests no entry references any more; the blob store's GC deletes them. */
  unreferencedLayers: string[];
}

/** A progress event as the UI receives it over SSE (logs as text). */
export interface ProgressView {
  id: string;
  type: string;
  timestampMs: number;
  digest?: string;
  name?: string;
  platform?: string;
  stage?: string;
  text?: string;
  stream?: number;
  error?: string;
}
