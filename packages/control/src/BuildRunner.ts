import type { RedisClient as Redis } from '@buildyard/contracts';
import { SpanStatusCode, trace, type Span } from '@opentelemetry/api';
import { injectTraceContext, metrics, type Logger } from '@buildyard/telemetry'; // metrics
import { checkSyntax, parse, planBuild, DockerfileError, type NamedContextSource } from '@buildyard/dockerfile';
import { targetStage, type BuildPlan } from '@buildyard/graph';
import { Annotations, LAYOUT_REF_PREFIX, ProvenBlobs, RegistryClient, RepositoryRefusedError, credentialsFromLogins, formatReference, parseReference, type Credentials, type Descriptor, type FsContentStore, type RepositoryPolicy, type TenantRegistryNetworks } from '@buildyard/oci';
import { ProgressWriter, internalDigest, type VertexRef } from '@buildyard/progress';
import type { Scheduler } from '@buildyard/scheduler';
import { assembleImage, assembleIndex, registryImageResolver, withAnsweredInputs, type AssembledImage, type StageResult } from '@buildyard/solver';
import type { SolveRequest } from '@buildyard/proto';
import type { ContextEntry, ContextStore } from '@buildyard/context';
import { fromRedis, stageResultSchema, type BuildRecords, type BuildSecrets, type RedisKeys, type StagePayload } from '@buildyard/contracts';
import { allowedEntitlements, missingEntitlement, type Entitlement } from './entitlements.js';
import { parseRunStepOptions, type RunStepOptions } from './runStepOptions.js';
import { outputAnnotations } from './outputAnnotations.js';
import { announceBaseImages } from './baseImageVertices.js';
import { RemoteContextError, type RemoteContexts } from './remoteContexts.js';
import { archiveCreated, exporterFor, goBool, imageEpochs, layerCompression, ociArtifact, ociMediaTypes, parseOutputs, runExport, unreportedStep, type ExportSource, type ExportStep, type ParsedOutput } from './exporters/index.js';
import { frontendAttrsOf, makeAttestations, parseAttests, wantsAttestations, type AttestationOptions, type BuildAttestations, type ImageSourceRecord } from './exporters/index.js';
import { compressLayers } from './exporters/compressLayers.js';
import { layoutAwareResolver } from './layoutImages.js';
import { parseCacheOptions, importCache, exportCache, inlineCacheAnnotations, releaseCacheLeases, type CacheOptions } from './cacheTransfer.js';
import { HandedOff, type BuildRequests } from './buildTakeover.js';
import { ResolvedBases, resultsFromCache } from './cachedBuild.js';
import { holdBlobWrites, holdContexts, type CacheWriteResult } from '@buildyard/cache';

export type { StagePayload } from '@buildyard/contracts';

/** A fetched or named context whose grant the context GC dropped between its check and the build's hold on it. */
const CONTEXT_COLLECTED = 'a context of this build was garbage-collected as it started: run the build again';

export interface RunOptions {
  /** The build was coordinated by a frontend that is gone: its stages may already be submitted. */
  resume?: boolean;
  /** Aborted when this frontend hands the build to another one (it stops without recording an end). */
  handoff?: AbortSignal;
}

export interface BuildRunnerDeps {
  redis: Redis;
  keys: RedisKeys;
  log?: Logger;
  scheduler: Scheduler;
  records: BuildRecords;
  secrets: BuildSecrets;
  contexts: ContextStore;
  blobs: FsContentStore;
  insecureRegistries: string[];
  /** The network policy of the registries a tenant's builds name (the workers' egress rules, but
   *  for trusted registries); absent, nothing is refused. */
  registryNetworks?: TenantRegistryNetworks;
  /** The registry repositories a tenant's builds may use (registry.tenantScoped, the blob store's); absent, any. */
  repositories?: RepositoryPolicy;
  buildPlatform: string;
  maxLogBytesPerStep: number;
  /** What the tenant may use of network.host and security.insecure (none when absent). */
  entitlements?(tenant: string): ReadonlySet<Entitlement>;
  /** Fetches contexts given as a URL (git); builds with one fail without it. */
  remoteContexts?: RemoteContexts;
  /** Where the requests of running builds are kept for a takeover; removed when a build ends. */
  requests?: BuildRequests;
}

