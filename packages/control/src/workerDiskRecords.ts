// `du` and `prune` beyond the cache index: each live worker reports (and on prune reclaims) its
// layer snapshots and materialised contexts. Both are caches shared by every tenant (snapshots
// are rebuilt from the blob store, contexts from the context store), so any tenant may see
// their sizes and reclaim them; nothing in them is listed per tenant. They are not "Shared" in
// BuildKit's sense (data another record also holds): a prune reclaims them.
import type { RedisClient as Redis } from '@buildyard/contracts';
import { askWorkersDisk, type WorkerDiskPart } from '@buildyard/cache';
import type { WorkerRegistry } from '@buildyard/scheduler';

const DESCRIPTION: Record<WorkerDiskPart['kind'], string> = {
  snapshots: 'layer snapshots (unpacked layers, shared by every tenant)',
  contexts: 'materialised build contexts',
  cache: 'local copy of blobs fetched from the blob store',
  cachemounts: 'RUN --mount=type=cache directories (every tenant\'s, each its own)',
};
/** A worker finishing a stage answers a prune only after it; a dead one never answers. */
const WAIT_MS = 30_000;

export interface DiskRecord { id: string; description: string; size: number; shared: boolean; inUse: boolean }

export async function workerDiskUsage(redis: Redis, prefix: string, workers: WorkerRegistry): Promise<{ records: DiskRecord[]; totalBytes: number; reclaimableBytes: number }> {
  const reports = await askWorkersDisk(redis, prefix, { op: 'du' }, (await workers.list()).map((w) => w.id), WAIT_MS);
  const records = reports.flatMap((r) => r.parts.map((p) => ({
    id: `worker/${r.workerId}/${p.kind}`, description: `worker ${r.workerId}: ${DESCRIPTION[p.kind] ?? p.kind}`, size: p.bytes, shared: false, inUse: p.reclaimableBytes < p.bytes,
  })));
  return {
    records,
    totalBytes: reports.reduce((n, r) => n + r.parts.reduce((m, p) => m + p.bytes, 0), 0),
    reclaimableBytes: reports.reduce((n, r) => n + r.parts.reduce((m, p) => m + p.reclaimableBytes, 0), 0),
  };
}

/** keepBytes: what each worker keeps of snapshots and contexts (undefined: its configured size). */
export async function pruneWorkerDisks(redis: Redis, prefix: string, workers: WorkerRegistry, keepBytes: number | undefined): Promise<{ removed: Array<{ id: string; description: string; size: number }>; reclaimedBytes: number }> {
  const reports = await askWorkersDisk(redis, prefix, { op: 'prune', ...(keepBytes !== undefined ? { keepBytes } : {}) }, (await workers.list()).map((w) => w.id), WAIT_MS);
  return {
    removed: reports.filter((r) => r.reclaimedBytes > 0).map((r) => ({
      id: `worker/${r.workerId}`, description: `worker ${r.workerId}: snapshots and contexts${r.note ? ` (${r.note})` : ''}`, size: r.reclaimedBytes,
    })),
    reclaimedBytes: reports.reduce((n, r) => n + r.reclaimedBytes, 0),
  };
}
