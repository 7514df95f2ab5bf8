// Cache export and import over the backends (backends/: registry, local), with what every
// backend shares: layers must be in the shared store to export; on import, blobs are fetched
// before records are put, and a layer already in the shared store is used only if the source
// holds it too.
import type { CacheIndex } from './CacheRecord.js';
import type { CacheSpec } from './CacheSpec.js';
import { encodeCacheManifest, type ExportedCacheRecord } from './CacheManifest.js';
import { eachLimit } from './eachLimit.js';
import type { CacheBackend, CacheLayer, CacheTransferDeps, CacheWriteResult } from './backends/CacheBackend.js';
import { localBackend } from './backends/localBackend.js';
import { registryBackend } from './backends/registryBackend.js';

export type { CacheBackend, CacheSource, CacheTransferDeps, CacheWriteResult, LayoutReader } from './backends/CacheBackend.js';

type StoredCacheSpec = Exclude<CacheSpec, { type: 'inline' }>;

/** The backend of a registry or local cache spec. */
export function cacheBackendFor<S extends StoredCacheSpec>(spec: S): CacheBackend<S> {
  return (spec.type === 'registry' ? registryBackend : localBackend) as CacheBackend<S>;
}

/**
 * Exports records to a registry ref or a local OCI layout (see README.md, "Cache format").
 * Every platform's records go into one manifest; their keys differ, so nothing overwrites.
 */
export async function writeCache(spec: StoredCacheSpec, records: ExportedCacheRecord[], deps: CacheTransferDeps): Promise<CacheWriteResult> {
  const encoded = encodeCacheManifest(records, { imageManifest: spec.imageManifest });
  for (const l of encoded.layers) {
    if (!(await deps.blobs.has(l.digest))) throw new Error(`cache export to ${spec.type === 'registry' ? spec.ref : 'type=local'}: layer ${l.digest} is no longer in the shared blob store: rebuild without the cache or re-run the build`);
  }
  return cacheBackendFor(spec).write(spec, encoded, deps);
}

export interface CacheReadResult {
  location: string;
  /** Buildyard records found in the cache. */
  records: number;
  /**
   * Records of another BuildKit implementation (buildkitd's own keys: digests of its LLB and
   * content selectors, which no Buildyard step has): read and counted, never matched.
   */
  foreign: number;
  /** Records that were new to the index (the others were already there: first writer wins). */
  added: number;
  /** Layer blobs copied into the shared blob store. */
  blobsFetched: number;
  /** Layer digests the imported records reference (lease them for the build). */
  digests: string[];
}

/**
 * Imports a cache into `index`: blobs missing from the shared store are fetched first (eagerly),
 * then records are put, so a worker never sees a record whose blob is absent.
 * A registry ref may point at a cache manifest or at an image pushed with an inline cache.
 */
export async function readCache(spec: StoredCacheSpec, index: CacheIndex, deps: CacheTransferDeps): Promise<CacheReadResult> {
  const { location, records, foreign, fetchBlob, sourceHas } = await cacheBackendFor(spec).open(spec, deps);
  const layers = new Map<string, CacheLayer>();
  for (const r of records) if (r.layer) layers.set(r.layer.digest, r.layer);
  let blobsFetched = 0;
  await eachLimit([...layers.values()], 4, async (l) => {
    if (await deps.blobs.has(l.digest)) {
      // The shared store holds every tenant's layers: a cache may name one only if its source
      // holds it too, or an importer could reach another tenant's layer by its digest alone.
      if (!(await sourceHas(l).catch(() => false))) {
        throw new Error(`cache import from ${location}: layer ${l.digest} is not in the cache source: re-export the cache`);
      }
      return;
    }
    try { await fetchBlob(l); } catch (err) {
      throw new Error(`cache import from ${location}: layer ${l.digest} could not be fetched (${(err as Error).message.split('\n')[0]}): re-export the cache`);
    }
    blobsFetched++;
  });
  let added = 0;
  const started = Date.now();
  for (const r of records) {
    // An entry created before this import was already there and keeps its layer.
    if ((await index.put(r)).createdMs >= started) added++;
  }
  return { location, records: records.length, foreign, added, blobsFetched, digests: [...layers.keys()] };
}