export interface FinishedImages {
  images: AssembledImage[];
  index?: ReturnType<typeof assembleIndex>;
  digest: string;
  /** --cache-to type=local exports, streamed to the client (index: position in cache_to). */
  localCaches?: Array<{ index: number; layout: NonNullable<CacheWriteResult['layout']> }>;
  /** Provenance/SBOM (--attest): attestation manifests are in `index`; local/tar outputs write the predicates. */
  attestations?: BuildAttestations;
  /** The SOURCE_DATE_EPOCH build arg as given: local/tar outputs give every entry that time. */
  sourceDateEpoch?: string;
}

/** What a client-delivered export (type=local/tar, to Buildyard's or BuildKit's clients) reads of a finished build. */
export function clientExportSource(images: FinishedImages, blobs: ExportSource['blobs'], scratchDir?: string): ExportSource {
  return { images: images.images, index: images.index, blobs, attestations: images.attestations, sourceDateEpoch: images.sourceDateEpoch, scratchDir };
}

const tracer = trace.getTracer('buildyard-frontend');

export class BuildFailure extends Error {
  constructor(message: string, readonly details: { file?: string; line?: number; code?: string } = {}) {
    super(message);
  }
}

/**
 * Pushed names and registry cache refs the tenant may not use (RepositoryPolicy) fail the build
 * before any work, naming the flag; a refused --cache-from too, where a cache that cannot be
 * read is only a warning: the user named a repository that is not theirs.
 */
function checkNamedRepositories(policy: RepositoryPolicy, tenant: string, outputs: ParsedOutput[], cache: CacheOptions): void {
  try {
    for (const o of outputs) if (o.push) for (const name of o.names) policy.check(tenant, name, 'push', `--output name=${name} (-t)`);
    for (const spec of cache.from) if (spec.type === 'registry') policy.check(tenant, spec.ref, 'pull', `--cache-from ref=${spec.ref}`);
    for (const spec of cache.to) if (spec.type === 'registry') policy.check(tenant, spec.ref, 'push', `--cache-to ref=${spec.ref}`);
  } catch (err) {
    if (err instanceof RepositoryRefusedError) throw new BuildFailure(err.message, { code: 'registry.refused' });
    throw err;
  }
}

/** Why a build's signal was aborted: the reason Cancel or the relay gave, else a generic one. */
function abortReason(signal: AbortSignal): string {
  return signal.reason instanceof Error && signal.reason.name !== 'AbortError' ? signal.reason.message : 'the client went away';
}

/** The image references the target stages are built on (their FROM chains end in these). */
function baseImagesOf(plan: BuildPlan): string[] {
  const refs = new Set<string>();
  for (const p of plan.platforms) {
    let stage = targetStage(p);
    while (stage?.base.kind === 'stage') stage = p.stages.find((s) => s.id === (stage!.base as { stageId: string }).stageId);
    // A layout's image is in no registry to mount from.
    if (stage?.base.kind === 'image' && !stage.base.ref.startsWith(LAYOUT_REF_PREFIX)) refs.add(stage.base.ref);
  }
  return [...refs];
}

/**
 * The planner's resolver, shown as BuildKit shows resolving a base image's config while planning:
 * an "[internal] load metadata for NAME" vertex (NAME fully qualified, as dockerfile2llb names it),
 * one per image and platform (the planner resolves each pair once).
 */
function announcingResolver(resolve: ReturnType<typeof registryImageResolver>, progress: ProgressWriter, buildId: string): ReturnType<typeof registryImageResolver> {
  return async (ref, platform) => {
    let name = `[internal] load metadata for ${ref}`;
    try {
      // A layout context's image, as dockerui names it: "[context NAME] load metadata for NAME@DIGEST".
      if (ref.startsWith(LAYOUT_REF_PREFIX)) {
        const named = parseReference(ref.slice(LAYOUT_REF_PREFIX.length));
        name = `[context ${formatReference({ ...named, digest: undefined }, { familiar: true }).replace(/:latest$/, '')}] load metadata for ${formatReference(named)}`;
      } else {
        name = `[internal] load metadata for ${formatReference(parseReference(ref))}`;
      }
    } catch { /* the planner reports the invalid reference */ }
    const vertex: VertexRef = { digest: internalDigest(buildId, `${platform} ${name}`), name, platform, stage: '', step: 0, steps: 0, workerId: '', emulated: false };
    const startedMs = Date.now();
    // The resolution does not wait for the event's reply (the writer appends events in call
    // order); its failure is thrown below, with the finished event's.
    const announced = progress.emit({ type: 'vertex.started', vertex, startedMs, timestampMs: startedMs });
    announced.catch(() => undefined);
    try {
      const image = await resolve(ref, platform);
      const completedMs = Date.now();
      await Promise.all([announced, progress.emit({ type: 'vertex.finished', vertex, startedMs, completedMs, durationMs: completedMs - startedMs, timestampMs: completedMs })]);
      // The FROM step's name: the reference with its tag, at the digest the reference itself resolved to.
      let pinnedName: string | undefined;
      try { pinnedName = `${formatReference({ ...parseReference(ref), digest: undefined })}@${image.topDigest}`; } catch { /* the planner reports the invalid reference */ }
      return { ...image, ...(pinnedName ? { pinnedName } : {}) };
    } catch (e) {
      await Promise.all([announced, progress.emit({ type: 'vertex.error', vertex, startedMs, completedMs: Date.now(), error: (e as Error).message ?? String(e), timestampMs: Date.now() })]);
      throw e;
    }
  };
}

