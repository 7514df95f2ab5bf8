import { randomUUID } from 'node:crypto';
import { isIP } from 'node:net';
import { Server, ServerCredentials, status, type Metadata, type ServerDuplexStream, type ServerUnaryCall, type ServerWritableStream, type sendUnaryData } from '@grpc/grpc-js';
import type { RedisClient as Redis } from '@buildyard/contracts';
import { answerSubrequest, DockerfileError, parseDockerignore, subrequestMetadata, SubrequestError, SUBREQUESTS } from '@buildyard/dockerfile';
import { storeDirectory } from '@buildyard/context';
import { boundedShutdown, clientExportSource, exporterFor, exportScratchDir, isBaseImageVertex, keepGitDirArg, runExport, serviceError, stopAccepting, stoppingError, RemoteContextError, type ExportSource, type Frontend, type ParsedOutput, type RemoteContexts, type SourceProgress, type StartedBuild } from '@buildyard/control';
import { createWriteStream } from 'node:fs';
import { link, mkdtemp, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import type { RedisKeys } from '@buildyard/contracts';
import { internalDigest, progressStreamKey, readProgress, StatusTranslator, vertexUpdate, type VertexRef } from '@buildyard/progress';
import { PruneRequest, buildkit, gateway, type CacheRecord } from '@buildyard/proto';
import type { WorkerRegistry } from '@buildyard/scheduler';
import { createLogger, type Logger } from '@buildyard/telemetry';
import { readLocalFiles, receiveLocalToStore, sendDirToClient, sendFileToClient, type OutgoingEntry, type PreviousSync } from './fileSync.js';
import { SessionManager, type ClientSession } from './SessionManager.js';
import { fetchSecrets, secretIds } from './sessionSecrets.js';
import { sessionSshAgents, sshIds } from './sessionSsh.js';
import { fetchRegistryAuth, registryHosts } from './sessionAuth.js';
import { checkSyntaxDirective, dockerfileAttrs, outputsOf, sessionCaches, toBuildyardRequest, unknownAttrs, UnsupportedRequest, type DockerfileAttrs } from './solveRequest.js';
import { importSessionCache, sendSessionCaches, type SessionCacheDeps } from './sessionCache.js';
import { clientContentStore } from './sessionContent.js';
import { isSessionLayout, loadSessionLayout } from './sessionLayout.js';
import { workerRecord } from './workers.js';
import { instructionEndLine, sourceServiceError, type ErrorSource } from './sourceError.js';
import { ExportVertex, exporterVertexName, StreamCursor } from './exportVertex.js';

type StatusResponse = buildkit.StatusResponse;

export interface BuildkitServerOptions {
  frontend: Frontend;
  redis: Redis;
  keys: RedisKeys;
  workers: WorkerRegistry;
  /** The tenant every call on the plain-text loopback listener builds as. */
  tenant?: string;
  /** With TLS: the tenants a client certificate may name (its subject CN is the tenant). */
  tenants?: ReadonlySet<string>;
  version: string;
  log?: Logger;
  /** How long a Solve waits for its session to be opened (buildctl opens both at once). */
  sessionWaitMs?: number;
}

const MAX_DOCKERFILE_BYTES = 4 * 1024 * 1024;
/** Locals whose last sync is remembered to skip unchanged files. */
const MAX_REMEMBERED_SYNCS = 256;

/** One Solve's state, kept so Status (which may come first) and LLBBridge calls find it by ref. */
class Job {
  readonly history: StatusResponse[] = [];
  private readonly listeners = new Set<(s: StatusResponse | undefined) => void>();
  done = false;
  /** A gateway solve has started (one per build). */
  solving = false;
  exporterResponse?: Record<string, string>;
  /**
   * Where the build failed in the Dockerfile: the client's Return carries the gateway solve's error
   * back without its details (our google.rpc.Status has none), so the Solve error re-attaches them.
   */
  failedAt?: ErrorSource;
  /** The client's LLBBridge.Return: its build function ended (with its result or its error). */
  readonly returned: Promise<gateway.ReturnRequest>;
  settle!: (r: gateway.ReturnRequest) => void;

  constructor(readonly request: buildkit.SolveRequest, readonly tenant: string, readonly signal: AbortSignal, readonly metadata: Metadata) {
    this.returned = new Promise((resolve, reject) => {
      this.settle = resolve;
      signal.addEventListener('abort', () => reject(serviceError(status.CANCELLED, 'the build was cancelled: the client went away')), { once: true });
    });
    this.returned.catch(() => {});
  }

  push(s: StatusResponse): void {
    this.history.push(s);
    for (const l of this.listeners) l(s);
  }

  finish(): void {
    this.done = true;
    for (const l of this.listeners) l(undefined);
  }

  /** Status calls still sending this job's updates; each settles once its stream has ended. */
  readonly readers = new Set<Promise<void>>();

  /**
   * Resolves when every Status call has handed its last update to the transport (or gone), so
   * the Solve response never overtakes the status updates, as with buildkitd, whose Solve ends
   * after the job's progress is closed: buildctl stops reading Status 3 s after Solve returns.
   * A client that stops reading its Status stream is waited for at most `boundMs`.
   */
  async statusSent(boundMs: number): Promise<void> {
    if (this.readers.size === 0) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(this.readers), new Promise<void>((resolve) => { timer = setTimeout(resolve, boundMs); })]);
    clearTimeout(timer);
  }

  subscribe(l: (s: StatusResponse | undefined) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }
}

/** A Buildyard cache record as BuildKit's du and prune list them. */
function usageRecord(r: CacheRecord): buildkit.UsageRecord {
  return buildkit.UsageRecord.fromPartial({
    ID: r.id, Description: r.description, Size: r.size, InUse: r.inUse, Shared: r.shared, UsageCount: r.usageCount,
    LastUsedAt: r.lastUsedMs ? new Date(r.lastUsedMs) : undefined, RecordType: 'regular',
  });
}

