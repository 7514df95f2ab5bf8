import type { CacheIndex, CacheRecord, PrunePolicy } from './CacheRecord.js';
import { selectForPrune } from './CacheRecord.js';

/** Anything that can say which blobs are leased (BlobLeases, or a fixed set in tests). */
export interface LeaseView {
  leased(): Promise<Set<string>>;
}

export interface PruneCacheOptions {
  index: CacheIndex;
  /**
   * The shared blob store; blobs whose last record went away are deleted from it. Without one
   * (the dashboard holds no store) they are only reported, and the frontend's blob GC removes them.
   */
  blobs?: { delete(digest: string): Promise<boolean> };
  leases?: LeaseView;
  policy: PrunePolicy;
  now?: number;
}

export interface PruneCacheResult {
  removed: CacheRecord[];
  reclaimedBytes: number;
  deletedBlobs: string[];
  /** Layer digests no record of any tenant references any more (deleted or not). */
  unreferenced: string[];
}

/**
 * Prunes one tenant's cache index, least recently used first, and deletes the blobs no record of
 * any tenant references any more. Records whose layer is leased by a running build are kept, and
 * a leased blob is never deleted.
 */
export async function pruneCache(opts: PruneCacheOptions): Promise<PruneCacheResult> {
  const leased = (await opts.leases?.leased()) ?? new Set<string>();
  const records = await opts.index.list();
  const inUse = new Set(records.filter((r) => r.layer && leased.has(r.layer.digest)).map((r) => r.key));
  const removed = selectForPrune(records, opts.policy, inUse, opts.now);
  const freed = await opts.index.delete(removed.map((r) => r.key));
  // Leases may have been taken while we pruned: read them again right before deleting.
  const leasedNow = (await opts.leases?.leased()) ?? new Set<string>();
  const deletedBlobs: string[] = [];
  for (const digest of freed) {
    if (leasedNow.has(digest)) continue;
    if (await opts.blobs?.delete(digest)) deletedBlobs.push(digest);
  }
  return { removed, reclaimedBytes: removed.reduce((n, r) => n + (r.layer?.size ?? 0), 0), deletedBlobs, unreferenced: freed };
}

export interface BlobGcPolicy {
  /** Keep at most this many bytes of unreferenced blobs, removing the least recently written first. */
  keepBytes?: number;
  /** Remove unreferenced blobs not written for longer than this (default 1 hour). */
  keepDurationMs?: number;
}

export interface GcBlobStore {
  list(): AsyncIterable<{ digest: string; size: number; mtime: Date }>;
  delete(digest: string): Promise<boolean>;
}

export interface CollectBlobGarbageOptions {
  /** The shared store, or a worker state dir's store. */
  store: GcBlobStore;
  /** Blobs a cache record references (RedisCacheIndex.referencedBlobs): pruneCache owns those. */
  referenced: ReadonlySet<string>;
  leases?: LeaseView;
  policy: BlobGcPolicy;
  now?: number;
}

export interface BlobGcResult {
  deleted: string[];
  reclaimedBytes: number;
  keptBytes: number;
}

/** A blob younger than this may belong to a writer that has not recorded it yet. */
export const DEFAULT_BLOB_GRACE_MS = 3600_000;

/**
 * Sweeps a blob store of blobs no cache record references (image manifests and configs of old
 * builds, cache-export documents, layers whose record was pruned elsewhere). Keep-duration
 * first, then keep-storage oldest-first; referenced and leased blobs are never touched.
 */
export async function collectBlobGarbage(opts: CollectBlobGarbageOptions): Promise<BlobGcResult> {
  const now = opts.now ?? Date.now();
  const keepDurationMs = opts.policy.keepDurationMs ?? DEFAULT_BLOB_GRACE_MS;
  const leased = (await opts.leases?.leased()) ?? new Set<string>();
  const all: Array<{ digest: string; size: number; mtime: Date }> = [];
  for await (const b of opts.store.list()) all.push(b);
  const candidates = all.filter((b) => !opts.referenced.has(b.digest) && !leased.has(b.digest)).sort((a, b) => a.mtime.getTime() - b.mtime.getTime());
  let total = all.reduce((n, b) => n + b.size, 0);
  const chosen: typeof candidates = [];
  for (const b of candidates) {
    const old = now - b.mtime.getTime() > keepDurationMs;
    const over = opts.policy.keepBytes !== undefined && total > opts.policy.keepBytes;
    if (!old && !over) continue;
    chosen.push(b);
    total -= b.size;
  }
  const deleted: string[] = [];
  let reclaimedBytes = 0;
  for (const b of chosen) {
    if (await opts.store.delete(b.digest)) { deleted.push(b.digest); reclaimedBytes += b.size; }
  }
  return { deleted, reclaimedBytes, keptBytes: all.reduce((n, b) => n + b.size, 0) - reclaimedBytes };
}
