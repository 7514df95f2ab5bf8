import { z } from 'zod';

/** The frontend's question to every worker (pub/sub): measure, or prune then measure. */
export const workerDiskRequestSchema = z.object({
  id: z.string().regex(/^[0-9a-f-]{36}$/),
  /** `du` measures; `prune` first removes what is reclaimable, then measures. */
  op: z.enum(['du', 'prune']),
  /** prune: snapshots kept (bytes); 0 removes every snapshot no running stage uses. */
  keepBytes: z.number().nonnegative().optional(),
  /**
   * prune: the tenant pruning (Control.Prune): only what is its own goes, its step snapshots
   * (and what is built on them) and its RUN cache mounts, and keepBytes is what it keeps of
   * those. Absent: everything (an operator's prune), as before this field.
   */
  tenant: z.string().optional(),
});
export type WorkerDiskRequest = z.infer<typeof workerDiskRequestSchema>;

/** One part of a worker's state dir, as `du -s -B1` counts it (st_blocks, hardlinks once). */
export const workerDiskPartSchema = z.object({
  /** `cache`: the worker's local copy of blobs it fetched from the blob store (state dir `blobs/`). */
  kind: z.enum(['snapshots', 'contexts', 'cache', 'cachemounts']),
  bytes: z.number(),
  /** What a prune could remove now (snapshots and contexts no running build uses). */
  reclaimableBytes: z.number(),
});
export type WorkerDiskPart = z.infer<typeof workerDiskPartSchema>;

/** A worker's answer, pushed to the request's reply list. */
export const workerDiskReportSchema = z.object({
  workerId: z.string(),
  parts: z.array(workerDiskPartSchema),
  /** prune: bytes removed by this request. */
  reclaimedBytes: z.number(),
  /** Set when the worker could not do all it was asked (e.g. it stayed busy). */
  note: z.string().optional(),
});
export type WorkerDiskReport = z.infer<typeof workerDiskReportSchema>;