/** BuildKit's "resolve REF" status under a FROM vertex: its image source resolving the pinned reference. */
function resolveStatus(v: VertexRef, startedMs: number, completedMs: number): StatusResponse {
  const name = `resolve ${v.name.slice(v.name.lastIndexOf(' FROM ') + ' FROM '.length)}`;
  return buildkit.StatusResponse.fromPartial({
    statuses: [{ ID: name, vertex: v.digest, name, started: new Date(startedMs), timestamp: new Date(completedMs), completed: new Date(completedMs) }],
  });
}

/** What the gateway offers a client's build function (BuildKit's frontend/gateway/pb/caps.go ids). */
const GATEWAY_CAPS = ['solve.base', 'solve.inlinereturn', 'return', 'returnmap', 'proto.refarray', 'frontend.inputs', 'gateway.solve.metadata', 'frontend.caps'];

const gone = (call: { on(event: 'cancelled', l: () => void): unknown }): AbortSignal => {
  const c = new AbortController();
  call.on('cancelled', () => c.abort());
  return c.signal;
};

/** How long a finished job's status stays readable for a late Status call. */
const JOB_LINGER_MS = 60_000;
/** How long a Solve response waits for a Status stream the client does not read. */
const STATUS_FLUSH_BOUND_MS = 10_000;
/** How long the export's first update waits for the build's earlier events to be relayed. */
const EXPORT_ORDER_WAIT_MS = 5_000;

/** A ref is the client's name for its build; another tenant's build of that name is not found. */
function jobKey(tenant: string, ref: string): string {
  return `${tenant}\0${ref}`;
}

function noBuild(ref: string): Error {
  return serviceError(status.NOT_FOUND, `no build ${ref.slice(0, 64)}: call Control.Solve for it first`);
}

/**
 * BuildKit's control API (moby.buildkit.v1.Control) in front of the Buildyard fleet, so
 * buildctl and `docker buildx --driver remote` build on it. A dockerfile.v0 Solve reads the
 * client's `dockerfile` and `context` locals over its session into the context store, then
 * starts the build through Frontend.startBuild: the same planner, scheduler, workers, cache
 * and exporters as `buildyard build`.
 */
export class BuildkitServer {
  private readonly sessions: SessionManager;
  /** Builds by jobKey(tenant, ref): a ref names a build only within its tenant. */
  private readonly jobs = new Map<string, Job>();
  private readonly jobWaiters = new Map<string, Set<() => void>>();
  /** The previous sync of each local (by tenant, session shared key and local name). */
  private readonly previousSyncs = new Map<string, PreviousSync>();
  private readonly log: Logger;
  private server?: Server;
  private tls = false;
  /** Aborted by close() when open Solves are to end. */
  private readonly stopping = new AbortController();

  constructor(private readonly opts: BuildkitServerOptions) {
    this.log = opts.log ?? createLogger('buildkit-api');
    // What a session's client sends (its locals, layouts, caches) it must keep sending: limits.sessionIdleTimeoutMs.
    this.sessions = new SessionManager({ idleTimeoutMs: opts.frontend.sessionIdleTimeoutMs });
  }

  /**
   * Serves plain text, which only an explicit insecure option allows and only on loopback:
   * anyone who reaches the port builds as the configured tenant.
   */
  async listenInsecure(address: string): Promise<number> {
    const host = address.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
    if (!(isIP(host) === 4 ? host.startsWith('127.') : host === '::1' || host === 'localhost')) {
      throw new Error(`buildkit.listen ${address.slice(0, 100)}: a plain-text BuildKit endpoint must listen on a loopback address (127.0.0.0/8, ::1)`);
    }
    return this.listen(address, ServerCredentials.createInsecure());
  }

  /**
   * Serves TLS and requires a client certificate signed by `clientCa`, as buildkitd does with
   * --tlscacert; the certificate's subject CN names the tenant.
   */
  async listenTls(address: string, tls: { cert: Buffer; key: Buffer; clientCa: Buffer }): Promise<number> {
    this.tls = true;
    return this.listen(address, ServerCredentials.createSsl(tls.clientCa, [{ cert_chain: tls.cert, private_key: tls.key }], true));
  }

  /** The tenant a call builds as: its client certificate's CN with TLS, else the listener's tenant. */
  private tenantOf(call: { getAuthContext(): { sslPeerCertificate?: { subject?: { CN?: string | string[] } } } }): string {
    if (!this.tls) {
      if (!this.opts.tenant) throw serviceError(status.UNAUTHENTICATED, 'this BuildKit endpoint has no tenant configured: set buildkit.tenant');
      return this.opts.tenant;
    }
    const cn = call.getAuthContext().sslPeerCertificate?.subject?.CN;
    const tenant = Array.isArray(cn) ? cn[0] : cn;
    if (!tenant || !this.opts.tenants?.has(tenant)) {
      throw serviceError(status.UNAUTHENTICATED, `client certificate ${tenant ? `CN "${tenant.slice(0, 64)}" names no tenant` : 'has no subject CN'}: use a certificate issued for your tenant`);
    }
    return tenant;
  }

  private async listen(address: string, credentials: ServerCredentials): Promise<number> {
    const server = new Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
    server.addService(buildkit.ControlService, this.handlers());
    server.addService(gateway.LLBBridgeService, this.gatewayHandlers());
    const port = await new Promise<number>((resolve, reject) => server.bindAsync(address, credentials, (err, p) => (err ? reject(err) : resolve(p))));
    this.server = server;
    return port;
  }

