// `du` and `prune` beyond the cache index: each live worker reports its layer snapshots,
// materialised contexts and cache mounts, and on prune reclaims what the prune's scope reaches.
// Snapshots and contexts are caches shared by every tenant (rebuilt from the blob and context
// stores), so any tenant may see their sizes; nothing in them is listed per tenant. A tenant's
// prune reclaims only its own (its step snapshots and RUN cache mounts: see WorkerPruneScope);
// the shared rest is the workers' GC's and an operator's prune's. They are not "Shared" in
// BuildKit's sense (data another record also holds).
import type { RedisClient as Redis } from '@buildyard/contracts';
import { askWorkersDisk, pruneWorkers, type WorkerDiskPart, type WorkerPruneScope } from '@buildyard/cache';
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

/**
 * Prunes every live worker within `scope`; keepBytes: what each keeps of what the scope reaches
 * (undefined: its configured size). Reports what each worker reclaimed.
 */
export async function pruneWorkerDisks(redis: Redis, prefix: string, workers: WorkerRegistry, scope: WorkerPruneScope, keepBytes: number | undefined): Promise<{ removed: Array<{ id: string; description: string; size: number }>; reclaimedBytes: number }> {
  const reports = await pruneWorkers(redis, prefix, (await workers.list()).map((w) => w.id), scope, keepBytes, WAIT_MS);
  const what = scope === 'fleet' ? 'snapshots, contexts and cache mounts' : `step snapshots and cache mounts of ${scope.tenant}`;
  return {
    removed: reports.filter((r) => r.reclaimedBytes > 0).map((r) => ({
      id: `worker/${r.workerId}`, description: `worker ${r.workerId}: ${what}${r.note ? ` (${r.note})` : ''}`, size: r.reclaimedBytes,
    })),
    reclaimedBytes: reports.reduce((n, r) => n + r.reclaimedBytes, 0),
  };
}