/** The planner's resolver, noting each resolution as provenance needs it (the reference as written, what it pinned) and the base's layer chain (a build answered from the cache starts stages from it). */
function recordingResolver(resolve: ReturnType<typeof registryImageResolver>, into: ImageSourceRecord[], bases: ResolvedBases): ReturnType<typeof registryImageResolver> {
  return async (ref, platform) => {
    const image = await resolve(ref, platform);
    into.push({ ref, platform, topDigest: image.topDigest, manifestDigest: image.digest, layerCount: image.config.rootfs?.diff_ids?.length ?? 0 });
    bases.add(image, platform);
    return image;
  };
}

export function registryCredentials(req: SolveRequest): Record<string, Credentials> {
  return credentialsFromLogins(req.registryAuth);
}

/**
 * Runs one accepted build to its end: plan, schedule stages on the fleet, assemble and push
 * the images, and write every step of it to the build's progress stream, which clients relay.
 */
export class BuildRunner {
  /** Blobs of the shared store each tenant's registries have served it (see ProvenBlobs). */
  private readonly provenBlobs = new ProvenBlobs();

  constructor(private readonly deps: BuildRunnerDeps) {}

  /**
   * Runs the build inside a `solve` span; the caller makes the client's trace (if any) active.
   * `resume`: another frontend coordinated it and is gone; its stages may be queued, running or
   * done. `handoff`: this process stops coordinating (a rolling restart) and another frontend
   * takes over: the runner stops before its export without recording an end.
   */
  run(buildId: string, tenant: string, req: SolveRequest, outputs: ParsedOutput[], signal: AbortSignal, step: ExportStep = unreportedStep, opts: RunOptions = {}): Promise<FinishedImages | undefined> {
    return tracer.startActiveSpan('solve', { attributes: { 'buildyard.build_id': buildId, 'buildyard.tenant': tenant, 'buildyard.platforms': req.platforms.join(','), 'buildyard.resumed': Boolean(opts.resume) } }, async (span) => {
      try {
        // Blobs the build writes are leased under its id until it ends (endResources releases them).
        return await holdBlobWrites({ redis: this.deps.redis, keys: this.deps.keys, holder: buildId }, () => this.runTraced(buildId, tenant, req, outputs, signal, span, step, opts));
      } finally {
        span.end();
      }
    });
  }