  /**
   * Stops serving: no new calls, sessions end at once; Solves still open a few seconds later end
   * with UNAVAILABLE, and what is open after that (a Status stream, say) is cut (boundedShutdown).
   */
  async close(): Promise<void> {
    this.sessions.closeAll();
    await boundedShutdown(this.server, stopAccepting(this.server), () => this.stopping.abort());
  }

  /** `solving`, or stoppingError() once close() stops waiting for the calls still open. */
  private untilStopping<T>(solving: Promise<T>): Promise<T> {
    const { signal } = this.stopping;
    let onStop = () => {};
    const stopped = new Promise<never>((_, reject) => { onStop = () => reject(stoppingError()); signal.addEventListener('abort', onStop, { once: true }); });
    return Promise.race([solving, stopped]).finally(() => signal.removeEventListener('abort', onStop));
  }

  private unary<Req, Res>(fn: (req: Req, tenant: string) => Promise<Res>) {
    return (call: ServerUnaryCall<Req, Res>, callback: sendUnaryData<Res>) => {
      let tenant: string;
      try { tenant = this.tenantOf(call); } catch (err) { callback(err as Error); return; }
      fn(call.request, tenant).then((res) => callback(null, res), (err: Error & { code?: number }) => callback(err.code !== undefined ? err : serviceError(status.INTERNAL, err.message)));
    };
  }

  private handlers(): buildkit.ControlServer {
    return {
      session: (call: ServerDuplexStream<buildkit.BytesMessage, buildkit.BytesMessage>) => {
        let tenant: string;
        try { tenant = this.tenantOf(call); } catch (err) { call.emit('error', err); return; }
        void this.sessions.handle(call, tenant);
      },
      solve: (call: ServerUnaryCall<buildkit.SolveRequest, buildkit.SolveResponse>, callback: sendUnaryData<buildkit.SolveResponse>) => {
        this.untilStopping(this.solve(call)).then((res) => callback(null, res), (err: Error & { code?: number }) => callback(err.code !== undefined ? err : serviceError(status.UNKNOWN, err.message)));
      },
      status: (call: ServerWritableStream<buildkit.StatusRequest, StatusResponse>) => void this.status(call),
      info: this.unary<buildkit.InfoRequest, buildkit.InfoResponse>(async () => buildkit.InfoResponse.fromPartial({
        buildkitVersion: { package: 'github.com/buildyard/buildyard', version: this.opts.version, revision: '' },
      })),
      listWorkers: this.unary<buildkit.ListWorkersRequest, buildkit.ListWorkersResponse>(async () => buildkit.ListWorkersResponse.fromPartial({
        record: (await this.opts.workers.list()).map((w) => workerRecord(w, this.opts.version)),
      })),
      diskUsage: this.unary<buildkit.DiskUsageRequest, buildkit.DiskUsageResponse>(async (_req, tenant) => buildkit.DiskUsageResponse.fromPartial({
        record: (await this.opts.frontend.diskUsage(tenant)).records.map(usageRecord),
      })),
      prune: (call: ServerWritableStream<buildkit.PruneRequest, buildkit.UsageRecord>) => {
        const req = call.request;
        let tenant: string;
        try { tenant = this.tenantOf(call); } catch (err) { call.emit('error', err); return; }
        // BuildKit's keepDuration is a Go time.Duration (nanoseconds); reservedSpace is buildctl's --keep-storage.
        this.opts.frontend.prune(PruneRequest.fromPartial({ all: req.all, keepStorage: req.reservedSpace, keepDurationMs: Math.floor(req.keepDuration / 1e6), filters: req.filter }), tenant)
          .then((res) => { for (const r of res.removed) call.write(usageRecord(r)); call.end(); },
            (err: Error & { code?: number }) => call.emit('error', err.code !== undefined ? err : serviceError(status.INTERNAL, err.message)));
      },
    };
  }

