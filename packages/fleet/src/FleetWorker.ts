import { join } from 'node:path';
import { STOP_WITHOUT_REDIS_MS, abandonRedis, openRedis, reportOutages, untilRedisGone, type OutageLog, type RedisClient as Redis } from '@buildyard/contracts';
import { SpanStatusCode, context, trace, type Span } from '@opentelemetry/api';
import { metrics, withExtractedContext, type EmulationLabel } from '@buildyard/telemetry';
import { BlobLeases, RedisCacheIndex, TieredBlobStore, holdBlobWrites, openContextStore, openSharedBlobStore, serveWorkerDisk, type WorkerDiskReport, type WorkerDiskRequest } from '@buildyard/cache';
import { manifestIndex, materializeContext, type ContextStore } from '@buildyard/context';
import { BuildRecords, BuildSecrets, DEFAULT_KEYS, SshRelay, fromRedis, stagePayloadSchema, type RedisKeys, type StageResult } from '@buildyard/contracts';
import { detectPlatforms, type EgressLists, type RuncExecutorOptions, type StepLimits } from '@buildyard/executor';
import type { StagePlan } from '@buildyard/graph';
import { FsContentStore, ProvenBlobs, RegistryClient, RegistryNetwork, TenantRegistryNetworks, credentialsFromLogins } from '@buildyard/oci';
import { CountingRegistryClient } from './CountingRegistryClient.js';
import { relayedSshAgents } from './relayedSshAgents.js';
import { WorkerDisk, diskBytes } from './WorkerDisk.js';
import { ProgressWriter, stepVertexDigest, stepVertexRef, type VertexRef } from '@buildyard/progress';
import { StageConsumer, type LostWakeUp, type StageJob } from '@buildyard/scheduler';
import { RegistryImageSource, StageSolver, openExecutionEngine } from '@buildyard/solver';
import { stageInputs } from './stageInputs.js';
import { pruneSnapshots, setXattrs } from '@buildyard/snapshot';

export interface FleetWorkerOptions {
  id: string;
  redisUrl: string;
  /** `redisUrl` is a node of a Redis Cluster (`redis.cluster`). */
  redisCluster?: boolean;
  /** This worker's own state: snapshots, runc bundles, cache mounts, materialized contexts. */
  stateDir: string;
  /** Shared with the frontend and other workers on this machine: context files and layer blobs. */
  sharedDir: string;
  secretsKey: string;
  /** The deployment's Redis keys (`redis.keyPrefix`); the default prefix when absent. */
  keys?: RedisKeys;
  /** Where layer blobs are shared: `<sharedDir>/blobs` (fs) or a registry repository. */
  blobStore?: { type: 'fs' | 'registry'; repository: string };
  capacity: number;
  /** Platforms to offer; empty offers every native and emulated platform found. */
  platforms: string[];
  compression: 'gzip' | 'zstd';
  insecureRegistries: string[];
  /** Registries builds may use although the egress rules refuse their address (registry.trusted);
   *  the insecure ones count too. Any other registry a build names is reached under those rules. */
  trustedRegistries?: string[];
  stepTimeoutMs: number;
  /** Connect and idle timeouts of a build's downloads (ADD <url>; registry pulls use the idle one). */
  fetch?: { connectTimeoutMs: number; idleTimeoutMs: number };
  maxLogBytesPerStep: number;
  heartbeatMs: number;
  heartbeatTtlMs: number;
  version: string;
  /** Local snapshots kept by garbage collection, and how often it runs (while idle). */
  keepStorageBytes: number;
  gcIntervalMs: number;
  /** Lock and stall detection of stage jobs (how soon a dead worker's stage moves elsewhere). */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  onError?(err: Error): void;
  /** Where a Redis outage and its end are logged (once each). */
  outageLog?: OutageLog;
  /** A stage job that waited for the scheduler's safety poll because its wake-up was lost (a bug: say so in the log). */
  onLostWakeUp?(detail: LostWakeUp): void;
  /** The RUN sandbox of this worker: egress policy and DNS (see RuncExecutor). */
  executor?: Omit<RuncExecutorOptions, 'stateDir'>;
  /** A tenant's own egress lists, added to the worker's. */
  tenantEgress?(tenant: string): EgressLists | undefined;
  /** A tenant's own RUN limits, replacing the worker's per limit. */
  tenantLimits?(tenant: string): StepLimits | undefined;
}

