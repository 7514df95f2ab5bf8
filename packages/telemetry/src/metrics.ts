import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** `emulated` is a label value, so it is the string 'true' or 'false'. */
export type EmulationLabel = 'true' | 'false';

export interface BuildyardMetrics {
  registry: Registry;
  /** Stage jobs per queue and state (`waiting`, `active`, ...); set by whoever samples BullMQ. */
  queueDepth: Gauge<'platform' | 'class' | 'state'>;
  /**
   * Runnable stages not running, per platform, tenant and what holds them (`tenant-limit`,
   * `no-worker`, `workers-busy`, `worker-busy`, `queued`, `dispatching`, `dedupe`): unlike
   * queueDepth this counts stages held back before any BullMQ queue. An autoscaler's input.
   */
  stagesWaiting: Gauge<'platform' | 'tenant' | 'reason'>;
  stagesRunning: Gauge<'platform' | 'tenant'>;
  /** How long the longest-waiting runnable stage of a platform has waited (0 when none waits). */
  oldestWait: Gauge<'platform'>;
  /** Time a stage job spent queued before a worker took it. */
  queueWait: Histogram<'platform' | 'emulated'>;
  /** Wall time of one stage on a worker. */
  stageDuration: Histogram<'platform' | 'emulated'>;
  cacheHits: Counter<'platform'>;
  cacheMisses: Counter<'platform'>;
  bytesPushed: Counter;
  bytesPulled: Counter;
  /** Build-context bytes clients uploaded (after incremental sync). */
  bytesUploaded: Counter;
  buildsTotal: Counter<'status'>;
}

// Stages range from a cached no-op to long emulated compiles.
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** Creates the Buildyard metrics on `registry` (a fresh one by default, so tests do not collide). */
export function createMetrics(registry: Registry = new Registry(), opts: { defaultMetrics?: boolean } = {}): BuildyardMetrics {
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry });
  const registers = [registry];
  return {
    registry,
    queueDepth: new Gauge({ name: 'buildyard_queue_depth', help: 'Stage jobs per queue and state', labelNames: ['platform', 'class', 'state'] as const, registers }),
    stagesWaiting: new Gauge({ name: 'buildyard_stages_waiting', help: 'Runnable stages not running, by platform, tenant and what holds them', labelNames: ['platform', 'tenant', 'reason'] as const, registers }),
    stagesRunning: new Gauge({ name: 'buildyard_stages_running', help: 'Stages running on workers, by platform and tenant', labelNames: ['platform', 'tenant'] as const, registers }),
    oldestWait: new Gauge({ name: 'buildyard_stages_oldest_wait_seconds', help: 'Wait of the longest-waiting runnable stage per platform', labelNames: ['platform'] as const, registers }),
    queueWait: new Histogram({ name: 'buildyard_queue_wait_seconds', help: 'Time stage jobs waited in a queue', labelNames: ['platform', 'emulated'] as const, buckets: DURATION_BUCKETS, registers }),
    stageDuration: new Histogram({ name: 'buildyard_stage_duration_seconds', help: 'Duration of stages on workers', labelNames: ['platform', 'emulated'] as const, buckets: DURATION_BUCKETS, registers }),
    cacheHits: new Counter({ name: 'buildyard_cache_hits_total', help: 'Vertices answered from the cache', labelNames: ['platform'] as const, registers }),
    cacheMisses: new Counter({ name: 'buildyard_cache_misses_total', help: 'Vertices that had to run', labelNames: ['platform'] as const, registers }),
    bytesPushed: new Counter({ name: 'buildyard_bytes_pushed_total', help: 'Bytes pushed to registries', registers }),
    bytesPulled: new Counter({ name: 'buildyard_bytes_pulled_total', help: 'Bytes pulled from registries and blob stores', registers }),
    bytesUploaded: new Counter({ name: 'buildyard_context_bytes_uploaded_total', help: 'Build-context bytes uploaded by clients', registers }),
    buildsTotal: new Counter({ name: 'buildyard_builds_total', help: 'Finished builds by status', labelNames: ['status'] as const, registers }),
  };
}

let processMetrics: BuildyardMetrics | undefined;

/** The process-wide metrics (with Node's default metrics), created on first use. */
export function getMetrics(): BuildyardMetrics {
  processMetrics ??= createMetrics(new Registry(), { defaultMetrics: true });
  return processMetrics;
}

/** The process-wide metrics, e.g. `metrics.stageDuration.observe({ platform, emulated: 'false' }, seconds)`. */
export const metrics: BuildyardMetrics = getMetrics();