  /**
   * `wait` for what a client opens alongside a call (its session, its Solve), given up when
   * `signal` aborts or after sessionWaitMs. A timer of our own: an AbortSignal.any() of an
   * AbortSignal.timeout() that nothing else holds was collected unfired, and the wait never ended.
   */
  private async withDeadline<T>(signal: AbortSignal, wait: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const deadline = new AbortController();
    const timer = setTimeout(() => deadline.abort(), this.opts.sessionWaitMs ?? 30_000);
    const onAbort = () => deadline.abort();
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await wait(deadline.signal);
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** The tenant's build `ref`, waiting for its Solve (buildctl calls Status and LLBBridge alongside it). */
  private async waitForJob(tenant: string, ref: string, signal: AbortSignal): Promise<Job | undefined> {
    const key = jobKey(tenant, ref);
    for (;;) {
      const job = this.jobs.get(key);
      if (job || signal.aborted) return job;
      await new Promise<void>((resolve) => {
        const set = this.jobWaiters.get(key) ?? new Set();
        const wake = () => { set.delete(wake); if (set.size === 0) this.jobWaiters.delete(key); signal.removeEventListener('abort', wake); resolve(); };
        set.add(wake);
        this.jobWaiters.set(key, set);
        signal.addEventListener('abort', wake, { once: true });
      });
    }
  }

  private async status(call: ServerWritableStream<buildkit.StatusRequest, StatusResponse>): Promise<void> {
    const gone = new AbortController();
    call.on('cancelled', () => gone.abort());
    let tenant: string;
    try { tenant = this.tenantOf(call); } catch (err) { call.emit('error', err); return; }
    const ref = call.request.Ref;
    const job = await this.withDeadline(gone.signal, (wait) => this.waitForJob(tenant, ref, wait));
    if (!job) {
      if (!gone.signal.aborted) call.emit('error', noBuild(ref));
      return;
    }
    const ended = new Promise<void>((resolve) => { call.once('finish', resolve); call.once('close', resolve); gone.signal.addEventListener('abort', () => resolve(), { once: true }); });
    job.readers.add(ended);
    void ended.then(() => job.readers.delete(ended));
    const queue: StatusResponse[] = [...job.history];
    let finished = job.done;
    let wake: (() => void) | undefined;
    const unsubscribe = job.subscribe((s) => { if (s) queue.push(s); else finished = true; wake?.(); });
    try {
      for (;;) {
        while (queue.length > 0) {
          if (gone.signal.aborted) return;
          if (!call.write(queue.shift()!)) await new Promise<void>((resolve) => { call.once('drain', resolve); gone.signal.addEventListener('abort', () => resolve(), { once: true }); });
        }
        if (finished || gone.signal.aborted) break;
        await new Promise<void>((resolve) => { wake = resolve; gone.signal.addEventListener('abort', () => resolve(), { once: true }); });
        wake = undefined;
      }
      if (!gone.signal.aborted) call.end();
    } finally {
      unsubscribe();
    }
  }

  private async solve(call: ServerUnaryCall<buildkit.SolveRequest, buildkit.SolveResponse>): Promise<buildkit.SolveResponse> {
    const req = call.request;
    const ref = req.Ref || randomUUID();
    // No frontend and no definition: the client runs the build function itself (buildctl and
    // buildx always do) and drives it through LLBBridge on this ref.
    const viaGateway = !req.Frontend && !req.Definition?.def.length;
    try {
      outputsOf(req); // exporters are checked before any transfer
      if (!viaGateway) dockerfileAttrs(req);
    } catch (err) {
      throw err instanceof UnsupportedRequest ? serviceError(status.UNIMPLEMENTED, err.message) : err;
    }
    const tenant = this.tenantOf(call);
    const key = jobKey(tenant, ref);
    if (this.jobs.has(key)) throw serviceError(status.ALREADY_EXISTS, `build ref ${ref.slice(0, 64)} is already in use`);
    const abort = new AbortController();
    const job = new Job(req, tenant, abort.signal, call.metadata);
    this.jobs.set(key, job);
    for (const wake of this.jobWaiters.get(key) ?? []) wake();
    call.on('cancelled', () => abort.abort(new Error('the client went away')));
    try {
      if (!viaGateway) return await this.runDockerfileBuild(ref, job, req);
      const returned = await job.returned;
      if (returned.error && returned.error.code !== 0) {
        throw job.failedAt ? sourceServiceError(returned.error.code, returned.error.message, job.failedAt) : serviceError(returned.error.code, returned.error.message);
      }
      return buildkit.SolveResponse.fromPartial({ ExporterResponse: job.exporterResponse ?? {} });
    } finally {
      abort.abort(new Error('the solve ended'));
      job.finish();
      await job.statusSent(STATUS_FLUSH_BOUND_MS);
      setTimeout(() => { if (this.jobs.get(key) === job) this.jobs.delete(key); }, JOB_LINGER_MS).unref();
    }
  }

  /** The job an LLBBridge call belongs to (its `buildkit-controlapi-buildid` header), waiting for its Solve. */
  private async gatewayJob(call: ServerUnaryCall<unknown, unknown>, signal: AbortSignal): Promise<Job> {
    const { metadata } = call;
    const tenant = this.tenantOf(call);
    const ref = String(metadata.get('buildkit-controlapi-buildid')[0] ?? '');
    if (!ref) throw serviceError(status.INVALID_ARGUMENT, 'LLBBridge call without a buildkit-controlapi-buildid header: use buildctl or docker buildx');
    const job = await this.withDeadline(signal, (wait) => this.waitForJob(tenant, ref, wait));
    if (!job) throw noBuild(ref);
    return job;
  }

  private gatewayHandlers(): gateway.LLBBridgeServer {
    return {
      ping: (call: ServerUnaryCall<gateway.PingRequest, gateway.PongResponse>, callback: sendUnaryData<gateway.PongResponse>) => {
        this.gatewayJob(call, gone(call)).then(async () => gateway.PongResponse.fromPartial({
          FrontendAPICaps: GATEWAY_CAPS.map((ID) => ({ ID, Enabled: true })),
          // buildx sends --attest/--provenance/--sbom (and its default provenance) only to a daemon with this LLB cap.
          LLBCaps: [{ ID: 'exporter.image.attestations', Enabled: true }],
          Workers: (await this.opts.workers.list()).map((w) => workerRecord(w, this.opts.version)),
        })).then((res) => callback(null, res), (err: Error) => callback(err));
      },
      solve: (call: ServerUnaryCall<gateway.SolveRequest, gateway.SolveResponse>, callback: sendUnaryData<gateway.SolveResponse>) => {
        this.untilStopping(this.gatewaySolve(call)).then((res) => callback(null, res), (err: Error & { code?: number }) => callback(err.code !== undefined ? err : serviceError(status.UNKNOWN, err.message)));
      },
      return: (call: ServerUnaryCall<gateway.ReturnRequest, gateway.ReturnResponse>, callback: sendUnaryData<gateway.ReturnResponse>) => {
        this.gatewayJob(call, gone(call)).then((job) => { job.settle(call.request); return gateway.ReturnResponse.fromPartial({}); })
          .then((res) => callback(null, res), (err: Error) => callback(err));
      },
    };
  }

  /** The client's build function asks for the dockerfile.v0 frontend: the whole build runs here. */
  private async gatewaySolve(call: ServerUnaryCall<gateway.SolveRequest, gateway.SolveResponse>): Promise<gateway.SolveResponse> {
    const job = await this.gatewayJob(call, gone(call));
    const g = call.request;
    const req = buildkit.SolveRequest.fromPartial({
      ...job.request, Frontend: g.Frontend, Definition: g.Definition, FrontendInputs: g.FrontendInputs,
      FrontendAttrs: { ...job.request.FrontendAttrs, ...g.FrontendOpt },
    });
    if (job.solving) throw serviceError(status.UNIMPLEMENTED, 'a second solve in one build is not supported: this endpoint builds one Dockerfile per build');
    job.solving = true;
    let platforms: string[];
    try { platforms = dockerfileAttrs(req).platforms; } catch (err) {
      throw err instanceof UnsupportedRequest ? serviceError(status.UNIMPLEMENTED, err.message) : err;
    }
    const ref = String(call.metadata.get('buildkit-controlapi-buildid')[0]);
    // buildx --call/--check (v0.10: --print): the frontend's answer as result metadata, no build.
    if (req.FrontendAttrs.requestid !== undefined) return gateway.SolveResponse.fromPartial({ result: { metadata: await this.answerSubrequest(ref, job, req) } });
    const response = await this.runDockerfileBuild(ref, job, req);
    job.exporterResponse = response.ExporterResponse;
    // The image is already exported: the references name what was built, for the client to return.
    const metadata = { 'containerimage.digest': Buffer.from(response.ExporterResponse['containerimage.digest'] ?? '') };
    if (platforms.length > 1) {
      return gateway.SolveResponse.fromPartial({ result: { refs: { refs: Object.fromEntries(platforms.map((p) => [p, { id: `${ref}/${p}` }])) }, metadata } });
    }
    return gateway.SolveResponse.fromPartial({ result: { ref: { id: ref }, metadata } });
  }

  /** Outputs the client writes itself (tar, oci, docker archives) go back over its session. */
  private async sendClientOutputs(job: Job, ref: string, session: ClientSession, started: StartedBuild, exportVertex: ExportVertex | undefined): Promise<void> {
    const outputs = started.outputs.filter((o) => exporterFor(o).delivery === 'client');
    if (outputs.length === 0) return;
    const images = await started.finished;
    if (!images) throw serviceError(status.INTERNAL, 'the build reported a result but its images are missing');
    const source = clientExportSource(images, this.opts.frontend.blobs, this.opts.frontend.exportDir);
    for (const output of outputs) {
      if (output.type === 'local') {
        await this.internalStep(job, ref, 'exporting to client directory', () => this.sendLocalOutput(session, output, { ...source, hardlinks: true }, job.signal));
        continue;
      }
      const send = output.layoutDir
        ? () => this.sendLayoutBlobs(session, output, source, job.signal)
        : async () => {
          await runExport(output, source, async (file) => {
            await sendFileToClient(session, file.content ?? Readable.from([]), job.signal);
          });
        };
      // oci/docker archives: the phase of BuildKit's "exporting to oci image format" vertex after
      // its layers and manifests; a tar=false layout's copy has no phase of its own.
      if (exportVertex && exporterVertexName(output.type) === exportVertex.name) await (output.layoutDir ? send() : exportVertex.step('sending tarball', send));
      else await this.internalStep(job, ref, exporterVertexName(output.type) ?? 'exporting to client tarball', send);
    }
  }

  /**
   * type=oci|docker,tar=false: the image's blobs go into the client's "export" content store, as
   * BuildKit's exporter copies the chain; the client writes index.json itself from the
   * response's descriptor (client/ociindex), so the layout's own files are not sent.
   */
  private async sendLayoutBlobs(session: ClientSession, output: ParsedOutput, source: ExportSource, signal: AbortSignal): Promise<void> {
    const store = clientContentStore(session, 'export', signal);
    await runExport(output, source, async (file) => {
      const hex = /^blobs\/sha256\/([0-9a-f]{64})$/.exec(file.path)?.[1];
      if (hex) {
        const digest = `sha256:${hex}`;
        await store.write(digest, await source.blobs.size(digest), () => file.content ?? Readable.from([]));
      }
      file.content?.destroy();
    });
  }

  /**
   * type=local: the exporter's files are spooled first (its temporary roots live only while it
   * runs, and the client asks for file contents after it has all the entries), then sent. The
   * spool links the exporter's files, on the same disk, so the content is there once, within the
   * export's budget; only generated files (attestations) are written.
   */
  private async sendLocalOutput(session: ClientSession, output: ParsedOutput, source: ExportSource, signal: AbortSignal): Promise<void> {
    const spool = await mkdtemp(join(await exportScratchDir(source), 'buildyard-bk-local-'));
    try {
      const entries: OutgoingEntry[] = [];
      await runExport(output, source, async (file) => {
        const modTime = file.mtimeNs?.toString();
        if (!file.content) { entries.push({ path: file.path, mode: file.mode, linkTarget: file.linkTarget, hardlinkTo: file.hardlinkTo, size: 0, modTime }); return; }
        const path = join(spool, String(entries.length));
        if (file.sourcePath) await link(file.sourcePath, path);
        else await pipeline(file.content, createWriteStream(path));
        entries.push({ path: file.path, mode: file.mode, size: (await stat(path)).size, source: path, modTime });
      });
      await sendDirToClient(session, entries, signal);
    } finally {
      await rm(spool, { recursive: true, force: true });
    }
  }

  /** Runs a local-loading step as a vertex, so progress shows it as buildkitd does. */
  private async internalStep<T>(job: Job, ref: string, name: string, fn: () => Promise<T>): Promise<T> {
    const digest = internalDigest(ref, name);
    const started = new Date();
    job.push(vertexUpdate({ digest, name, started }));
    try {
      const result = await fn();
      job.push(vertexUpdate({ digest, name, started, completed: new Date() }));
      return result;
    } catch (err) {
      job.push(vertexUpdate({ digest, name, started, completed: new Date(), error: (err as Error).message }));
      throw err;
    }
  }

  /** The Dockerfile, .dockerignore and stored context of a build whose context is the session's local. */
  /** The Dockerfile (and the `NAME.dockerignore` beside it) from the session's dockerfile local, as `[internal] load build definition`. */
  private async loadDockerfile(job: Job, ref: string, attrs: DockerfileAttrs, session: ClientSession): Promise<{ dockerfile: Buffer; dockerfileIgnore: Buffer | undefined }> {
    const dockerignoreName = `${attrs.filename}.dockerignore`;
    const dfFiles = await this.internalStep(job, ref, `[internal] load build definition from ${attrs.filename}`, () =>
      readLocalFiles(session, attrs.dockerfileLocal, [attrs.filename, dockerignoreName], MAX_DOCKERFILE_BYTES, job.signal));
    const dockerfile = dfFiles.get(attrs.filename);
    if (!dockerfile) throw serviceError(status.NOT_FOUND, `failed to read dockerfile: ${attrs.filename} not found in the "${attrs.dockerfileLocal}" local: check --local ${attrs.dockerfileLocal}=DIR and --opt filename`);
    try { checkSyntaxDirective(dockerfile.toString('utf8'), attrs.buildArgs); } catch (err) { throw serviceError(status.UNIMPLEMENTED, (err as Error).message); }
    return { dockerfile, dockerfileIgnore: dfFiles.get(dockerignoreName) };
  }

  private async loadLocalContext(job: Job, ref: string, attrs: DockerfileAttrs, session: ClientSession, tenant: string): Promise<{ dockerfile: Buffer; dockerignore: Buffer | undefined; contextId: string }> {
    const { signal } = job;
    const { dockerfile, dockerfileIgnore } = await this.loadDockerfile(job, ref, attrs, session);
    const dockerignore = dockerfileIgnore ?? await this.internalStep(job, ref, '[internal] load .dockerignore', async () =>
      (await readLocalFiles(session, attrs.contextLocal, ['.dockerignore'], MAX_DOCKERFILE_BYTES, signal)).get('.dockerignore'));
    const excludes = dockerignore ? parseDockerignore(dockerignore.toString('utf8')) : [];
    const syncKey = `${tenant}\0${session.sharedKey}\0${attrs.contextLocal}`;
    const contextStep = '[internal] load build context';
    const stored = await this.internalStep(job, ref, contextStep, async () => {
      const started = new Date();
      const result = await this.opts.frontend.contextWrite(() => receiveLocalToStore(session, attrs.contextLocal, { excludePatterns: excludes }, this.opts.frontend.contexts, tenant, this.previousSyncs.get(syncKey), signal));
      // As buildkitd reports a local's transfer; only content is counted, so an unchanged context sends 0B.
      job.push(buildkit.StatusResponse.fromPartial({
        statuses: [{ ID: `transferring ${attrs.contextLocal}:`, vertex: internalDigest(ref, contextStep), name: `transferring ${attrs.contextLocal}:`, current: result.bytesReceived, timestamp: new Date(), started, completed: new Date() }],
      }));
      return result;
    });
    // Most recently used last; the oldest are forgotten (they only cost a full re-send).
    this.previousSyncs.delete(syncKey);
    this.previousSyncs.set(syncKey, stored.stats);
    while (this.previousSyncs.size > MAX_REMEMBERED_SYNCS) this.previousSyncs.delete(this.previousSyncs.keys().next().value!);
    return { dockerfile, dockerignore, contextId: stored.contextId };
  }

  /**
   * A git or http(s) context: the frontend fetches it under the tenant's network policy (see
   * @buildyard/control remoteContexts), shown as buildkitd's "[internal] load git source" or
   * "[internal] load remote build context" step.
   * The Dockerfile is the repository's, unless `dockerfilekey` names a local (as dockerui).
   */
  private async loadGitContext(job: Job, ref: string, attrs: DockerfileAttrs, session: ClientSession, tenant: string): Promise<{ dockerfile: Buffer; dockerignore: Buffer | undefined; contextId: string }> {
    const { signal } = job;
    let local: Buffer | undefined;
    if (attrs.forceLocalDockerfile) {
      local = (await this.internalStep(job, ref, `[internal] load build definition from ${attrs.filename}`, () =>
        readLocalFiles(session, attrs.dockerfileLocal, [attrs.filename], MAX_DOCKERFILE_BYTES, signal))).get(attrs.filename);
      if (!local) throw serviceError(status.NOT_FOUND, `failed to read dockerfile: ${attrs.filename} not found in the "${attrs.dockerfileLocal}" local: check --local ${attrs.dockerfileLocal}=DIR and --opt filename`);
    }
    const steps: SourceProgress = {
      started: async (v, startedMs) => { job.push(vertexUpdate({ digest: internalDigest(ref, v.name), name: v.name, started: new Date(startedMs) })); },
      cached: async (v) => { job.push(vertexUpdate({ digest: internalDigest(ref, v.name), name: v.name, cached: true })); },
      finished: async (v, startedMs) => { job.push(vertexUpdate({ digest: internalDigest(ref, v.name), name: v.name, started: new Date(startedMs), completed: new Date() })); },
      failed: async (v, startedMs, error) => { job.push(vertexUpdate({ digest: internalDigest(ref, v.name), name: v.name, started: new Date(startedMs), completed: new Date(), error })); },
    };
    let got: Awaited<ReturnType<RemoteContexts['gitBuildContext']>>;
    // As BuildKit's Dockerfile frontend (dockerui: a git or http context gets no exclude
    // patterns, in v0.11 and still upstream): the whole checkout or archive is the context.
    const common = { dockerfileName: attrs.filename, ...(local ? { dockerfile: local } : {}), ignoreDockerignore: true };
    try {
      got = attrs.contextIsHttp
        ? await this.opts.frontend.remoteContexts.httpBuildContext(tenant, attrs.contextUrl, common, steps, signal)
        : await this.opts.frontend.remoteContexts.gitBuildContext(tenant, attrs.contextUrl, { ...common, keepGitDir: keepGitDirArg(attrs.buildArgs) }, steps, signal);
    } catch (err) {
      throw err instanceof RemoteContextError ? serviceError(status.FAILED_PRECONDITION, err.message) : err;
    }
    try { checkSyntaxDirective(got.dockerfile.toString('utf8'), attrs.buildArgs); } catch (err) { throw serviceError(status.UNIMPLEMENTED, (err as Error).message); }
    return { dockerfile: got.dockerfile, dockerignore: got.dockerignore.length > 0 ? got.dockerignore : undefined, contextId: got.contextId };
  }

  /**
   * `context:NAME=local:LOCAL` (buildx --build-context NAME=DIR): the session's local, synced into
   * the context store with its own .dockerignore, becomes Buildyard's `local:<context id>`;
   * `oci-layout://STORE@DIGEST` (buildx --build-context NAME=oci-layout://DIR) is read from the
   * client's content store into a stored layout (sessionLayout.ts); docker-image:// and git URLs
   * go to the frontend as they are.
   */
  private async loadNamedContexts(job: Job, ref: string, attrs: DockerfileAttrs, session: ClientSession, tenant: string): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(attrs.namedContexts)) {
      if (isSessionLayout(value)) {
        out[name] = await this.internalStep(job, ref, `[context ${name}] load from client`, () => loadSessionLayout(session, value, job.signal,
          (dir) => this.opts.frontend.contextWrite(async () => (await storeDirectory(this.opts.frontend.contexts, dir, { tenant })).contextId),
          this.opts.frontend.contexts.maxContextBytes));
        continue;
      }
      if (!value.startsWith('local:')) { out[name] = value; continue; }
      const local = value.slice('local:'.length);
      const step = `[internal] load build context ${local}`;
      const stored = await this.internalStep(job, ref, step, async () => {
        const ignore = (await readLocalFiles(session, local, ['.dockerignore'], MAX_DOCKERFILE_BYTES, job.signal)).get('.dockerignore');
        return this.opts.frontend.contextWrite(() => receiveLocalToStore(session, local, { excludePatterns: ignore ? parseDockerignore(ignore.toString('utf8')) : [] }, this.opts.frontend.contexts, tenant, undefined, job.signal));
      });
      out[name] = `local:${stored.contextId}`;
    }
    return out;
  }

  /**
   * A subrequest (`requestid`: buildx --call=outline|targets|check, v0.10's --print), answered as
   * BuildKit's Dockerfile frontend answers it: from the Dockerfile alone (a local context is not
   * transferred), as result metadata. A name it does not know fails as errdefs'
   * UnsupportedSubrequestError does ("unsupported request NAME"), before anything is read.
   */
  private async answerSubrequest(ref: string, job: Job, req: buildkit.SolveRequest): Promise<Record<string, Buffer>> {
    const name = req.FrontendAttrs.requestid ?? '';
    if (!(SUBREQUESTS as readonly string[]).includes(name)) throw serviceError(status.UNIMPLEMENTED, `unsupported request ${name.slice(0, 100)}`);
    let attrs: DockerfileAttrs;
    try { attrs = dockerfileAttrs(req); } catch (err) {
      throw err instanceof UnsupportedRequest ? serviceError(status.UNIMPLEMENTED, err.message) : err;
    }
    let dockerfile: Buffer = Buffer.alloc(0);
    if (name !== 'frontend.subrequests.describe') {
      const session = await this.withDeadline(job.signal, (wait) => this.sessions.get(req.Session, job.tenant, wait)).catch((err: Error) => { throw serviceError(status.FAILED_PRECONDITION, err.message); });
      dockerfile = attrs.contextUrl
        ? (await this.loadGitContext(job, ref, attrs, session, job.tenant)).dockerfile
        : (await this.loadDockerfile(job, ref, attrs, session)).dockerfile;
    }
    try {
      return subrequestMetadata(answerSubrequest(name, { dockerfile: dockerfile.toString('utf8'), dockerfileName: attrs.filename, target: attrs.target, buildArgs: attrs.buildArgs }));
    } catch (err) {
      if (err instanceof SubrequestError || err instanceof DockerfileError) throw serviceError(status.INVALID_ARGUMENT, err.message);
      throw err;
    }
  }

  /** Loads the locals over the session, then builds on the fleet; resolves with the exporter response. */
  private async runDockerfileBuild(ref: string, job: Job, req: buildkit.SolveRequest): Promise<buildkit.SolveResponse> {
    if (req.FrontendAttrs.requestid !== undefined) {
      // buildctl --opt requestid=...: the answer in the exporter response (no build, no export).
      const metadata = await this.answerSubrequest(ref, job, req);
      return buildkit.SolveResponse.fromPartial({ ExporterResponse: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, v.toString('utf8')])) });
    }
    const { signal } = job;
    const { tenant } = job;
    let attrs: ReturnType<typeof dockerfileAttrs>;
    let caches: ReturnType<typeof sessionCaches>;
    try { attrs = dockerfileAttrs(req); caches = sessionCaches(req); } catch (err) {
      throw err instanceof UnsupportedRequest ? serviceError(status.UNIMPLEMENTED, err.message) : err;
    }
    const session = await this.withDeadline(signal, (wait) => this.sessions.get(req.Session, tenant, wait)).catch((err: Error) => { throw serviceError(status.FAILED_PRECONDITION, err.message); });
    for (const key of unknownAttrs(req)) this.log.info({ ref, key }, 'ignoring an unknown frontend attribute');
    const { dockerfile, dockerignore, contextId } = attrs.contextUrl
      ? await this.loadGitContext(job, ref, attrs, session, tenant)
      : await this.loadLocalContext(job, ref, attrs, session, tenant);

    let secretIdsUsed: string[] = [];
    let sshIdsUsed: string[] = [];
    // A Dockerfile that does not parse fails in the planner with its own message and location.
    try { secretIdsUsed = secretIds(dockerfile.toString('utf8'), attrs.filename); sshIdsUsed = sshIds(dockerfile.toString('utf8'), attrs.filename); } catch { /* reported by the build */ }
    const base = toBuildyardRequest(req, attrs, contextId, dockerfile, dockerignore);
    const registries = registryHosts(dockerfile.toString('utf8'), attrs.filename, attrs.buildArgs, base.outputs, [...base.cacheFrom, ...base.cacheTo]);
    const namedContexts = await this.loadNamedContexts(job, ref, attrs, session, tenant);
    const request = { ...base, namedContexts, secrets: await fetchSecrets(session, secretIdsUsed, signal), registryAuth: await fetchRegistryAuth(session, registries, signal) };
    // BuildKit shows one exporter vertex, its first output's; its phases come from the build's export.
    const exportName = request.outputs.map((o) => exporterVertexName(o.type)).find(Boolean);
    const cursor = new StreamCursor();
    let buildId = '';
    const exportVertex = exportName ? new ExportVertex(ref, exportName, (s) => job.push(s), async () => {
      const tail = (await this.opts.redis.xrevrange(progressStreamKey(buildId, this.opts.keys), '+', '-', 'COUNT', 1)) as [string, string[]][];
      // Only for the order of the updates: a stream entry the relay never yields must not hold up the export.
      let timer: NodeJS.Timeout | undefined;
      if (tail.length > 0) await Promise.race([cursor.reach(tail[0][0]), new Promise<void>((resolve) => { timer = setTimeout(resolve, EXPORT_ORDER_WAIT_MS); })]);
      clearTimeout(timer);
    }) : undefined;
    const ssh = await sessionSshAgents(session, sshIdsUsed, signal);
    const cacheDeps: SessionCacheDeps = {
      redis: this.opts.redis, keys: this.opts.keys, blobs: this.opts.frontend.blobs,
      step: (name, fn) => this.internalStep(job, ref, name, () => fn((line) => job.push(buildkit.StatusResponse.fromPartial({
        logs: [{ vertex: internalDigest(ref, name), stream: 1, msg: Buffer.from(`${line}\n`), timestamp: new Date() }],
      })))),
    };
    // Local cache imports are in the index before the build looks a key up.
    for (const im of caches.imports) await importSessionCache(im, session, tenant, cacheDeps, signal);
    const started = await this.opts.frontend.startBuild(tenant, request, { exportStep: exportVertex?.step, ssh });
    buildId = started.buildId;
    const stopOnAbort = () => started.abort.abort(signal.reason instanceof Error ? signal.reason : new Error('the client went away'));
    signal.addEventListener('abort', stopOnAbort, { once: true });
    const translator = new StatusTranslator(attrs.platforms.length > 1);
    // The line of the first step that failed: the build's error points there (buildx's excerpt).
    let failedLine: number | undefined;
    try {
      for await (const event of readProgress(this.opts.redis, started.buildId, { fromStart: true, signal, keys: this.opts.keys })) {
        if (event.type === 'vertex.finished' && isBaseImageVertex(event.vertex)) job.push(resolveStatus(event.vertex, event.startedMs, event.completedMs));
        const update = translator.translate(event);
        if (update) job.push(update);
        cursor.advance(event.streamId);
        if (event.type === 'vertex.error' && !event.vertex.name.startsWith('importing cache manifest from ')) failedLine ??= event.vertex.line;
        if (event.type === 'build.result') {
          await this.sendClientOutputs(job, ref, session, started, exportVertex);
          exportVertex?.complete();
          const cacheManifest = await sendSessionCaches(caches.exports, started, session, cacheDeps, signal);
          const md: Record<string, string> = { ...event.metadata, ...(cacheManifest ? { 'cache.manifest': cacheManifest } : {}) };
          return buildkit.SolveResponse.fromPartial({
            ExporterResponse: {
              ...md,
              // BuildKit sends the descriptor base64-encoded (buildx decodes it so).
              ...(md['containerimage.descriptor'] ? { 'containerimage.descriptor': Buffer.from(md['containerimage.descriptor']).toString('base64') } : {}),
            },
          });
        }
        if (event.type === 'build.error') {
          exportVertex?.complete();
          const where = event.file ? `${event.file}${event.line ? `:${event.line}` : ''}: ` : '';
          const message = translator.firstError ?? event.message;
          const full = message.startsWith(where) ? message : `${where}${message}`;
          // With the failing instruction's line, buildx prints its Dockerfile excerpt as for buildkitd.
          const line = event.line ?? (translator.firstError ? failedLine : undefined);
          if (line) {
            job.failedAt = { filename: attrs.filename, data: dockerfile, startLine: line, endLine: instructionEndLine(dockerfile, line) };
            throw sourceServiceError(status.UNKNOWN, full, job.failedAt);
          }
          throw serviceError(status.UNKNOWN, full);
        }
      }
    } finally {
      signal.removeEventListener('abort', stopOnAbort);
      cursor.end();
    }
    throw serviceError(status.CANCELLED, signal.aborted ? 'the build was cancelled: the client went away' : 'the build ended without a result');
  }
}