  private async runTraced(buildId: string, tenant: string, req: SolveRequest, outputs: ParsedOutput[], signal: AbortSignal, span: Span, step: ExportStep, opts: RunOptions): Promise<FinishedImages | undefined> {
    const { handoff, resume } = opts;
    // Planning and waiting for stages stop on either; only `signal` cancels the build.
    const work = handoff ? AbortSignal.any([signal, handoff]) : signal;
    const handedOff = () => Boolean(handoff?.aborted) && !signal.aborted;
    /** Whether this runner recorded the build's end (then it cleans up even when handed off meanwhile). */
    let ended = false;
    const { records, scheduler, secrets } = this.deps;
    // The stream is the build's log in its history: kept as long as its record.
    const progress = new ProgressWriter(this.deps.redis, buildId, { maxLogBytesPerVertex: this.deps.maxLogBytesPerStep, keys: this.deps.keys, ttlSeconds: Math.ceil(records.retentionMs / 1000) });
    const started = Date.now();
    const network = this.deps.registryNetworks?.get(tenant);
    const registry = new RegistryClient({ credentials: registryCredentials(req), insecureHosts: this.deps.insecureRegistries, dockerConfig: false, store: this.deps.blobs, network, proofs: this.provenBlobs.forTenant(tenant), repositories: this.deps.repositories?.guard(tenant) });
    try {
      if (resume) await progress.emit({ type: 'build.warning', message: 'the frontend coordinating this build stopped; another frontend took the build over' });
      else await progress.emit({ type: 'build.accepted', buildId, platforms: req.platforms.length > 0 ? req.platforms : [this.deps.buildPlatform] });
      // Sealed first: a frontend taking the build over reads them back with its request.
      await secrets.put(buildId, {
        secrets: Object.fromEntries(req.secrets.map((s) => [s.id, Buffer.from(s.value).toString('base64')])),
        registryAuth: req.registryAuth.map((a) => ({ registry: a.registry, username: a.username, password: a.password, identityToken: a.identityToken })),
      }, 24 * 3600 * 1000);
      // A Cancel taken before this runner started (by any frontend) ends the build here.
      await this.throwIfCancelRequested(buildId);
      // [cache transfer] specs are validated before any work is done.
      let cacheOptions: ReturnType<typeof parseCacheOptions>;
      try { cacheOptions = parseCacheOptions(req); } catch (err) { throw new BuildFailure((err as Error).message, { code: 'cache.invalid' }); }
      // The repositories the request names (the Dockerfile's are checked as the planner resolves them).
      if (this.deps.repositories) checkNamedRepositories(this.deps.repositories, tenant, outputs, cacheOptions);
      // The client's --allow must be granted to the tenant, whether or not the build uses it (as buildkitd).
      const granted = this.deps.entitlements?.(tenant) ?? new Set<Entitlement>();
      let allowed: ReadonlySet<Entitlement>;
      try { allowed = allowedEntitlements(req.entitlements, granted); } catch (err) { throw new BuildFailure((err as Error).message, { code: 'entitlement.denied' }); }
      let attestOptions: AttestationOptions;
      try { attestOptions = parseAttests(req.attests); } catch (err) { throw new BuildFailure((err as Error).message, { code: 'request.invalid' }); }
      // As BuildKit: an attestation manifest is an OCI artifact, which Docker's media types cannot hold.
      if (!ociMediaTypes(outputs) && wantsAttestations(attestOptions, outputs)) {
        throw new BuildFailure('cannot export attestations with "oci-mediatypes=false": drop oci-mediatypes=false, or build without attestations (--provenance=false, and no --sbom)', { code: 'request.invalid' });
      }
      const multiPlatform = multiPlatformRequested(req);
      let runOptions: RunStepOptions;
      try { runOptions = parseRunStepOptions(req); } catch (err) { throw new BuildFailure((err as Error).message, { code: 'request.invalid' }); }
      let namedContexts: Record<string, NamedContextSource> = {};
      if (req.contextUrl || Object.keys(req.namedContexts).length > 0) {
        if (!this.deps.remoteContexts) throw new BuildFailure('this frontend does not fetch remote or named contexts: pass a directory', { code: 'context.remote' });
        try {
          if (req.contextUrl) req = await this.deps.remoteContexts.resolveBuildContext(req, tenant, progress, work);
          namedContexts = await this.deps.remoteContexts.namedContexts(req, tenant, progress, work);
          const held = Object.values(namedContexts).flatMap((c) => (c.kind === 'context' ? [c.contextId] : c.layout ? [c.layout.contextId] : []));
          if ((await this.holdContexts(buildId, tenant, held)).length > 0) throw new BuildFailure(CONTEXT_COLLECTED, { code: 'context.remote' });
        } catch (err) {
          if (err instanceof RemoteContextError) throw new BuildFailure(err.message, { code: 'context.remote' });
          throw err;
        }
      }
      const imageSources: ImageSourceRecord[] = [];
      const bases = new ResolvedBases();
      const epochs = imageEpochs(outputs, req.buildArgs?.SOURCE_DATE_EPOCH);
      const plan = await tracer.startActiveSpan('plan', async (planSpan) => {
        try { return await this.plan(req, tenant, registry, work, runOptions, imageSources, bases, namedContexts, progress, epochs.layers); } finally { planSpan.end(); }
      });
      const missing = missingEntitlement(plan, req.network, allowed, granted);
      if (missing) throw new BuildFailure(missing.message, { file: req.dockerfileName || 'Dockerfile', line: missing.line, code: 'entitlement.denied' });
      for (const w of plan.warnings) await progress.emit({ type: 'build.warning', message: w.message, file: req.dockerfileName || 'Dockerfile', line: w.line });
      const cacheCtx = { redis: this.deps.redis, keys: this.deps.keys, tenant, buildId, blobs: this.deps.blobs, contexts: this.deps.contexts, registry, signal };
      // [cache transfer] imported records must be in the index before any worker looks keys up.
      await importCache(cacheOptions.from, cacheCtx, progress);
      await records.update(buildId, { status: 'running' });
      const stageCount = plan.platforms.reduce((n, p) => n + p.stages.length, 0);
      // A Cancel (or the client leaving) while planning: the scheduler never hears of this build.
      if (signal.aborted) throw new BuildFailure(abortReason(signal), { code: 'build.cancelled' });
      if (handedOff()) throw new HandedOff();
      // A Cancel another frontend took while this one planned, in case its notice was missed.
      await this.throwIfCancelRequested(buildId);
      await announceBaseImages(plan, progress, buildId);
      // Taken over: the scheduler already has the stages the first coordinator submitted.
      const scheduled = resume ? await scheduler.getBuild(buildId) : null;
      const submitted = Boolean(scheduled);
      // Stages whose every step is in the cache are answered here, as buildkitd answers them,
      // without the scheduler or a worker; only the others (and those after them) are scheduled.
      // A takeover answers again those the scheduler never had, and waits for the ones it has
      // even if the cache now holds them too (the scheduler runs them regardless).
      const answered = await resultsFromCache(plan, req.noCache, {
        redis: this.deps.redis, keys: this.deps.keys, tenant, buildId, blobs: this.deps.blobs, bases,
        scheduled: new Set(scheduled?.stages.map((s) => `${s.platform}|${s.stageId}`)),
      }, progress);
      const results = answered.size === stageCount && !submitted ? answered : new Map([...answered, ...await this.runOnFleet(buildId, tenant, req, plan, answered, signal, handoff, submitted)]);
      // A takeover plans again: a base image tag that moved since the first plan names other stages.
      if (plan.platforms.some((p) => !results.has(`${p.platform}|${p.target}`))) {
        throw new BuildFailure('the build\'s plan changed when another frontend took it over (a base image tag moved?): run the build again', { code: 'build.resumed' });
      }
      // SOURCE_DATE_EPOCH (a build arg, as in buildx) or an image output's source-date-epoch
      // clamps `created`; without either the times come from the layers' cache records, so a
      // rebuild that changes nothing has the same digests.
      const created = epochs.image !== undefined ? new Date(epochs.image * 1000).toISOString() : undefined;
      // [cache transfer] type=inline: records go into each platform manifest's annotations.
      // Export phases are named as BuildKit's image exporter names them (`step` times them for a front door that shows them).
      const annotate = outputAnnotations(req.outputs);
      const ociTypes = ociMediaTypes(outputs);
      const images = await step('exporting layers', async () => {
        // Each platform's image is its target stage's result, its layers as the outputs' compression= asks.
        const compression = layerCompression(outputs);
        const targets = new Map(await Promise.all(plan.platforms.map(async (p) => {
          const result = results.get(`${p.platform}|${p.target}`)!;
          return [p.platform, compression ? await compressLayers(result, compression, targetStage(p)?.baseHistory ?? 0, this.deps.blobs) : result] as const;
        })));
        const inline = await inlineCacheAnnotations(cacheOptions.to, plan, cacheCtx, (platform) => targets.get(platform)!.layers.map((l) => l.digest), results);
        return plan.platforms.map((p) => {
          const annotations = { ...annotate.manifest(p.platform), ...inline?.get(p.platform) };
          return assembleImage(targets.get(p.platform)!, {
            created, baseHistory: targetStage(p)?.baseHistory, annotations: Object.keys(annotations).length ? annotations : undefined, ociTypes, rewrittenTimestamp: epochs.layers,
            targetPlatform: req.platforms.length > 0 ? p.platform : undefined,
          });
        });
      });
      // With attestations even one platform's image is an index (as BuildKit): the attestation manifests follow the images.
      const attestations = wantsAttestations(attestOptions, outputs) ? await makeAttestations({
        options: attestOptions, ociArtifact: ociArtifact(outputs), plan, blobs: this.deps.blobs, step,
        result: (platform, stageId) => results.get(`${platform}|${stageId}`),
        names: [...new Set(outputs.filter((o) => o.type !== 'local' && o.type !== 'tar').flatMap((o) => o.names))],
        build: {
          buildId, startedOn: new Date(started), finishedOn: new Date(), frontendAttrs: frontendAttrsOf(req), builderPlatform: this.deps.buildPlatform,
          dockerfileName: req.dockerfileName || 'Dockerfile', dockerfile: req.dockerfile, images: imageSources,
        },
      }, images) : undefined;
      const indexed = attestations ? [...images, ...attestations.images] : images;
      const index = indexed.length > 1 || multiPlatform ? assembleIndex(indexed, Object.keys(annotate.index).length ? annotate.index : undefined, ociTypes) : undefined;
      // Every document is written at once (each put waits for its fsync, and the disk's journal
      // commits them together); the steps still report them one by one, in BuildKit's order.
      const written = new Map<string, Promise<unknown>>();
      for (const doc of [...images.flatMap((i) => [i.manifest, i.config]), ...(index ? [index] : [])]) {
        if (written.has(doc.descriptor.digest)) continue;
        const put = this.deps.blobs.put(doc.bytes, doc.descriptor.digest);
        put.catch(() => undefined); // thrown by its step; no step runs after an earlier one failed
        written.set(doc.descriptor.digest, put);
      }
      const store = (kind: string, doc: { descriptor: { digest: string } }) => step(`exporting ${kind} ${doc.descriptor.digest}`, () => written.get(doc.descriptor.digest)!);
      for (const image of images) {
        await store('manifest', image.manifest);
        await store('config', image.config);
      }
      if (index) await store('manifest list', index);
      const digest = index ? index.descriptor.digest : images[0].manifest.descriptor.digest;
      const pushed: string[] = [];
      for (const output of outputs) {
        if (exporterFor(output).delivery === 'build') pushed.push(...await runExport(output, { images, index, blobs: this.deps.blobs, registry, baseImages: baseImagesOf(plan), step, attestations }));
        // metrics: layer bytes of every image, once per pushed name (blobs the registry already had included)
        if (output.push) metrics.bytesPushed.inc(output.names.length * images.reduce((n, i) => n + i.layers.reduce((m, l) => m + l.size, 0), 0));
      }
      // [cache transfer] type=registry / type=local exports.
      const localCaches = (await exportCache(cacheOptions.to, plan, cacheCtx, results, progress)).flatMap((r) => (r.layout ? [{ index: r.index, layout: r.layout }] : []));
      const verticesTotal = [...results.values()].reduce((n, r) => n + (r?.verticesTotal ?? 0), 0);
      const verticesCached = [...results.values()].reduce((n, r) => n + (r?.verticesCached ?? 0), 0);
      await records.update(buildId, { status: 'succeeded', finishedMs: Date.now(), digest, pushed, verticesTotal, verticesCached });
      ended = true;
      metrics.buildsTotal.inc({ status: 'succeeded' }); // metrics
      await progress.emit({
        type: 'build.result', buildId, digest, pushed, verticesTotal, verticesCached, durationMs: Date.now() - started,
        images: images.map((i) => ({ platform: i.platform, manifestDigest: i.manifest.descriptor.digest, configDigest: i.config.descriptor.digest })),
        metadata: {
          'containerimage.digest': digest,
          'containerimage.descriptor': JSON.stringify(answeredDescriptor(index ? index.descriptor : images[0].manifest.descriptor, outputs, req.buildArgs?.SOURCE_DATE_EPOCH)),
          ...(outputs.some((o) => o.names.length) ? { 'image.name': outputs.flatMap((o) => o.names).join(',') } : {}),
          'buildyard.stages': String(stageCount),
        },
      });
      return { images, index, digest, localCaches, attestations, sourceDateEpoch: req.buildArgs?.SOURCE_DATE_EPOCH };
    } catch (err) {
      // Handed off before its end was recorded: the next coordinator runs the rest (export included).
      if (handedOff() && !ended) return undefined;
      // Aborted work fails in whatever step it was (planning reports a Dockerfile error): say why it stopped.
      const failure = signal.aborted ? new BuildFailure(abortReason(signal), { code: 'build.cancelled' }) : err instanceof DockerfileError
        ? new BuildFailure(err.message, { file: err.file ?? (req.dockerfileName || 'Dockerfile'), line: err.line, code: 'dockerfile.parse' })
        : err instanceof BuildFailure ? err : new BuildFailure((err as Error).message);
      const cancelled = signal.aborted || failure.details.code === 'build.cancelled';
      span.setStatus({ code: SpanStatusCode.ERROR, message: failure.message });
      await records.update(buildId, { status: cancelled ? 'cancelled' : 'failed', finishedMs: Date.now(), error: failure.message });
      ended = true;
      metrics.buildsTotal.inc({ status: cancelled ? 'cancelled' : 'failed' }); // metrics
      await progress.emit({ type: 'build.error', message: failure.message, file: failure.details.file, line: failure.details.line, code: failure.details.code ?? 'build.failed' });
      return undefined;
    } finally {
      if (handedOff() && !ended) {
        // The frontend taking over needs the secrets, leases and the open stream.
        await progress.flush();
      } else {
        await this.deps.requests?.delete(buildId).catch((err: Error) => this.deps.log?.warn({ buildId, err: err.message }, 'removing the build\'s stored request failed'));
        await this.endResources(buildId, progress);
      }
    }
  }