const tracer = trace.getTracer('buildyard-worker');
/** A backstop: the frontend releases a build's leases when it ends. */
const BUILD_LEASE_MS = 24 * 3600 * 1000;
/** Fetched context copies younger than this survive GC: a stage may be about to read them. */
const CONTEXT_COPY_MIN_AGE_MS = 10 * 60_000;

/**
 * A worker of the fleet: takes stage jobs for its platforms from the scheduler's queues and
 * runs them with the solver, sharing layers through the shared blob store and the cache index.
 */
export class FleetWorker {
  private redis!: Redis;
  private consumer?: StageConsumer;
  private engine!: Awaited<ReturnType<typeof openExecutionEngine>>;
  /** Blobs of the shared store each tenant's registries have served it (see ProvenBlobs). */
  private readonly provenBlobs = new ProvenBlobs();
  /** The registries a tenant's stages name (base images, `COPY --from=<image>`) are reached under
   *  the egress rules its ADD <url> downloads obey, unless the operator trusts them. */
  private readonly registryNetworks = new TenantRegistryNetworks((tenant) => new RegistryNetwork(
    this.engine.executor.egressRules.forTenant(this.opts.tenantEgress?.(tenant)).refuse,
    [...this.opts.insecureRegistries, ...(this.opts.trustedRegistries ?? [])],
  ));
  private contexts!: ContextStore;
  private blobs!: FsContentStore;
  private secrets!: BuildSecrets;
  private sshRelay!: SshRelay;
  private disk!: WorkerDisk;
  private diskService?: { close(): void };
  /** Resolved when the last running stage ends (a prune waits for this to touch snapshots). */
  private idleWaiters: Array<() => void> = [];
  private running = 0;
  private gcTimer?: NodeJS.Timeout;
  /** Set while GC runs; stages wait for it so it never removes a snapshot they are about to use. */
  private gcDone?: Promise<void>;
  readonly platforms: { native: string[]; emulated: string[] };
  private readonly keys: RedisKeys;

  constructor(private readonly opts: FleetWorkerOptions) {
    this.keys = opts.keys ?? DEFAULT_KEYS;
    const found = detectPlatforms();
    const wanted = (p: string) => opts.platforms.length === 0 || opts.platforms.includes(p);
    this.platforms = { native: found.native.filter(wanted), emulated: found.emulated.filter(wanted) };
    const missing = opts.platforms.filter((p) => !found.native.includes(p) && !found.emulated.includes(p));
    if (missing.length > 0) throw new Error(`this machine cannot run ${missing.join(', ')}: it runs ${[...found.native, ...found.emulated].join(', ')} (emulation needs qemu binfmt handlers: infra/dev/setup.sh)`);
  }

