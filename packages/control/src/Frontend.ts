import { randomUUID } from 'node:crypto';
import { Server, ServerCredentials, status, type Metadata, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '@buildyard/contracts';
import { BlobLeases, ContextBlobGuard, ContextWrites, RedisCacheIndex, collectBlobGarbage, collectContextGarbage, openContextStore, openSharedBlobStore, pruneCache } from '@buildyard/cache';
import { SESSION_IDLE_TIMEOUT_MS, handleSync, type ContextStore } from '@buildyard/context';
import { RemoteContexts } from './remoteContexts.js';
import { normalizePlatform } from '@buildyard/graph';
import { FsContentStore, RegistryNetwork, RepositoryPolicy, TenantRegistryNetworks } from '@buildyard/oci';
import { ProgressWriter, readProgress, toSolveEvent } from '@buildyard/progress';
import {
  AttachRequest, CancelResponse, ControlService, DeleteHistoryResponse, ListHistoryResponse, type DeleteHistoryRequest, type ListHistoryRequest, ContextSyncService, DiskUsageResponse, InfoResponse, ListWorkersResponse,
  PruneResponse, SolveEvent, StatusResponse, type ContextSyncServer, type ControlServer,
  type CancelRequest, type DiskUsageRequest, type InfoRequest, type ListWorkersRequest, type PruneRequest, type SolveRequest,
  type StatusRequest, type SyncRequest, type SyncResponse, type ExportedFile,
} from '@buildyard/proto';
import { Readable } from 'node:stream';
import type { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { createLogger, metrics, type Logger } from '@buildyard/telemetry'; // metrics
import { authenticate, serviceError } from './authenticate.js';
import { boundedShutdown, stopAccepting, stoppingError } from './serverShutdown.js';
import { BuildRecords, BuildSecrets, DEFAULT_KEYS, SshRelay, isUnfinished, keepSubscribed, replyWithin, untilRedisGone, STOP_WITHOUT_REDIS_MS, type BuildRecord, type RedisKeys } from '@buildyard/contracts';
import { SshForwardService, type SshForwardServer } from '@buildyard/proto';
import { SshSessions, startSshForwarding, type SshAgentSource } from './sshForwarding.js';
import { BuildRunner, clientExportSource, type FinishedImages } from './BuildRunner.js';
import { parseEntitlements } from './entitlements.js';
import { exportLedger, exporterFor, parseOutputs, reclaimExportDirs, runExport, type ExportStep, type ParsedOutput } from './exporters/index.js';
import { outputAnnotations } from './outputAnnotations.js';
import { pruneWorkerDisks, workerDiskUsage } from './workerDiskRecords.js';
import { parseCacheOptions } from './cacheTransfer.js';
import { claimBuildId, internalBuildId, shownBuildId, shownIds } from './buildIds.js';
import { BuildHistory } from './history.js';
import { BuildRequests } from './buildTakeover.js';

export interface FrontendOptions {
  redis: Redis;
  /** The deployment's Redis keys (`redis.keyPrefix`); the default prefix when absent. */
  keys?: RedisKeys;
  /** Where the frontend reports what it cannot tell a client (default: a pino logger at BUILDYARD_LOG_LEVEL). */
  log?: Logger;
  scheduler: Scheduler;
  workers: WorkerRegistry;
  tokens: ReadonlyMap<string, string>;
  sharedDir: string;
  /** This frontend's own state: the local tier of a registry blob store. */
  stateDir?: string;
  /** Where layer blobs are shared: `<sharedDir>/blobs` (fs) or a registry repository. */
  blobStore?: { type: 'fs' | 'registry'; repository: string };
  secretsKey: string;
  insecureRegistries: string[];
  /** Registries builds may use although sourcePolicy refuses their address (registry.trusted). */
  trustedRegistries?: string[];
  /** Registries where a tenant's builds may only use `<tenant>/…` (registry.tenantScoped), and
   *  prefixes there every tenant may pull from (registry.sharedReadOnly): see RepositoryPolicy. */
  tenantScopedRegistries?: string[];
  sharedReadOnlyRepositories?: string[];
  buildPlatform: string;
  version: string;
  maxContextBytes: number;
  maxContextFiles: number;
  maxLogBytesPerStep: number;
  /** `tenant:entitlement` grants (auth.entitlements): network.host, security.insecure. */
  entitlements?: string[];
  /** The network policy of what the frontend fetches for a tenant's build (git contexts, and the
   *  registries it names but trustedRegistries): the workers' egress rules (buildyardd gives
   *  them); absent, nothing is refused. */
  sourcePolicy?: (tenant: string) => ((address: string) => string | undefined) | undefined;
  /** Connect and idle limits of those fetches (limits.fetchConnectTimeoutMs, fetchIdleTimeoutMs). */
  fetchLimits?: { connectTimeoutMs: number; idleTimeoutMs: number };
  /**
   * Longest silence from a client while the frontend reads what it sends for a build
   * (limits.sessionIdleTimeoutMs; 60 s): a context upload, and on the BuildKit endpoint its
   * session's DiffCopy and content store transfers.
   */
  sessionIdleTimeoutMs?: number;
  /** How long build records and their event streams (logs) are kept (history.retentionMs). */
  historyRetentionMs?: number;
  /** Contexts no tenant synced for this long are deleted by collectGarbage and prune (gc.contextMaxAgeMs). */
  contextMaxAgeMs?: number;
  /** limits.maxExportBytes: the most one type=local/tar export may unpack here (0 or absent: only the free-space budget). */
  maxExportBytes?: number;
}

/** A build startBuild accepted: abort it to cancel; `finished` settles when its runner ends. */
export interface StartedBuild {
  buildId: string;
  abort: AbortController;
  outputs: ParsedOutput[];
  finished: Promise<FinishedImages | undefined>;
}

const MAX_BUILD_ARG_BYTES = 64 * 1024;
/** Most builds one Control.Status lists (buildx asks for 20 at a time). */
const MAX_STATUS_BUILDS = 1000;
const COORDINATOR_BEAT_MS = 3_000;
const COORDINATOR_TTL_MS = 10_000;
const MAX_LABEL_BYTES = 64 * 1024;
const FILE_CHUNK = 256 * 1024;
const CANCELLED_BY_CLIENT = 'cancelled by the client';

/** Checks what a Solve asks for before anything is queued; throws a one-line INVALID_ARGUMENT. */
function validateRequest(req: SolveRequest): { platforms: string[]; outputs: ParsedOutput[] } {
  const invalid = (message: string) => serviceError(status.INVALID_ARGUMENT, message);
  if (req.buildId && !/^[A-Za-z0-9_-]{1,64}$/.test(req.buildId)) throw invalid(`invalid build id "${req.buildId.slice(0, 70)}": use up to 64 letters, digits, '-' or '_'`);
  let platforms: string[];
  try { platforms = [...new Set(req.platforms.map((p) => normalizePlatform(p)))]; } catch (err) { throw invalid((err as Error).message); }
  for (const [k, v] of Object.entries(req.buildArgs)) {
    if (k.length + v.length > MAX_BUILD_ARG_BYTES) throw invalid(`build arg ${k.slice(0, 40)} is larger than ${MAX_BUILD_ARG_BYTES / 1024} KiB: pass large values as a secret or a file in the context`);
  }
  for (const [k, v] of Object.entries(req.labels)) {
    if (k.length + v.length > MAX_LABEL_BYTES) throw invalid(`label ${k.slice(0, 40)} is larger than ${MAX_LABEL_BYTES / 1024} KiB`);
  }
  if (!['', 'default', 'none', 'host'].includes(req.network)) throw invalid(`invalid --network "${req.network}": use default, none or host`);
  let outputs: ParsedOutput[];
  try { outputs = parseOutputs(req.outputs); outputAnnotations(req.outputs); } catch (err) { throw invalid((err as Error).message); }
  // Also refuses a local cache naming a path: the builder never reads or writes its own files.
  try { parseCacheOptions(req); } catch (err) { throw invalid((err as Error).message); }
  return { platforms, outputs };
}

/**
 * The frontend: serves Control and ContextSync, authenticates every call to a tenant, starts
 * builds and relays their progress. Builds run detached from the call that started them, so a
 * client can re-attach by build id.
 */
export class Frontend {
  readonly records: BuildRecords;
  readonly history: BuildHistory;
  readonly contexts: ContextStore;
  /** Contexts the server fetches (git URLs), for both front doors. */
  readonly remoteContexts: RemoteContexts;
  readonly blobs: FsContentStore;
  /**
   * Where type=local/tar outputs unpack the image: the state dir's disk (/tmp may be RAM), 90% of
   * whose free space the exports running at once share (exportBudget.ts), each in this process's
   * directory there (exportOwners.ts): a crashed frontend's is removed when the next one starts.
   */
  readonly exportDir: string;
  /** limits.sessionIdleTimeoutMs: how long a client may go silent in the middle of a transfer. */
  readonly sessionIdleTimeoutMs: number;
  private readonly runner: BuildRunner;
  private readonly finished = new Map<string, Promise<FinishedImages | undefined>>();
  /** Builds this frontend coordinates, by id: Cancel aborts them even before they reach the scheduler. */
  private readonly aborts = new Map<string, AbortController>();
  /**
   * Aborted to give a build this frontend coordinates to another frontend (a rolling restart,
   * or the record naming another coordinator). Builds absent here cannot move (their outputs
   * or SSH agents go through this process's client connection): close() waits for them.
   */
  private readonly handoffs = new Map<string, AbortController>();
  private readonly requests: BuildRequests;
  /** Aborted by close() once its builds ended or moved: relays still open end with UNAVAILABLE. */
  private readonly closing = new AbortController();
  private closed = false;
  /** Context uploads in progress: close() ends those a stalled client keeps open. */
  private readonly uploads = new Set<ServerDuplexStream<SyncRequest, SyncResponse>>();
  private readonly log: Logger;
  private server?: Server;
  /** This process's id as a build coordinator; its heartbeat key says it is alive. */
  readonly id = randomUUID();
  private liveness?: NodeJS.Timeout;
  /** Subscribed to the cancels other frontends take (a subscribing connection serves nothing else). */
  private cancels?: Redis;
  private readonly keys: RedisKeys;
  /** RUN --mount=type=ssh: agent connections between workers and clients (see sshForwarding.ts). */
  private readonly sshRelay: SshRelay;
  private readonly sshSessions = new SshSessions();

  constructor(private readonly opts: FrontendOptions) {
    this.keys = opts.keys ?? DEFAULT_KEYS;
    this.sshRelay = new SshRelay(opts.redis, opts.secretsKey, this.keys);
    this.log = opts.log ?? createLogger('buildyardd');
    this.records = new BuildRecords(opts.redis, this.keys, { retentionMs: opts.historyRetentionMs });
    this.history = new BuildHistory(opts.redis, this.keys, this.records);
    this.blobs = openSharedBlobStore({
      type: opts.blobStore?.type ?? 'fs', repository: opts.blobStore?.repository, sharedDir: `${opts.sharedDir}/blobs`,
      localDir: `${opts.stateDir ?? opts.sharedDir}/frontend-blobs`, clientOptions: { insecureHosts: opts.insecureRegistries, dockerConfig: false },
    });
    // With a registry blob store, contexts reach the workers through it and Redis, not sharedDir.
    this.contexts = openContextStore({ root: `${opts.sharedDir}/contexts`, blobs: this.blobs, redis: opts.redis, keyPrefix: this.keys.prefix, maxContextBytes: opts.maxContextBytes, maxFiles: opts.maxContextFiles });
    this.exportDir = `${opts.stateDir ?? opts.sharedDir}/exports`;
    exportLedger(this.exportDir).maxExportBytes = opts.maxExportBytes ?? 0;
    this.sessionIdleTimeoutMs = opts.sessionIdleTimeoutMs ?? SESSION_IDLE_TIMEOUT_MS;
    this.remoteContexts = new RemoteContexts({ contexts: this.contexts, scratchDir: `${opts.stateDir ?? opts.sharedDir}/git-fetch`, policy: opts.sourcePolicy, ...opts.fetchLimits });
    const secrets = new BuildSecrets(opts.redis, opts.secretsKey, this.keys);
    this.requests = new BuildRequests(opts.redis, this.keys, secrets);
    this.runner = new BuildRunner({
      redis: opts.redis, keys: this.keys, log: this.log, scheduler: opts.scheduler, records: this.records, secrets,
      remoteContexts: this.remoteContexts, requests: this.requests,
      contexts: this.contexts, blobs: this.blobs, insecureRegistries: opts.insecureRegistries, buildPlatform: opts.buildPlatform,
      registryNetworks: opts.sourcePolicy && new TenantRegistryNetworks((tenant) => new RegistryNetwork(
        opts.sourcePolicy?.(tenant) ?? (() => undefined), [...opts.insecureRegistries, ...(opts.trustedRegistries ?? [])])),
      maxLogBytesPerStep: opts.maxLogBytesPerStep, entitlements: parseEntitlements(opts.entitlements ?? []),
      repositories: new RepositoryPolicy({
        tenantScoped: opts.tenantScopedRegistries, sharedReadOnly: opts.sharedReadOnlyRepositories,
        blobRepository: opts.blobStore?.type === 'registry' ? opts.blobStore.repository : undefined,
      }),
    });
  }

  async listen(address: string, credentials = ServerCredentials.createInsecure()): Promise<number> {
    await this.blobs.init();
    // What exports of a crashed frontend left in the export dir goes, in the background: the
    // removal of a whole unpacked image does not hold up the start, nor does a failed one stop it.
    void reclaimExportDirs(this.exportDir).then(
      (removed) => { if (removed.length > 0) this.log.info({ exportDir: this.exportDir, removed }, 'removed exports a stopped frontend left'); },
      (err: Error) => this.log.warn({ exportDir: this.exportDir, err: err.message }, 'removing exports a stopped frontend left failed: they stay until the next start'));
    const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    server.addService(ControlService, this.controlHandlers());
    const contextSync: ContextSyncServer = { sync: (call) => void this.sync(call) };
    server.addService(ContextSyncService, contextSync);
    const sshForward: SshForwardServer = {
      session: (call) => {
        let tenant: string;
        try { tenant = this.tenantOf(call.metadata); } catch (err) { call.emit('error', err); return; }
        void this.sshSessions.handle(call, tenant);
      },
    };
    server.addService(SshForwardService, sshForward);
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p))));
    this.server = server;
    await this.listenForCancels();
    await this.beat();
    this.liveness = setInterval(() => {
      // A missed beat or sweep is retried on the next tick; it is logged so a Redis outage shows.
      // A closing frontend keeps beating for the builds it finishes but takes over none.
      this.beat().then(() => (this.closed ? undefined : this.takeOverOrphanedBuilds())).catch((err: Error) => this.log.warn({ err: err.message }, 'coordinator heartbeat or orphan sweep failed'));
    }, COORDINATOR_BEAT_MS);
    this.liveness.unref();
    return port;
  }

  /** A Cancel another frontend took for a build this one coordinates aborts it here as a local one does. */
  private async listenForCancels(): Promise<void> {
    const sub = this.opts.redis.duplicate();
    this.cancels = sub;
    sub.on('message', (_channel: string, buildId: string) => this.aborts.get(buildId)?.abort(new Error(CANCELLED_BY_CLIENT)));
    // A message missed while reconnecting is not lost: the runner also reads the record's request.
    sub.on('error', (err: Error) => this.log.warn({ err: err.message }, 'the subscription to build cancels failed: retrying'));
    await keepSubscribed(sub, [this.keys.buildCancels], (err) => this.log.warn({ err: err.message }, 'subscribing to build cancels failed: retrying on the next reconnect'));
  }

  private beat(): Promise<unknown> {
    return this.opts.redis.set(this.keys.frontend(this.id), '1', 'PX', COORDINATOR_TTL_MS);
  }

  /**
   * A build's coordinator is the frontend that accepted it (or took it over); when that process
   * stops (its heartbeat key expires, or it gave the build up while closing), any frontend
   * claims the build and runs it from its stored request: stages already done or running stay
   * in the scheduler, so it waits for the rest and exports. Builds that cannot move (their
   * outputs or SSH agents went through the lost client connection, or no request was kept) fail
   * with one line so attached clients get an end. Also gives up builds this frontend runs whose
   * record another frontend claimed (after a heartbeat this process missed). Returns the ids
   * taken over.
   */
  async takeOverOrphanedBuilds(): Promise<string[]> {
    const taken: string[] = [];
    for (const record of await this.records.unfinished()) {
      if (record.coordinator !== this.id && this.aborts.has(record.buildId)) {
        this.log.warn({ buildId: record.buildId, coordinator: record.coordinator }, 'another frontend coordinates this build now: stopping here');
        this.handoffs.get(record.buildId)?.abort();
        continue;
      }
      if (!record.coordinator || record.coordinator === this.id || (await this.opts.redis.exists(this.keys.frontend(record.coordinator)))) continue;
      if (!(await this.requests.claim(record.buildId, record.coordinator, this.id))) continue;
      const refused = await this.resume(record).catch((err: Error) => `taking the build over failed: ${err.message.slice(0, 300)}: run the build again`);
      if (refused) await this.failOrphan(record.buildId, refused);
      else taken.push(record.buildId);
    }
    return taken;
  }

  /** Runs a claimed build from its stored request; a reason when it cannot continue here. */
  private async resume(record: BuildRecord): Promise<string | undefined> {
    const req = await this.requests.load(record.buildId);
    if (!req) return 'the frontend running this build stopped before it finished: run the build again';
    if (await this.sshRelay.offered(record.buildId)) return 'the frontend relaying this build\'s SSH agents (--ssh) stopped before it finished; the agents cannot move to another frontend: run the build again';
    const outputs = parseOutputs(req.outputs);
    if (outputs.some((o) => exporterFor(o).delivery === 'client') || parseCacheOptions(req).to.some((c) => c.type === 'local')) {
      return 'the frontend streaming this build\'s outputs to the client (type=local or tar) stopped before it finished: run the build again';
    }
    this.log.info({ buildId: record.buildId, from: record.coordinator }, 'taking over an orphaned build');
    this.run(record.buildId, record.tenant, req, outputs, { resume: true });
    return undefined;
  }

  private async failOrphan(buildId: string, message: string): Promise<void> {
    await this.records.update(buildId, { status: 'failed', finishedMs: Date.now(), error: message });
    await this.opts.scheduler.cancelBuild(buildId, message)
      .catch((err: Error) => this.log.warn({ buildId, err: err.message }, 'cancelling the stages of an orphaned build failed'));
    const progress = new ProgressWriter(this.opts.redis, buildId, { keys: this.keys, ttlSeconds: Math.ceil(this.records.retentionMs / 1000) });
    await progress.emit({ type: 'build.error', message, code: 'build.orphaned' });
    await progress.close();
    await this.requests.delete(buildId);
  }

  /**
   * Removes shared-store blobs no cache record references and no running build has leased:
   * older than keepDurationMs, then oldest first while the store is above keepBytes.
   */
  async collectGarbage(policy: { keepBytes: number; keepDurationMs: number }): Promise<{ deleted: number; reclaimedBytes: number; contexts: number }> {
    // A blob a context references stays in the shared store (a layer may equal a context file).
    const guard = new ContextBlobGuard(this.opts.redis, this.keys.prefix);
    const result = await collectBlobGarbage({
      store: { list: () => this.blobs.list(), delete: guard.guarded((d) => this.blobs.delete(d)) },
      referenced: await RedisCacheIndex.referencedBlobs(this.opts.redis, this.keys), leases: new BlobLeases(this.opts.redis, this.keys), policy,
    });
    const contexts = await this.collectContexts();
    return { deleted: result.deleted.length, reclaimedBytes: result.reclaimedBytes, contexts: contexts.contexts.length };
  }

  /**
   * Runs a context sync (`fn`) as a registered context write: deletions from the shared store
   * made while it runs stay on record until it ends, so its final check sees one of a file it
   * found hours before (ContextWrites).
   */
  contextWrite<T>(fn: () => Promise<T>): Promise<T> {
    return new ContextWrites(this.opts.redis, this.keys.prefix).during(fn);
  }

  /** Deletes contexts no tenant synced within contextMaxAgeMs (one frontend at a time; see collectContextGarbage). */
  collectContexts(now?: number) {
    return collectContextGarbage({ store: this.contexts, redis: this.opts.redis, keys: this.keys, maxAgeMs: this.opts.contextMaxAgeMs, now });
  }

  /**
   * Stops this frontend without losing builds (a rolling restart): no new calls; every build
   * that can move is handed to the other frontends (its stages keep running on the workers);
   * the others (outputs or SSH agents through this process's client connection) are finished
   * here, beating meanwhile. Then the heartbeat key goes, so another frontend claims the handed
   * builds at its next sweep, and attached clients get UNAVAILABLE (the CLI re-attaches). Calls
   * still open a few seconds after that are ended too (boundedShutdown).
   */
  async close(): Promise<void> {
    this.closed = true;
    const shutdown = stopAccepting(this.server);
    for (const handoff of this.handoffs.values()) handoff.abort();
    // Builds hand over and finish through Redis: while it does not answer they can do neither,
    // and this process stops without them. Their records still name this frontend, whose
    // heartbeat expires: another frontend then takes over those that can move (as after a crash).
    let running = this.finished.size;
    const ended = Promise.allSettled([...this.finished.values()].map((f) => f.finally(() => running--)));
    await untilRedisGone(this.opts.redis, ended, STOP_WITHOUT_REDIS_MS).catch(() => {
      this.log.warn({ builds: running }, `${running} build${running === 1 ? '' : 's'} did not hand over or finish: Redis has not answered for ${STOP_WITHOUT_REDIS_MS / 1000} s; stopping without them (another frontend takes over those that can move once this one's heartbeat expires)`);
    });
    clearInterval(this.liveness);
    // Bounded: with Redis unreachable the DEL would wait for it forever; the key expires anyway.
    await replyWithin(this.opts.redis.del(this.keys.frontend(this.id)), 'DEL').catch((err: Error) => this.log.warn({ err: err.message }, 'removing the coordinator heartbeat failed: others take its builds over when it expires'));
    this.closing.abort();
    this.cancels?.disconnect();
    // What is still open now serves no build of this process (a client stalled mid-upload, say),
    // and gRPC's graceful shutdown would wait for it forever: it gets a few seconds, then uploads
    // end with UNAVAILABLE (a client's cue to try again), and then whatever else is cut.
    await boundedShutdown(this.server, shutdown, () => { for (const upload of this.uploads) upload.emit('error', stoppingError()); });
  }

  private tenantOf(metadata: Metadata): string {
    return authenticate(metadata, this.opts.tokens);
  }

  private async sync(call: ServerDuplexStream<SyncRequest, SyncResponse>): Promise<void> {
    let tenant: string;
    try { tenant = this.tenantOf(call.metadata); } catch (err) { call.emit('error', err); return; }
    // A failed sync has already been reported to its client on the stream; here it is logged.
    this.uploads.add(call);
    const synced = await this.contextWrite(() => handleSync(call, this.contexts, { tenant, idleTimeoutMs: this.sessionIdleTimeoutMs }))
      .catch((err: Error) => { this.log.info({ tenant, err: err.message }, 'context sync failed'); return undefined; })
      .finally(() => this.uploads.delete(call));
    if (synced) metrics.bytesUploaded.inc(synced.bytesUploaded); // metrics
  }

  private unary<Req, Res>(fn: (req: Req, tenant: string) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      let tenant: string;
      try { tenant = this.tenantOf(call.metadata); } catch (err) { callback(err as Error); return; }
      fn(call.request, tenant).then((res) => callback(null, res), (err: Error & { code?: number }) => callback(err.code !== undefined ? err : serviceError(status.INTERNAL, err.message)));
    };
  }

  private controlHandlers(): ControlServer {
    return {
      solve: (call: ServerWritableStream<SolveRequest, SolveEvent>) => void this.solve(call),
      attach: (call: ServerWritableStream<AttachRequest, SolveEvent>) => void this.attach(call),
      cancel: this.unary<CancelRequest, CancelResponse>(async (req, tenant) => {
        // From here on the build's internal id (a client names its build; see buildIds.ts).
        return CancelResponse.fromPartial({ cancelled: await this.cancelByClient(await this.ownedBuild(req.buildId, tenant)) });
      }),
      status: this.unary<StatusRequest, StatusResponse>(async (req, tenant) => {
        const builds = req.buildId ? [await this.ownedBuild(req.buildId, tenant)] : await this.records.list(tenant, Math.min(req.limit || 20, MAX_STATUS_BUILDS));
        return StatusResponse.fromPartial({
          builds: builds.map((b) => ({
            buildId: shownBuildId(b.buildId), tenant: b.tenant, status: b.status, platforms: b.platforms, createdMs: b.createdMs, finishedMs: b.finishedMs,
            digest: b.digest, error: b.error, verticesTotal: b.verticesTotal, verticesCached: b.verticesCached,
          })),
        });
      }),
      info: this.unary<InfoRequest, InfoResponse>(async (_req, tenant) => {
        const workers = await this.opts.workers.list();
        return InfoResponse.fromPartial({
          version: this.opts.version, tenant, workers: workers.length,
          nativePlatforms: [...new Set(workers.flatMap((w) => w.nativePlatforms))].sort(),
          emulatedPlatforms: [...new Set(workers.flatMap((w) => w.emulatedPlatforms))].sort(),
        });
      }),
      listWorkers: this.unary<ListWorkersRequest, ListWorkersResponse>(async () => ListWorkersResponse.fromPartial({
        workers: (await this.opts.workers.list()).map((w) => ({
          id: w.id, nativePlatforms: w.nativePlatforms, emulatedPlatforms: w.emulatedPlatforms, capacity: w.capacity, running: w.running,
          cacheBytes: w.cacheBytes, lastHeartbeatMs: w.lastHeartbeat, draining: w.draining, version: w.version,
        })),
      })),
      diskUsage: this.unary<DiskUsageRequest, DiskUsageResponse>((_req, tenant) => this.diskUsage(tenant)),
      prune: this.unary<PruneRequest, PruneResponse>((req, tenant) => this.prune(req, tenant)),
      listHistory: this.unary<ListHistoryRequest, ListHistoryResponse>((req, tenant) => this.history.list(tenant, req)),
      deleteHistory: this.unary<DeleteHistoryRequest, DeleteHistoryResponse>((req, tenant) => this.history.remove(tenant, req)),
    };
  }

  /** The tenant's cache records and the workers' disks (Control.DiskUsage; the BuildKit endpoint's too). */
  async diskUsage(tenant: string): Promise<DiskUsageResponse> {
    const records = await new RedisCacheIndex(this.opts.redis, tenant, this.keys).list();
    const total = records.reduce((n, r) => n + (r.layer?.size ?? 0), 0);
    const workerDisk = await workerDiskUsage(this.opts.redis, this.keys.prefix, this.opts.workers);
    // Shared as BuildKit means it: another record holds the same data, so removing this one alone
    // frees nothing. Only the tenant's own records count: another tenant's layers are not to be told.
    const holders = new Map<string, number>();
    for (const r of records) if (r.layer) holders.set(r.layer.digest, (holders.get(r.layer.digest) ?? 0) + 1);
    return DiskUsageResponse.fromPartial({
      records: [
        ...records.map((r) => ({ id: r.key, description: r.description, size: r.layer?.size ?? 0, lastUsedMs: r.lastUsedMs, usageCount: r.usageCount, shared: (holders.get(r.layer?.digest ?? '') ?? 0) > 1 })),
        ...workerDisk.records,
      ],
      totalBytes: total + workerDisk.totalBytes, reclaimableBytes: total + workerDisk.reclaimableBytes,
    });
  }

  /** Removes the tenant's cache records and its own worker disk use by `req`'s policy (Control.Prune; the BuildKit endpoint's too). */
  async prune(req: PruneRequest, tenant: string): Promise<PruneResponse> {
    const index = new RedisCacheIndex(this.opts.redis, tenant, this.keys);
    // Leased blobs (held by running builds) are never removed.
    const { removed: chosen } = await pruneCache({
      index, blobs: { delete: new ContextBlobGuard(this.opts.redis, this.keys.prefix).guarded((d) => this.blobs.delete(d)) }, leases: new BlobLeases(this.opts.redis, this.keys),
      policy: { all: req.all || (!req.keepStorage && !req.keepDurationMs), keepBytes: req.keepStorage || undefined, keepDurationMs: req.keepDurationMs || undefined },
    });
    // Then what is the tenant's own on the workers (its step snapshots and cache mounts): all of
    // it for --all, else down to keep-storage. Shared snapshots and contexts are the workers' GC's.
    const everything = req.all || (!req.keepStorage && !req.keepDurationMs);
    const workerDisk = await pruneWorkerDisks(this.opts.redis, this.keys.prefix, this.opts.workers, { tenant }, everything ? 0 : req.keepStorage || undefined);
    // Contexts past their age, every tenant's (a tenant's prune can only take what nobody synced
    // since). Its failure does not fail this tenant's prune: the frontend's GC runs it again.
    await this.collectContexts().catch((err: Error) => this.log.warn({ err: err.message }, 'context GC during a prune failed'));
    return PruneResponse.fromPartial({
      removed: [...chosen.map((r) => ({ id: r.key, description: r.description, size: r.layer?.size ?? 0, lastUsedMs: r.lastUsedMs })), ...workerDisk.removed],
      reclaimedBytes: chosen.reduce((n, r) => n + (r.layer?.size ?? 0), 0) + workerDisk.reclaimedBytes,
    });
  }

  /** A build of this tenant; another tenant's build answers NOT_FOUND, as if it did not exist. */
  private async ownedBuild(buildId: string, tenant: string): Promise<BuildRecord> {
    const record = buildId ? await this.records.get(await internalBuildId(this.opts.redis, this.keys, tenant, buildId)) : undefined;
    if (!record || record.tenant !== tenant) throw serviceError(status.NOT_FOUND, `build ${buildId.slice(0, 100)} not found`);
    return record;
  }

  private async solve(call: ServerWritableStream<SolveRequest, SolveEvent>): Promise<void> {
    let started: StartedBuild;
    try {
      const tenant = this.tenantOf(call.metadata);
      // buildyard build --ssh: the session its client opened on this connection before Solve.
      const sshSession = String(call.metadata.get('buildyard-ssh-session')[0] ?? '');
      started = await this.startBuild(tenant, call.request, { ssh: sshSession ? this.sshSessions.get(sshSession, tenant) : undefined });
    } catch (err) {
      call.emit('error', err);
      return;
    }
    // A client cut off by this frontend's shutdown re-attaches elsewhere: its build goes on.
    const leave = () => { if (!call.request.detach && !this.closed) started.abort.abort(new Error('the client went away')); };
    call.on('cancelled', leave);
    if (call.cancelled) leave();
    const clientOutputs = { outputs: started.outputs.filter((o) => exporterFor(o).delivery === 'client'), linksHardlinks: call.request.linksHardlinks };
    await this.relay(call, started.buildId, true, clientOutputs, started.finished);
  }

  /**
   * Starts a build for `tenant` as Solve does (validation, build id, record, runner on the
   * fleet) and returns at once; its events go to the build's progress stream. The one way in
   * for every front door (Control.Solve, the BuildKit-compatible endpoint). `exportStep` runs
   * each export phase (the BuildKit endpoint shows them in BuildKit's export vertex). Throws a one-line
   * service error for a request it refuses.
   */
  async startBuild(tenant: string, request: SolveRequest, options: { exportStep?: ExportStep; ssh?: SshAgentSource } = {}): Promise<StartedBuild> {
    const checked = validateRequest(request);
    const req = { ...request, platforms: checked.platforms };
    // Only this tenant's own builds can make a name unavailable: nothing here tells about others'.
    const buildId = req.buildId ? await claimBuildId(this.opts.redis, this.keys, tenant, req.buildId, (id) => this.records.get(id), this.records.retentionMs) : randomUUID();
    if (!buildId) throw serviceError(status.ALREADY_EXISTS, `build ${req.buildId} already exists: attach to it with its id or choose another`);
    // The client's SSH agents are offered to the workers before any stage can run.
    const forwardSsh = options.ssh ? await startSshForwarding(this.sshRelay, buildId, options.ssh, this.log) : undefined;
    await this.records.create({
      buildId, tenant, platforms: req.platforms, coordinator: this.id,
      context: req.contextName, dockerfile: req.dockerfileName, target: req.target, buildArgs: req.buildArgs, noCache: req.noCache, network: req.network,
      images: checked.outputs.flatMap((o) => o.names),
    });
    // Kept for a takeover, before the runner starts (secrets go sealed, with the runner's first step).
    await this.requests.save(buildId, req);
    const movable = !forwardSsh && !checked.outputs.some((o) => exporterFor(o).delivery === 'client') && !parseCacheOptions(req).to.some((c) => c.type === 'local');
    // The runner's spans join the active trace: the gRPC instrumentation's server span, which
    // continues the client's trace from the call's metadata.
    const { abort, finished } = this.run(buildId, tenant, req, checked.outputs, { exportStep: options.exportStep, movable });
    forwardSsh?.(finished);
    return { buildId, abort, outputs: checked.outputs, finished };
  }

  /** Starts (or resumes) the runner of a build this frontend coordinates. */
  private run(buildId: string, tenant: string, req: SolveRequest, outputs: ParsedOutput[], o: { exportStep?: ExportStep; movable?: boolean; resume?: boolean }): { abort: AbortController; finished: Promise<FinishedImages | undefined> } {
    const abort = new AbortController();
    this.aborts.set(buildId, abort);
    // A resumed build's outputs go to the registry only (resume() refused the others), so it can move again.
    const handoff = o.movable !== false || o.resume ? new AbortController() : undefined;
    if (handoff) this.handoffs.set(buildId, handoff);
    // Closing already: the build goes straight on to the next frontend.
    if (this.closed) handoff?.abort();
    const finished = this.runner.run(buildId, tenant, req, outputs, abort.signal, o.exportStep, { resume: o.resume, handoff: handoff?.signal });
    this.finished.set(buildId, finished);
    finished.finally(() => { this.finished.delete(buildId); this.aborts.delete(buildId); this.handoffs.delete(buildId); })
      .catch((err: Error) => this.log.error({ buildId, err: err.message }, 'build ended with an error its runner did not report'));
    return { abort, finished };
  }

  /**
   * Cancels a build wherever it runs; whether there was anything to stop. Before its stages are
   * submitted the scheduler does not know the build, and its runner may be on another frontend
   * or not started yet: the request goes into its record, which the runner checks before
   * planning and before submitting, and to every frontend at once.
   */
  private async cancelByClient(record: BuildRecord): Promise<boolean> {
    const unfinished = isUnfinished(record.status);
    if (unfinished) await this.records.requestCancel(record.buildId, CANCELLED_BY_CLIENT);
    const running = this.aborts.get(record.buildId);
    running?.abort(new Error(CANCELLED_BY_CLIENT));
    const cancelled = await this.opts.scheduler.cancelBuild(record.buildId, CANCELLED_BY_CLIENT);
    return cancelled || Boolean(running) || unfinished;
  }

  private async attach(call: ServerWritableStream<AttachRequest, SolveEvent>): Promise<void> {
    let record: BuildRecord;
    try {
      const tenant = this.tenantOf(call.metadata);
      record = await this.ownedBuild(call.request.buildId, tenant);
    } catch (err) {
      call.emit('error', err);
      return;
    }
    // The client that started the build, back after a cut: its leaving cancels the build as
    // leaving its Solve would. A client cut off by this frontend's shutdown attaches elsewhere.
    if (call.request.cancelOnLeave) {
      const leave = () => {
        if (this.closed) return;
        this.records.get(record.buildId)
          .then((now) => (now && isUnfinished(now.status) ? this.cancelByClient(now) : false))
          .catch((err: Error) => this.log.warn({ buildId: record.buildId, err: err.message }, 'cancelling the build of a client that left failed'));
      };
      call.on('cancelled', leave);
      if (call.cancelled) leave();
    }
    await this.relay(call, record.buildId, call.request.fromStart, { outputs: [], linksHardlinks: false }, undefined);
  }

  /** Forwards the build's progress stream to the client; local outputs go out before the result. */
  private async relay(call: ServerWritableStream<unknown, SolveEvent>, buildId: string, fromStart: boolean, clientOutputs: ClientOutputs, finished: Promise<FinishedImages | undefined> | undefined): Promise<void> {
    const stop = new AbortController();
    call.on('cancelled', () => stop.abort());
    const onClosing = () => stop.abort(this.closing.signal.reason);
    this.closing.signal.addEventListener('abort', onClosing, { once: true });
    try {
      for await (const event of readProgress(this.opts.redis, buildId, { fromStart, signal: stop.signal, keys: this.keys })) {
        // Phases inside a vertex are for BuildKit clients; Buildyard's show none (Solve and
        // Attach skip the same events, so a re-attached client's count of events still holds).
        if (event.type === 'vertex.status') continue;
        if (event.type === 'build.result' && finished) {
          const images = await finished;
          const failed = images ? await this.streamOutputs(call, clientOutputs, images).then(() => undefined, (err: Error) => err) : undefined;
          if (failed) {
            // The client's error in place of the result; a stream error would read as a cut
            // connection, after which a client attaches again and sees the build succeed.
            await write(call, SolveEvent.fromPartial({ timestampMs: Date.now(), error: { message: failed.message, code: 'export.failed' } }));
            break;
          }
        }
        if (!(await write(call, shownIds(toSolveEvent(event))))) break;
      }
      if (!stop.signal.aborted) call.end();
    } catch (err) {
      if (!stop.signal.aborted) call.emit('error', serviceError(status.INTERNAL, `relaying build ${buildId}: ${(err as Error).message}`));
    } finally {
      this.closing.signal.removeEventListener('abort', onClosing);
    }
    if (this.closing.signal.aborted && !call.cancelled && !call.destroyed && !call.writableEnded) {
      call.emit('error', serviceError(status.UNAVAILABLE, `this frontend is shutting down while build ${shownBuildId(buildId)} runs on: attach to it again (the CLI does so by itself)`));
    }
  }

  private async streamOutputs(call: ServerWritableStream<unknown, SolveEvent>, { outputs, linksHardlinks }: ClientOutputs, images: FinishedImages): Promise<void> {
    for (const output of outputs) {
      await runExport(output, { ...clientExportSource(images, this.blobs, this.exportDir), hardlinks: linksHardlinks }, (file) =>
        streamFile(call, { output: output.index, path: file.path, mode: file.mode, linkTarget: file.linkTarget ?? '', hardlinkTo: file.hardlinkTo ?? '', cache: false, mtimeNs: file.mtimeNs?.toString() }, file.content))
        .catch((err: Error) => { throw new Error(`exporting output ${output.index + 1} (type=${output.type}): ${err.message}`); });
    }
    // --cache-to type=local: the OCI layout goes to the client, which writes it to its dest.
    for (const { index, layout } of images.localCaches ?? []) {
      const base = { output: index, linkTarget: '', hardlinkTo: '', cache: true };
      await streamFile(call, { ...base, path: 'oci-layout', mode: 0o100644 }, Readable.from([Buffer.from('{"imageLayoutVersion":"1.0.0"}')]));
      for (const blob of layout.blobs) {
        await streamFile(call, { ...base, path: `blobs/sha256/${blob.digest.slice('sha256:'.length)}`, mode: 0o100644 }, this.blobs.openRead(blob.digest));
      }
      await streamFile(call, { ...base, path: 'index.json', mode: 0o100644 }, Readable.from([Buffer.from(JSON.stringify(layout.index))]));
    }
  }
}

