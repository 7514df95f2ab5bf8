// The record shapes cross Redis, so their schemas (and these types) live in @buildyard/contracts.
import type { CacheRecord } from '@buildyard/contracts';
export type { CacheRecord, LayerRecord } from '@buildyard/contracts';

export type NewCacheRecord = Omit<CacheRecord, 'createdMs' | 'lastUsedMs' | 'usageCount'>;

/**
 * The cache index maps cache keys to results. Keys are namespaced by tenant by the
 * implementations, so one tenant can never read another's entries even knowing the key.
 */
export interface CacheIndex {
  /** Looks a key up and marks it used. */
  get(key: string): Promise<CacheRecord | undefined>;
  /** Records a result; the first writer of a key wins and every writer gets the stored record. */
  put(record: NewCacheRecord): Promise<CacheRecord>;
  list(): Promise<CacheRecord[]>;
  /** Removes entries; returns the layer digests no remaining entry of any tenant references. */
  delete(keys: string[]): Promise<string[]>;
}

export interface PrunePolicy {
  /** Remove everything not in use. */
  all?: boolean;
  /** Keep at most this many bytes, removing least recently used entries first. */
  keepBytes?: number;
  /** Remove entries unused for longer than this. */
  keepDurationMs?: number;
}

/** Picks the entries a prune removes: least recently used first, never a key in use. */
export function selectForPrune(records: CacheRecord[], policy: PrunePolicy, inUse: ReadonlySet<string>, now = Date.now()): CacheRecord[] {
  const candidates = records.filter((r) => !inUse.has(r.key)).sort((a, b) => a.lastUsedMs - b.lastUsedMs);
  if (policy.all) return candidates;
  const chosen = new Set<CacheRecord>();
  if (policy.keepDurationMs !== undefined) {
    for (const r of candidates) if (now - r.lastUsedMs > policy.keepDurationMs) chosen.add(r);
  }
  if (policy.keepBytes !== undefined) {
    let total = records.reduce((sum, r) => sum + (r.layer?.size ?? 0), 0);
    for (const r of chosen) total -= r.layer?.size ?? 0;
    for (const r of candidates) {
      if (total <= policy.keepBytes) break;
      if (chosen.has(r)) continue;
      chosen.add(r);
      total -= r.layer?.size ?? 0;
    }
  }
  return candidates.filter((r) => chosen.has(r));
}