  async start(): Promise<void> {
    this.redis = openRedis({ url: this.opts.redisUrl, cluster: this.opts.redisCluster }, { maxRetriesPerRequest: null });
    if (this.opts.outageLog) reportOutages(this.redis, this.opts.outageLog);
    this.engine = await openExecutionEngine(this.opts.stateDir, this.opts.executor);
    this.blobs = openSharedBlobStore({
      type: this.opts.blobStore?.type ?? 'fs', repository: this.opts.blobStore?.repository, sharedDir: join(this.opts.sharedDir, 'blobs'),
      localDir: join(this.opts.stateDir, 'blobs'), clientOptions: { insecureHosts: this.opts.insecureRegistries, dockerConfig: false },
    });
    await this.blobs.init();
    // Uploads a killed worker left half-written; committed blobs are never partial.
    await this.blobs.cleanupIngest(60 * 60 * 1000);
    // Shared by the machine's processes with an fs blob store; else this worker's copies of what
    // it fetched through the registry blob store.
    this.contexts = openContextStore({ root: join(this.opts.sharedDir, 'contexts'), blobs: this.blobs, redis: this.redis, keyPrefix: this.keys.prefix });
    this.secrets = new BuildSecrets(this.redis, this.opts.secretsKey, this.keys);
    this.sshRelay = new SshRelay(this.redis, this.opts.secretsKey, this.keys);
    const records = new BuildRecords(this.redis, this.keys);
    const tiered = this.blobs as TieredBlobStore;
    this.disk = new WorkerDisk({
      stateDir: this.opts.stateDir,
      // openContextStore keeps this worker's own copies there when the blob store is remote.
      contextCopies: this.blobs instanceof TieredBlobStore ? { dir: join(this.opts.sharedDir, 'contexts', 'content'), minAgeMs: CONTEXT_COPY_MIN_AGE_MS } : undefined,
      // Local copies of layers exist only in front of a registry blob store, which keeps them.
      layerCopies: this.blobs instanceof TieredBlobStore ? { list: () => tiered.local.list(), evict: (digest) => tiered.evictLocal(digest) } : undefined,
      contextPaths: async (id) => manifestIndex(await this.contexts.manifest(id)).byPath,
      buildRunning: async (buildId) => ['queued', 'running'].includes((await records.get(buildId))?.status ?? ''),
    });
    // `du` and `prune` of the frontend reach this worker's snapshots and contexts.
    this.diskService = await serveWorkerDisk(this.redis, this.keys.prefix, (request) => this.answerDisk(request), this.opts.onError);
    this.consumer = new StageConsumer({
      redis: { url: this.opts.redisUrl, cluster: this.opts.redisCluster },
      prefix: this.keys.scheduler.prefix,
      worker: { id: this.opts.id, nativePlatforms: this.platforms.native, emulatedPlatforms: this.platforms.emulated, capacity: this.opts.capacity, version: this.opts.version },
      handler: (job, signal) => withExtractedContext(job.traceContext, () => tracer.startActiveSpan('stage', {
        attributes: { 'buildyard.build_id': job.buildId, 'buildyard.stage': job.stageId, 'buildyard.platform': job.platform, 'buildyard.worker': this.opts.id, 'buildyard.emulated': job.emulated },
      }, async (span) => {
        try {
          // Its blobs are leased under the build until the frontend ends the build, or dropped when
          // the stage ends if the build already has (blobWrites.ts).
          return await holdBlobWrites({ redis: this.redis, keys: this.keys, holder: job.buildId, stage: true }, () => this.runStage(job, signal));
        } catch (err) {
          span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
          throw err;
        } finally {
          span.end();
        }
      })),
      heartbeatMs: this.opts.heartbeatMs,
      heartbeatTtlMs: this.opts.heartbeatTtlMs,
      lockDurationMs: this.opts.lockDurationMs,
      stalledIntervalMs: this.opts.stalledIntervalMs,
      onError: this.opts.onError,
      onLostWakeUp: this.opts.onLostWakeUp,
    });
    await this.consumer.start();
    this.gcTimer = setInterval(() => void this.collectGarbage().catch((err: Error) => this.opts.onError?.(err)), this.opts.gcIntervalMs);
    this.gcTimer.unref();
  }

