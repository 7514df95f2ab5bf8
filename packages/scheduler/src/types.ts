// Public data shapes of the scheduler. Stage payloads and results are opaque JSON: the graph
// package defines what a stage is, the scheduler only moves it around.

/** A stage for one platform, as the frontend plans it. */
export interface StageSpec {
  id: string;
  /** Ids of stages of the same platform whose results this stage needs. */
  dependsOn: string[];
  /** Tenant-namespaced cache key; identical keys of concurrent builds run once. Empty disables dedupe. */
  cacheKey: string;
  payload: unknown;
  /**
   * The platform the stage executes on, when it is not its group's (a `FROM --platform=$BUILDPLATFORM`
   * stage of an arm64 build runs on linux/amd64). It decides the queue and the live-worker check;
   * the group's platform stays the stage's identity (its ref, events, results). Default: the group's.
   */
  runPlatform?: string;
}

export interface PlatformPlan {
  /** `os/arch[/variant]`, already normalised (e.g. `linux/arm64`). */
  platform: string;
  stages: StageSpec[];
}

export interface BuildRequest {
  buildId: string;
  tenant: string;
  /** Higher runs first; 0..1000. */
  priority: number;
  /** W3C trace context (`traceparent`, `tracestate`) carried into every job. */
  traceContext?: Record<string, string>;
  platforms: PlatformPlan[];
}

export type BuildStatus = 'running' | 'done' | 'failed' | 'cancelled';

export type StageStatus =
  | 'pending' // waiting for its dependencies
  | 'ready' // dependencies done, held back until its tenant has a free slot
  | 'dispatching'
  | 'queued'
  | 'running'
  | 'deduped' // waiting for an identical in-flight stage of another build
  | 'done'
  | 'failed'
  | 'cancelled';

export interface StageState {
  platform: string;
  /** Where the stage executes (its queue's platform); absent or equal to `platform` when it runs there. */
  runPlatform?: string;
  stageId: string;
  status: StageStatus;
  cacheKey: string;
  dependsOn: string[];
  worker?: string;
  emulated?: boolean;
  queue?: string;
  result?: unknown;
  error?: string;
  /** `buildId|platform|stageId` of the stage whose result this one reused. */
  dedupedFrom?: string;
  attempts: number;
}

/** Where a stage runs or ran: absent fields are not known yet (not started). */
export interface StagePlacement {
  worker?: string;
  emulated?: boolean;
}

export interface BuildState {
  buildId: string;
  tenant: string;
  priority: number;
  status: BuildStatus;
  error?: string;
  createdAt: number;
  finishedAt?: number;
  stages: StageState[];
}

interface EventBase {
  /** Redis stream id; pass as `from` to resume. */
  id: string;
  /** Milliseconds since the epoch, from the stream id. */
  at: number;
  buildId: string;
}

interface StageEventBase extends EventBase {
  platform: string;
  stageId: string;
}

export type BuildEvent =
  | (StageEventBase & { type: 'stage-queued'; queue: string })
  | (StageEventBase & { type: 'stage-deduped'; leader: string })
  | (StageEventBase & { type: 'stage-started'; worker: string; emulated: boolean; attempt: number })
  | (StageEventBase & { type: 'stage-completed'; worker: string; emulated: boolean; result: unknown; dedupedFrom?: string })
  | (StageEventBase & { type: 'stage-failed'; error: string; worker?: string; dedupedFrom?: string })
  | (EventBase & { type: 'build-done' })
  | (EventBase & { type: 'build-failed'; error: string })
  | (EventBase & { type: 'build-cancelled'; error: string });

export interface WorkerInfo {
  id: string;
  nativePlatforms: string[];
  emulatedPlatforms: string[];
  capacity: number;
  cacheBytes: number;
  version: string;
}

export interface WorkerStatus extends WorkerInfo {
  running: number;
  draining: boolean;
  registeredAt: number;
  lastHeartbeat: number;
}

/** What a consumer's handler receives for one stage. */
export interface StageJob {
  buildId: string;
  tenant: string;
  platform: string;
  stageId: string;
  cacheKey: string;
  payload: unknown;
  emulated: boolean;
  traceContext: Record<string, string>;
  /** Results of the dependency stages, by stage id. */
  inputs: Record<string, unknown>;
  attempt: number;
}

export type StageHandler = (job: StageJob, signal: AbortSignal) => Promise<unknown>;
