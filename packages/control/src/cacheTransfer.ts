// The frontend's side of --cache-from / --cache-to: which records a build exports (mode=min:
// each platform's target stage and its FROM-<stage> chain; mode=max: every vertex of every
// stage), importing before scheduling, exporting after the images are assembled.
import type { RedisClient as Redis } from '@buildyard/contracts';
import type { RedisKeys, StageResult } from '@buildyard/contracts';
import {
  BlobLeases, RedisCacheIndex, parseCacheSpecs, readCache, writeCache, INLINE_CACHE_ANNOTATION, inlineCacheAnnotation,
  type CacheIndex, type CacheSpec, type CacheSpecInput, type ExportedCacheRecord, type CacheWriteResult, type CacheReadResult, type LayoutReader,
} from '@buildyard/cache';
import { readManifest, isRegular, type ContextStore } from '@buildyard/context';
import type { BuildPlan, StagePlan } from '@buildyard/graph';
import type { FsContentStore, RegistryClient } from '@buildyard/oci';
import { internalDigest, type ProgressWriter, type VertexRef } from '@buildyard/progress';

export interface CacheOptions {
  from: CacheSpec[];
  to: CacheSpec[];
}

/** Validates the request's cache specs; throws one line naming the bad spec. */
export function parseCacheOptions(req: { cacheFrom: CacheSpecInput[]; cacheTo: CacheSpecInput[] }): CacheOptions {
  return { from: parseCacheSpecs(req.cacheFrom ?? [], 'from'), to: parseCacheSpecs(req.cacheTo ?? [], 'to') };
}

export interface CacheTransferContext {
  redis: Redis;
  /** The deployment's Redis keys (default prefix when absent). */
  keys?: RedisKeys;
  tenant: string;
  buildId: string;
  blobs: FsContentStore;
  /** Where a local --cache-from arrives: the client syncs its directory as a context. */
  contexts?: ContextStore;
  registry: RegistryClient;
  signal?: AbortSignal;
}

/** How long an import's blobs stay leased if the frontend dies before releasing them. */
const LEASE_TTL_MS = 24 * 3600_000;

/** The stages whose vertices an export of `mode` holds, per platform. */
export function stagesForExport(plan: BuildPlan, mode: 'min' | 'max'): StagePlan[] {
  const out: StagePlan[] = [];
  for (const p of plan.platforms) {
    if (mode === 'max') { out.push(...p.stages); continue; }
    const byId = new Map(p.stages.map((s) => [s.id, s]));
    for (let s = byId.get(p.target); s; s = s.base.kind === 'stage' ? byId.get(s.base.stageId) : undefined) out.push(s);
  }
  return out;
}

/** A build's stage results by `${platform}|${stageId}`, as the frontend collects them. */
export type StageResults = ReadonlyMap<string, Pick<StageResult, 'vertexKeys'> | undefined>;

/**
 * The tenant's records for the vertices of `stages` (vertices without a record are skipped).
 * A vertex after an ADD <url> without --checksum is stored under the key the solver resolved
 * when it ran (the stage result's vertexKeys), not the plan's provisional one.
 */
export async function recordsForStages(index: CacheIndex, stages: StagePlan[], results?: StageResults): Promise<ExportedCacheRecord[]> {
  const keysOf = (s: StagePlan) => results?.get(`${s.platform}|${s.id}`)?.vertexKeys ?? s.vertices.map((v) => v.cacheKey);
  const keys = [...new Set(stages.flatMap(keysOf))];
  const found = await Promise.all(keys.map((k) => index.get(k)));
  return found.filter((r): r is NonNullable<typeof r> => !!r).map((r) => ({ key: r.key, layer: r.layer, description: r.description, platform: r.platform }));
}

/** What cache transfer writes to the build's progress: its own vertices, as BuildKit shows them. */
export type CacheProgress = Pick<ProgressWriter, 'emit' | 'started' | 'finished' | 'failed' | 'log'>;

/** A build-level vertex (no stage, no step), named as BuildKit names its cache vertices. */
const cacheVertex = (buildId: string, name: string): VertexRef => ({ digest: internalDigest(buildId, name), name, platform: '', stage: '', step: 0, steps: 0, workerId: '', emulated: false });

/** Runs `fn` as a named phase of `vertex`: BuildKit's status lines under its cache export vertex. */
function phaseOf(progress: CacheProgress, vertex: VertexRef) {
  return async <T>(status: string, fn: () => Promise<T>): Promise<T> => {
    const startedMs = Date.now();
    await progress.emit({ type: 'vertex.status', vertex, status, startedMs });
    try {
      return await fn();
    } finally {
      await progress.emit({ type: 'vertex.status', vertex, status, startedMs, completedMs: Date.now() });
    }
  };
}

/** BuildKit's id of an imported cache (solver/llbsolver/bridge.go cmKey): the ref of a registry cache. */
const importName = (spec: Exclude<CacheSpec, { type: 'inline' }>) => `importing cache manifest from ${spec.type === 'registry' ? spec.ref : `local:${spec.tag}`}`;

/**
 * Imports every --cache-from into the tenant's index (first writer wins) and leases the blobs
 * for the build, each as BuildKit's "importing cache manifest from REF" vertex. A cache that
 * cannot be read fails its vertex and is a warning, as in buildx: the build goes on.
 */
