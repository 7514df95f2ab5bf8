// Stages whose every step is in the cache are answered by the frontend itself, as buildkitd
// answers them: the plan gives every key (the planner computes the keys workers look up), one
// pipelined lookup finds their records, and the stage results are assembled by the solver's own
// StageAssembly, so they are what workers would have returned from the same records. A build
// answered whole goes neither to the scheduler nor to a worker; otherwise only the stages with a
// miss (and those after them) are scheduled, and the answered results travel in their plans.
import { BlobLeases, RedisCacheIndex, type CacheRecord, type LayerRecord } from '@buildyard/cache';
import type { RedisClient, RedisKeys } from '@buildyard/contracts';
import type { BuildPlan, HistoryEntry } from '@buildyard/graph';
import { stepVertexRef, type ProgressWriter } from '@buildyard/progress';
import { isUsableHit, plannedVertexKeys, stageFromCache, type StageBaseState, type StageResult } from '@buildyard/solver';
import { metrics } from '@buildyard/telemetry'; // metrics

/** The workers' backstop too: the runner releases a build's leases when it ends. */
const BUILD_LEASE_MS = 24 * 3600 * 1000;

/** Base images the planner resolved (manifest and config, no blobs), by platform manifest digest and platform. */
export class ResolvedBases {
  private readonly bases = new Map<string, StageBaseState>();

  static keyOf(digest: string, platform: string): string {
    return `${digest}@${platform}`;
  }

  /** Keeps what a resolution read; an image whose layer chain is unknown is not kept (its stages go to a worker). */
  add(image: { digest: string; layers?: LayerRecord[]; config: { history?: HistoryEntry[] } }, platform: string): void {
    if (image.layers) this.bases.set(ResolvedBases.keyOf(image.digest, platform), { layers: image.layers, history: image.config.history ?? [] });
  }

  get(digest: string, platform: string): StageBaseState | undefined {
    return this.bases.get(ResolvedBases.keyOf(digest, platform));
  }
}

export interface CachedBuildOptions {
  redis: RedisClient;
  keys: RedisKeys;
  tenant: string;
  buildId: string;
  /** Where layers are shared: a record counts only when its layer is there, as on a worker. */
  blobs: { has(digest: string): Promise<boolean> };
  bases: ResolvedBases;
  /** `platform|stageId` of stages a taken-over build already has in the scheduler: they are its results, not the cache's. */
  scheduled?: ReadonlySet<string>;
}

/** A base image whose layers planning did not read: its stage goes to a worker, which pulls it. */
class NotCached extends Error {}

/**
 * The results (keyed `platform|stageId`) of the stages the frontend answers itself: those whose
 * every step has a record whose layer is in the store, and whose inputs are base images planning
 * read (an export reads their layers; a worker would have pulled them) or stages answered here
 * too. The others, and every stage after one of them, are left to the fleet (all of them for
 * --no-cache). One pipelined lookup covers every stage and platform. The answered stages' layers
 * are leased and their steps reported CACHED, under the ids and names a worker reports.
 */
export async function resultsFromCache(plan: BuildPlan, noCache: boolean, opts: CachedBuildOptions, progress: ProgressWriter): Promise<Map<string, StageResult>> {
  const results = new Map<string, StageResult>();
  if (noCache) return results;
  const refOf = (platform: string, stageId: string) => `${platform}|${stageId}`;
  // Candidates: planned keys, cached steps allowed, a base planning read, candidate inputs only.
  const candidates = new Set<string>();
  const wanted = new Set<string>();
  for (const p of plan.platforms) {
    for (const stage of p.stages) {
      const keys = plannedVertexKeys(stage);
      if (!keys || stage.noCache || opts.scheduled?.has(refOf(p.platform, stage.id))) continue;
      if (stage.base.kind === 'image' && !opts.bases.get(stage.base.digest, stage.platform)) continue;
      if (!stage.dependsOn.every((d) => candidates.has(refOf(p.platform, d)))) continue;
      candidates.add(refOf(p.platform, stage.id));
      for (const k of keys) wanted.add(k);
    }
  }
  if (candidates.size === 0) return results;
  const keys = [...wanted];
  const found = await new RedisCacheIndex(opts.redis, opts.tenant, opts.keys).getMany(keys);
  const records = new Map<string, CacheRecord>();
  for (const [i, record] of found.entries()) if (isUsableHit(record)) records.set(keys[i], record);
  for (const p of plan.platforms) {
    const byStage: Record<string, StageResult> = {};
    // Stages are in dependency order: each one's inputs are answered (or not) before it.
    for (const stage of p.stages) {
      if (!candidates.has(refOf(p.platform, stage.id)) || !stage.dependsOn.every((d) => byStage[d])) continue;
      const inputs = Object.fromEntries(stage.dependsOn.map((d) => [d, byStage[d]!]));
      const result = await stageFromCache(stage, inputs, async (_ref, digest) => {
        const base = opts.bases.get(digest, stage.platform);
        if (!base) throw new NotCached();
        return base;
      }, (key) => records.get(key)).catch((err: unknown) => {
        if (err instanceof NotCached) return undefined;
        throw err;
      });
      if (!result) continue;
      byStage[stage.id] = result;
      results.set(refOf(p.platform, stage.id), result);
    }
  }
  if (results.size === 0) return results;
  const digests = [...new Set([...results.values()].flatMap((r) => r.layers.map((l) => l.digest)))];
  // Leased before they are looked for, so a prune between the two cannot take one away.
  const leases = new BlobLeases(opts.redis, opts.keys);
  await leases.lease(opts.buildId, digests, BUILD_LEASE_MS);
  const present = await Promise.all(digests.map((d) => opts.blobs.has(d)));
  // The runner releases the leases when the build ends, whichever way it is built.
  const missing = new Set(digests.filter((_, i) => !present[i]));
  for (const p of plan.platforms) {
    // A stage with a layer missing goes to a worker, and so does every stage answered after it from it.
    for (const stage of p.stages) {
      const ref = refOf(p.platform, stage.id);
      const result = results.get(ref);
      if (result && (result.layers.some((l) => missing.has(l.digest)) || !stage.dependsOn.every((d) => results.has(refOf(p.platform, d))))) results.delete(ref);
    }
  }
  // Queued together: the writer sends them in order without waiting for each.
  const reported: Promise<void>[] = [];
  for (const p of plan.platforms) {
    for (const stage of p.stages) {
      if (!results.has(refOf(p.platform, stage.id))) continue;
      for (const vertex of stage.vertices) {
        metrics.cacheHits.inc({ platform: stage.platform });
        reported.push(progress.cached(stepVertexRef(stage, vertex, { workerId: '', emulated: false })));
      }
    }
  }
  await Promise.all(reported);
  return results;
}