  /**
   * Removes contexts no running build uses (but the newest tree of each lineage); when the
   * worker holds more than `keepBytes` (keepStorageBytes unless a prune asks for less), kept
   * context trees go first, oldest first; then context copies, snapshots and local layer
   * copies are trimmed so that everything fits. Those three are skipped while a stage runs,
   * as it may be about to use them. With `tenant` (that tenant's prune) only what is its own
   * counts and goes: its step snapshots (and what is built on them) and its cache mounts, down
   * to `keepBytes`; contexts, copies and shared snapshots serve every tenant and stay.
   */
  async collectGarbage(keepBytes = this.opts.keepStorageBytes, tenant?: string): Promise<number> {
    const everyone = tenant === undefined;
    let reclaimed = everyone ? (await this.disk.removeFinishedContexts()).bytes : 0;
    // No running stage reads a kept tree (a materialisation starting from one holds it).
    if (everyone) reclaimed += (await this.disk.trimKeptContexts(async () => {
      const others = await Promise.all([join(this.opts.stateDir, 'snapshots'), join(this.opts.stateDir, 'blobs'), ...(this.blobs instanceof TieredBlobStore ? [join(this.opts.sharedDir, 'contexts', 'content')] : [])].map((d) => diskBytes(d)));
      return Math.max(0, keepBytes - others.reduce((a, b) => a + b, 0));
    })).bytes;
    // One snapshot GC at a time (timer and prune requests): between the wait and setting
    // gcDone nothing awaits, so a stage cannot slip in unseen either.
    while (this.gcDone) await this.gcDone;
    if (this.running > 0) return reclaimed;
    let pruned = 0;
    this.gcDone = (async () => {
      const untouched = { freedBytes: 0, keptBytes: 0 };
      const contexts = everyone ? await this.disk.contextsBytes() : 0;
      // With a registry blob store, this worker's copies of fetched context files: a cache too.
      const copies = everyone ? await this.contexts.trimLocalCopies(Math.max(0, keepBytes - contexts), CONTEXT_COPY_MIN_AGE_MS) : untouched;
      const snapshots = await pruneSnapshots(this.engine.snapshotter, Math.max(0, keepBytes - contexts - copies.keptBytes), { tenant });
      // Layers are fetched again from the registry blob store when a stage needs them.
      const layers = everyone ? await this.disk.trimLayerCopies(Math.max(0, keepBytes - contexts - copies.keptBytes - snapshots.totalBytes)) : untouched;
      // RUN cache mounts get what is left: no other copy of them exists, so they go last.
      const mounts = await this.disk.trimCacheMounts(Math.max(0, keepBytes - contexts - copies.keptBytes - snapshots.totalBytes - layers.keptBytes), { tenant });
      pruned = copies.freedBytes + snapshots.reclaimedBytes + layers.freedBytes + mounts.freedBytes;
    })()
      .catch((err: Error) => this.opts.onError?.(err))
      .finally(() => { this.gcDone = undefined; });
    await this.gcDone;
    return reclaimed + pruned;
  }

  /**
   * The frontend's `du` / `prune`: a prune waits (a while) for running stages to end. A
   * tenant's prune (`request.tenant`) reaches only that tenant's own (see collectGarbage).
   */
  private async answerDisk(request: WorkerDiskRequest): Promise<WorkerDiskReport> {
    let reclaimedBytes = 0;
    let note: string | undefined;
    if (request.op === 'prune') {
      if (!(await this.whenIdle(20_000))) note = `worker ${this.opts.id} stayed busy: ${request.tenant === undefined ? 'its snapshots are pruned by its next GC' : 'prune again once it is idle'}`;
      reclaimedBytes = await this.collectGarbage(request.keepBytes ?? this.opts.keepStorageBytes, request.tenant);
    } else {
      reclaimedBytes = (await this.disk.removeFinishedContexts()).bytes;
    }
    return { workerId: this.opts.id, parts: await this.disk.measure(this.running === 0), reclaimedBytes, ...(note ? { note } : {}) };
  }

  private whenIdle(timeoutMs: number): Promise<boolean> {
    if (this.running === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const timer = setTimeout(() => { this.idleWaiters = this.idleWaiters.filter((w) => w !== done); resolve(false); }, timeoutMs);
      const done = () => { clearTimeout(timer); resolve(true); };
      this.idleWaiters.push(done);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.gcTimer);
    this.diskService?.close();
    const consumer = this.consumer;
    if (consumer) {
      // Finishing the running stages, handing back jobs and deregistering all go through Redis:
      // while it does not answer, the worker stops without them (their stages run again elsewhere
      // once Redis is back, as after a crash). Every Redis call fails at once after the abandon.
      const closed = consumer.close();
      await untilRedisGone(this.redis, closed, STOP_WITHOUT_REDIS_MS).catch(async (err: Error) => {
        const running = consumer.runningCount;
        this.opts.onError?.(new Error(`stopping without Redis, which has not answered for ${STOP_WITHOUT_REDIS_MS / 1000} s: ${running} running stage${running === 1 ? '' : 's'} stopped and not handed back (another worker runs ${running === 1 ? 'it' : 'them'} once Redis is back)`));
        consumer.abandon(err);
        abandonRedis(this.redis, err);
        await closed.catch(() => undefined);
      });
    }
    // Networks of the last steps are torn down after their runs return: none is left behind.
    await this.engine?.executor.settled();
    this.redis?.disconnect();
  }