export async function importCache(specs: CacheSpec[], ctx: CacheTransferContext, progress: CacheProgress): Promise<CacheReadResult[]> {
  const index = new RedisCacheIndex(ctx.redis, ctx.tenant, ctx.keys);
  const results: CacheReadResult[] = [];
  for (const spec of specs) {
    if (spec.type === 'inline') continue;
    const vertex = cacheVertex(ctx.buildId, importName(spec));
    const startedMs = Date.now();
    await progress.started(vertex, startedMs);
    try {
      const layout = spec.type === 'local' ? await syncedLayout(spec.contextId ?? '', ctx) : undefined;
      const result = await readCache(spec, index, { registry: ctx.registry, blobs: ctx.blobs, layout, signal: ctx.signal });
      await new BlobLeases(ctx.redis, ctx.keys).lease(ctx.buildId, result.digests, LEASE_TTL_MS);
      results.push(result);
      // Records of another BuildKit (buildkitd's own cache keys) are said, not hidden: none of them can hit.
      if (result.foreign > 0) progress.log(vertex.digest, `${result.records} Buildyard records; ${result.foreign} records of another BuildKit skipped: their cache keys are that builder's own\n`);
      await progress.finished(vertex, startedMs);
    } catch (err) {
      const message = (err as Error).message.split('\n')[0];
      await progress.failed(vertex, startedMs, message);
      await progress.emit({ type: 'build.warning', message: `cache import from ${spec.type === 'registry' ? spec.ref : 'type=local'} skipped: ${message}` });
    }
  }
  return results;
}

/**
 * A local cache directory the client synced as a context: only a context this tenant uploaded
 * (content addressing never crosses tenants), read from the context store, never from a path.
 */
async function syncedLayout(contextId: string, ctx: CacheTransferContext): Promise<LayoutReader> {
  if (!ctx.contexts || !(await ctx.contexts.tenantHas(ctx.tenant, contextId))) {
    throw new Error(`unknown context ${contextId.slice(0, 80)}: sync the cache directory first`);
  }
  const store = ctx.contexts;
  const files = new Map((await readManifest(store, contextId)).filter(isRegular).map((e) => [e.path, e.digest]));
  const digestOf = (path: string) => {
    const digest = files.get(path);
    if (!digest) throw Object.assign(new Error(`${path} is not in the synced cache directory`), { code: 'ENOENT' });
    return digest;
  };
  return {
    where: 'the synced cache directory',
    read: async (path) => store.content.readBytes(digestOf(path)),
    open: (path) => store.content.openRead(digestOf(path)),
    // The client uploaded this file (or proved it holds it): its content digest is the blob's.
    hasBlob: async (digest) => files.get(`blobs/sha256/${digest.slice('sha256:'.length)}`) === digest,
  };
}

/**
 * Per platform, the manifest annotations of an inline cache (undefined when none is asked):
 * the target chain's records whose layers are in that platform's image.
 */
export async function inlineCacheAnnotations(specs: CacheSpec[], plan: BuildPlan, ctx: Pick<CacheTransferContext, 'redis' | 'tenant' | 'keys'>, imageLayers: (platform: string) => string[], results?: StageResults): Promise<Map<string, Record<string, string>> | undefined> {
  if (!specs.some((s) => s.type === 'inline')) return undefined;
  const index = new RedisCacheIndex(ctx.redis, ctx.tenant, ctx.keys);
  const out = new Map<string, Record<string, string>>();
  for (const p of plan.platforms) {
    const inImage = new Set(imageLayers(p.platform));
    const records = (await recordsForStages(index, stagesForExport({ platforms: [p], warnings: [] }, 'min'), results)).filter((r) => r.layer === null || inImage.has(r.layer.digest));
    out.set(p.platform, { [INLINE_CACHE_ANNOTATION]: inlineCacheAnnotation(records) });
  }
  return out;
}

/**
 * Writes every registry/local --cache-to, each as BuildKit's exporter vertex ("exporting cache to
 * registry", "exporting cache to client directory"); errors fail the build (the user asked for
 * the cache). `index` is the spec's position in SolveRequest.cache_to: a local export's layout
 * streams back to the client under it.
 */
export async function exportCache(specs: CacheSpec[], plan: BuildPlan, ctx: CacheTransferContext, stageResults: StageResults | undefined, progress: CacheProgress): Promise<Array<CacheWriteResult & { index: number }>> {
  const index = new RedisCacheIndex(ctx.redis, ctx.tenant, ctx.keys);
  const results: Array<CacheWriteResult & { index: number }> = [];
  for (const [i, spec] of specs.entries()) {
    if (spec.type === 'inline') continue;
    const vertex = cacheVertex(ctx.buildId, spec.type === 'registry' ? 'exporting cache to registry' : 'exporting cache to client directory');
    const startedMs = Date.now();
    await progress.started(vertex, startedMs);
    try {
      const phase = phaseOf(progress, vertex);
      const records = await phase('preparing build cache for export', async () => {
        const found = await recordsForStages(index, stagesForExport(plan, spec.mode), stageResults);
        await new BlobLeases(ctx.redis, ctx.keys).lease(ctx.buildId, found.flatMap((r) => (r.layer ? [r.layer.digest] : [])), LEASE_TTL_MS);
        return found;
      });
      results.push({ ...await writeCache(spec, records, { registry: ctx.registry, blobs: ctx.blobs, signal: ctx.signal, step: phase }), index: i });
    } catch (err) {
      await progress.failed(vertex, startedMs, (err as Error).message.split('\n')[0]);
      throw err;
    }
    await progress.finished(vertex, startedMs);
  }
  return results;
}

/** Ends the build's leases. */
export async function releaseCacheLeases(redis: Redis, buildId: string, keys?: RedisKeys): Promise<void> {
  await new BlobLeases(redis, keys).release(buildId);
}