  /**
   * Submits the build's stages the frontend did not answer (`answered`, keyed `platform|stageId`)
   * to the scheduler, unless a takeover found them there, and waits for their results. An answered
   * stage a scheduled one reads travels in that one's plan (the scheduler hands over only the
   * results of stages it ran).
   */
  private async runOnFleet(buildId: string, tenant: string, req: SolveRequest, plan: BuildPlan, answered: ReadonlyMap<string, StageResult>, signal: AbortSignal, handoff: AbortSignal | undefined, submitted: boolean): Promise<Map<string, StageResult>> {
    const { records, scheduler } = this.deps;
    if (!submitted) await scheduler.submitBuild({
      buildId, tenant, priority: 0,
      // Workers continue this trace: the context travels inside every stage job.
      traceContext: injectTraceContext(),
      platforms: plan.platforms.map((p) => ({
        platform: p.platform,
        stages: p.stages.filter((s) => !answered.has(`${p.platform}|${s.id}`)).map((s) => ({
          id: s.id, dependsOn: s.dependsOn.filter((d) => !answered.has(`${p.platform}|${d}`)),
          // A stage executes on its own platform (FROM --platform=$BUILDPLATFORM runs on the build
          // platform): that decides its queue; the group platform stays its identity.
          runPlatform: s.platform,
          // Dedupe only within a tenant, and never for --no-cache stages.
          cacheKey: req.noCache || s.noCache ? '' : `${tenant}:${s.cacheKey}`,
          payload: {
            stage: withAnsweredInputs(s, Object.fromEntries(s.dependsOn.flatMap((d) => answered.get(`${p.platform}|${d}`) ?? []).map((r) => [r.stageId, r]))),
            contextId: req.contextId, noCache: req.noCache || s.noCache, network: req.network,
          } satisfies StagePayload,
        })),
      })).filter((p) => p.stages.length > 0),
    });
    const onAbort = () => {
      scheduler.cancelBuild(buildId, abortReason(signal)).catch((err: Error) => this.deps.log?.warn({ buildId, err: err.message }, 'cancelling the build in the scheduler failed'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort(); // aborted between the check above and the listener
    // A Cancel taken elsewhere while submitting found no build in the scheduler: cancel it now.
    else {
      const reason = await records.cancelRequested(buildId);
      if (reason) await scheduler.cancelBuild(buildId, reason);
    }
    const state = await scheduler.waitForBuild(buildId, { signal: handoff }).finally(() => signal.removeEventListener('abort', onAbort));
    if (state.status !== 'done') throw new BuildFailure(state.error || `build ${state.status}`, { code: `build.${state.status}` });
    return new Map(state.stages.map((s) => [`${s.platform}|${s.stageId}`, fromRedis(stageResultSchema, s.result, `the result of stage ${s.stageId} (${s.platform})`)]));
  }

  /** Ends the build as cancelled when a client's Cancel is recorded for it. */
  private async throwIfCancelRequested(buildId: string): Promise<void> {
    const reason = await this.deps.records.cancelRequested(buildId);
    if (reason) throw new BuildFailure(reason, { code: 'build.cancelled' });
  }

  private async endResources(buildId: string, progress: ProgressWriter): Promise<void> {
    await this.deps.secrets.delete(buildId);
    // [cache transfer] leases also expire by themselves; a failed release only delays that.
    await releaseCacheLeases(this.deps.redis, buildId, this.deps.keys).catch((err: Error) => this.deps.log?.warn({ buildId, err: err.message }, 'releasing the build\'s cache leases failed'));
    await progress.close();
  }

  /** Leases contexts for the build (the context GC keeps them); answers those the tenant has no grant for. */
  private holdContexts(buildId: string, tenant: string, ids: string[]): Promise<string[]> {
    return holdContexts({ redis: this.deps.redis, keys: this.deps.keys, store: this.deps.contexts }, buildId, tenant, ids);
  }

  private async plan(req: SolveRequest, tenant: string, registry: RegistryClient, signal: AbortSignal, runOptions: RunStepOptions, imageSources: ImageSourceRecord[], bases: ResolvedBases, namedContexts: Record<string, NamedContextSource>, progress: ProgressWriter, layerEpoch: number | undefined): Promise<BuildPlan> {
    const remote = this.deps.remoteContexts;
    const gitSources = new Map<string, Promise<Extract<NamedContextSource, { kind: 'context' }>>>();
    const text = Buffer.from(req.dockerfile).toString('utf8');
    if (!text.trim()) throw new BuildFailure('the Dockerfile is empty: pass one with -f', { code: 'dockerfile.empty' });
    try { checkSyntax(text, req.buildArgs); } catch (err) { throw new BuildFailure((err as Error).message, { file: req.dockerfileName || 'Dockerfile', line: 1, code: 'dockerfile.syntax' }); }
    const parsed = parse(text, { file: req.dockerfileName || 'Dockerfile' });
    let entries: readonly ContextEntry[] = [];
    if (req.contextId) {
      // Held (leased) for the build, so the context GC keeps it; refused without the tenant's grant.
      if ((await this.holdContexts(progress.buildId, tenant, [req.contextId])).length > 0) throw new BuildFailure(`unknown context ${req.contextId}: sync the context first`, { code: 'context.unknown' });
      // The store's copy: the sync that made it a moment ago left it parsed in memory.
      entries = await this.deps.contexts.manifest(req.contextId);
    }
    return planBuild(parsed, {
      platforms: req.platforms.length > 0 ? req.platforms : [this.deps.buildPlatform],
      buildPlatform: this.deps.buildPlatform,
      buildArgs: req.buildArgs,
      target: req.target || undefined,
      labels: req.labels,
      context: { entries },
      noCache: req.noCache,
      noCacheFilter: req.noCacheFilter,
      layerEpoch,
      dockerfileName: req.dockerfileName || 'Dockerfile',
      resolveImage: recordingResolver(announcingResolver(layoutAwareResolver(registryImageResolver(registry, signal), namedContexts, {
        contexts: this.deps.contexts, blobs: this.deps.blobs, redis: this.deps.redis, keys: this.deps.keys, buildId: progress.buildId,
      }), progress, progress.buildId), imageSources, bases),
      ...runOptions,
      namedContexts,
      ...(remote ? { resolveGit: (url: string, o: { keepGitDir: boolean; checksum?: string }) => {
        // Once per build and URL: every platform's plan copies the same checkout.
        const key = JSON.stringify([url, o.keepGitDir, o.checksum ?? '']);
        let got = gitSources.get(key);
        if (!got) {
          gitSources.set(key, (got = remote.gitSource(tenant, url, o, progress, signal).then(async (source) => {
            if ((await this.holdContexts(progress.buildId, tenant, [source.contextId])).length > 0) throw new BuildFailure(CONTEXT_COLLECTED, { code: 'context.remote' });
            return source;
          })));
        }
        return got;
      } } : {}),
    });
  }
}

export { parseOutputs };

/**
 * The image's descriptor as the build answers it (`containerimage.descriptor`): with an oci or
 * docker output, stamped with its creation time as BuildKit's archive exporters answer it
 * (buildctl writes a tar=false layout's index.json entry from this).
 */
function answeredDescriptor(top: Descriptor, outputs: ParsedOutput[], sourceDateEpoch: string | undefined): Descriptor {
  const archive = outputs.find((o) => o.type === 'oci' || o.type === 'docker');
  return archive ? { ...top, annotations: { ...top.annotations, [Annotations.Created]: archiveCreated(archive, sourceDateEpoch) } } : top;
}

/**
 * dockerui's BUILDKIT_MULTI_PLATFORM (the `multi-platform` attribute): true makes even one
 * platform's image an index of one; false with several platforms is a conflict. Its words.
 */
function multiPlatformRequested(req: SolveRequest): boolean {
  const value = req.buildArgs?.BUILDKIT_MULTI_PLATFORM;
  if (value === undefined || value === '') return false;
  const on = goBool(value);
  if (on === undefined) throw new BuildFailure(`invalid boolean value for multi-platform: ${value.slice(0, 40)}; use true or false`, { code: 'request.invalid' });
  if (!on && req.platforms.length > 1) throw new BuildFailure('conflicting config: returning multiple target platforms is not allowed (BUILDKIT_MULTI_PLATFORM=false with several --platform values)', { code: 'request.invalid' });
  return on;
}