  private async runStage(job: StageJob, signal: AbortSignal): Promise<StageResult> {
    this.running++;
    try {
      await this.gcDone;
      return await this.solveStage(job, signal);
    } finally {
      this.running--;
      if (this.running === 0) for (const wake of this.idleWaiters.splice(0)) wake();
      // Contexts of builds that ended meanwhile go now rather than at the next GC tick.
      void this.disk.removeFinishedContexts().catch((err: Error) => this.opts.onError?.(err));
    }
  }

  private async solveStage(job: StageJob, signal: AbortSignal): Promise<StageResult> {
    const payload = fromRedis(stagePayloadSchema, job.payload, `the payload of stage ${job.stageId} (${job.platform}) of build ${job.buildId}`);
    const { stage } = payload;
    const inputs = stageInputs(job, stage);
    const sealed = await this.secrets.get(job.buildId);
    const registry = new CountingRegistryClient((bytes) => metrics.bytesPulled.inc(bytes), {
      store: this.blobs, insecureHosts: this.opts.insecureRegistries, dockerConfig: false, timeoutMs: this.opts.fetch?.idleTimeoutMs,
      credentials: credentialsFromLogins(sealed.registryAuth),
      network: this.registryNetworks.get(job.tenant), proofs: this.provenBlobs.forTenant(job.tenant),
    });
    const solver = new StageSolver({
      stateDir: this.opts.stateDir, snapshotter: this.engine.snapshotter, executor: this.engine.executor, blobs: this.blobs,
      cache: new RedisCacheIndex(this.redis, job.tenant, this.keys), images: new RegistryImageSource(registry, this.blobs),
      compression: this.opts.compression, stepTimeoutMs: this.opts.stepTimeoutMs, download: this.opts.fetch,
    });
    const progress = new ProgressWriter(this.redis, job.buildId, { maxLogBytesPerVertex: this.opts.maxLogBytesPerStep, keys: this.keys });
    const byDigest = new Map(stage.vertices.map((v) => [v.digest, v]));
    const refOf = (digest: string): VertexRef => stepVertexRef(stage, byDigest.get(digest)!, { workerId: this.opts.id, emulated: job.emulated });
    const startedAt = new Map<string, number>();
    const labels = { platform: stage.platform, emulated: String(job.emulated) as EmulationLabel };
    const stageStarted = performance.now();
    // Progress writes must not fail the stage (or, unobserved, kill the worker): a lost event is reported.
    const reportFailure = (write: Promise<unknown>) => { write.catch((err: Error) => this.opts.onError?.(new Error(`progress of build ${job.buildId}: ${err.message}`))); };
    const vertexSpans = new Map<string, Span>();
    const stageContext = context.active();
    let materialized: { dir: string; release(): void } | undefined;
    const named: { dir: string; release(): void }[] = [];
    // Least recently used layer copies are evicted first by the GC.
    this.disk.usedLayers(Object.values(inputs).flatMap((r) => r.layers.map((l) => l.digest)));
    try {
      if (payload.contextId) materialized = await this.contextDir(payload.contextId, job);
      const namedContexts: Record<string, string> = {};
      for (const id of namedContextIds(stage)) {
        const got = await this.contextDir(id, job);
        named.push(got);
        namedContexts[id] = got.dir;
      }
      const result = await solver.solve({
        stage, inputs, tenant: job.tenant, signal,
        contextDir: materialized?.dir,
        namedContexts,
        secrets: new Map(Object.entries(sealed.secrets).map(([id, v]) => [id, Buffer.from(v, 'base64')])),
        ssh: relayedSshAgents(this.sshRelay, job.buildId, this.opts.onError),
        noCache: payload.noCache, network: payload.network === 'host' || payload.network === 'none' ? payload.network : 'default', egress: this.opts.tenantEgress?.(job.tenant), limits: this.opts.tenantLimits?.(job.tenant),
        events: {
          vertex: (v) => {
            const ref = refOf(v.digest);
            if (v.state === 'cached') {
              metrics.cacheHits.inc({ platform: stage.platform });
              reportFailure(progress.cached(ref));
            } else if (v.state === 'started') {
              metrics.cacheMisses.inc({ platform: stage.platform }); // executed, not answered from the cache
              startedAt.set(v.digest, Date.now());
              vertexSpans.set(v.digest, tracer.startSpan('vertex', { attributes: { 'buildyard.vertex': v.name } }, stageContext));
              reportFailure(progress.started(ref));
            } else {
              const span = vertexSpans.get(v.digest);
              if (v.state === 'error') span?.setStatus({ code: SpanStatusCode.ERROR, message: v.error });
              span?.end();
              if (v.state === 'completed') reportFailure(progress.finished(ref, startedAt.get(v.digest) ?? Date.now()));
              else reportFailure(progress.failed(ref, startedAt.get(v.digest) ?? Date.now(), v.error ?? 'failed'));
            }
          },
          log: (digest, stream, data) => { progress.log(stepVertexDigest(stage.platform, byDigest.get(digest)!.cacheKey), data, stream); },
        },
      });
      // Until the build ends (the frontend releases its leases), prune never removes these layers.
      await new BlobLeases(this.redis, this.keys).lease(job.buildId, result.layers.map((l) => l.digest), BUILD_LEASE_MS);
      this.disk.usedLayers(result.layers.map((l) => l.digest));
      return { ...result, workerId: this.opts.id, emulated: job.emulated };
    } finally {
      materialized?.release();
      for (const n of named) n.release();
      metrics.stageDuration.observe(labels, (performance.now() - stageStarted) / 1000);
      await progress.flush();
    }
  }

