// A build whose every step is in the cache is answered by the frontend itself, as buildkitd
// answers one: the plan gives every key (the planner computes the keys workers look up), one
// pipelined lookup finds their records, and the stage results are assembled by the solver's own
// StageAssembly, so they are what workers would have returned from the same records. Nothing goes
// to the scheduler or wakes a worker; a single miss leaves the build to the fleet as before.
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
}

/** A stage the frontend cannot answer: the build goes to the fleet. */
class NotCached extends Error {}

/**
 * Every stage's result (keyed `platform|stageId`) when every step of every stage of every
 * platform has a record whose layer is in the store and every base image's layers are there
 * too (an export reads them; a worker would have pulled them); undefined otherwise. When it
 * answers, the build's layers are leased and each step is reported CACHED, under the ids and
 * names a worker reports.
 */
export async function resultsFromCache(plan: BuildPlan, noCache: boolean, opts: CachedBuildOptions, progress: ProgressWriter): Promise<Map<string, StageResult> | undefined> {
  if (noCache) return undefined;
  const wanted = new Set<string>();
  for (const p of plan.platforms) {
    for (const stage of p.stages) {
      const keys = plannedVertexKeys(stage);
      if (!keys || stage.noCache) return undefined;
      if (stage.base.kind === 'image' && !opts.bases.get(stage.base.digest, stage.platform)) return undefined;
      for (const k of keys) wanted.add(k);
    }
  }
  const keys = [...wanted];
  const found = await new RedisCacheIndex(opts.redis, opts.tenant, opts.keys).getMany(keys);
  const records = new Map<string, CacheRecord>();
  for (const [i, record] of found.entries()) {
    if (!isUsableHit(record)) return undefined;
    records.set(keys[i], record);
  }
  const results = new Map<string, StageResult>();
  try {
    for (const p of plan.platforms) {
      const byStage: Record<string, StageResult> = {};
      // Stages are in dependency order: each one's inputs are assembled before it.
      for (const stage of p.stages) {
        const inputs = Object.fromEntries(stage.dependsOn.map((d) => [d, byStage[d]!]));
        const result = await stageFromCache(stage, inputs, async (_ref, digest) => {
          const base = opts.bases.get(digest, stage.platform);
          if (!base) throw new NotCached();
          return base;
        }, (key) => records.get(key));
        if (!result) return undefined;
        byStage[stage.id] = result;
        results.set(`${p.platform}|${stage.id}`, result);
      }
    }
  } catch (err) {
    if (err instanceof NotCached) return undefined;
    throw err;
  }
  const digests = [...new Set([...results.values()].flatMap((r) => r.layers.map((l) => l.digest)))];
  // Leased before they are looked for, so a prune between the two cannot take one away.
  const leases = new BlobLeases(opts.redis, opts.keys);
  await leases.lease(opts.buildId, digests, BUILD_LEASE_MS);
  const present = await Promise.all(digests.map((d) => opts.blobs.has(d)));
  // The runner releases the leases when the build ends, whichever way it is built.
  if (present.includes(false)) return undefined;
  // Queued together: the writer sends them in order without waiting for each.
  const reported: Promise<void>[] = [];
  for (const p of plan.platforms) {
    for (const stage of p.stages) {
      for (const vertex of stage.vertices) {
        metrics.cacheHits.inc({ platform: stage.platform });
        reported.push(progress.cached(stepVertexRef(stage, vertex, { workerId: '', emulated: false })));
      }
    }
  }
  await Promise.all(reported);
  return results;
}