/** The outputs a Solve's client writes itself, and whether it links hardlinks (SolveRequest.links_hardlinks). */
interface ClientOutputs {
  outputs: ParsedOutput[];
  linksHardlinks: boolean;
}

/** Streams one exported file in FILE_CHUNK pieces, the last one marked (content-less: one empty chunk). */
async function streamFile(call: ServerWritableStream<unknown, SolveEvent>, base: Omit<ExportedFile, 'data' | 'last'>, content: Readable | undefined): Promise<void> {
  if (!content) {
    await write(call, SolveEvent.fromPartial({ timestampMs: Date.now(), file: { ...base, data: Buffer.alloc(0), last: true } }));
    return;
  }
  let pending = Buffer.alloc(0);
  for await (const chunk of content) {
    pending = Buffer.concat([pending, chunk as Buffer]);
    while (pending.length >= FILE_CHUNK) {
      await write(call, SolveEvent.fromPartial({ timestampMs: Date.now(), file: { ...base, data: pending.subarray(0, FILE_CHUNK), last: false } }));
      pending = pending.subarray(FILE_CHUNK);
    }
  }
  await write(call, SolveEvent.fromPartial({ timestampMs: Date.now(), file: { ...base, data: pending, last: true } }));
}

/** Writes with backpressure; false when the client has gone. */
function write(call: ServerWritableStream<unknown, SolveEvent>, event: SolveEvent): Promise<boolean> {
  if (call.cancelled || call.destroyed) return Promise.resolve(false);
  if (call.write(event)) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (ok: boolean) => { call.off('drain', onDrain); call.off('close', onClose); resolve(ok); };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    call.once('drain', onDrain);
    call.once('close', onClose);
  });
}