  /**
   * Materializes a context once per worker; concurrent stages of one build share it. Only a
   * context the build's tenant synced: its id in a stage is never enough (another tenant's
   * materialised tree may already be on this disk).
   */
  private async contextDir(contextId: string, job: StageJob): Promise<{ dir: string; release(): void }> {
    if (!(await this.contexts.tenantHas(job.tenant, contextId))) {
      throw new Error(`context ${contextId.slice(0, 80)} of build ${job.buildId} is not one tenant ${job.tenant.slice(0, 60)} synced: sync the context again and rebuild`);
    }
    // Stages only read it (rw binds copy), so a new context may start from the tree of this
    // tenant's last build of the same directory (WorkerDisk keeps it per tenant and lineage).
    return this.disk.acquireContext(job.tenant, contextId, job.buildId, (dir, updateFrom) => materializeContext(this.contexts, contextId, dir, { ...(updateFrom ? { updateFrom } : { reuseSiblings: true }), setXattrs }));
  }
}

/** The named contexts (SourceRef.contextId) a stage's copies and mounts read. */
function namedContextIds(stage: StagePlan): string[] {
  const ids = new Set<string>();
  for (const v of stage.vertices) {
    for (const i of v.inputs) if (i.kind === 'context' && i.contextId) ids.add(i.contextId);
    if (v.kind === 'file') for (const a of v.actions) if (a.op === 'copy' && a.from.kind === 'context' && a.from.contextId) ids.add(a.from.contextId);
    if (v.kind === 'exec') for (const m of v.mounts) if ((m.type === 'bind' || m.type === 'cache') && m.from?.kind === 'context' && m.from.contextId) ids.add(m.from.contextId);
  }
  return [...ids];
}
