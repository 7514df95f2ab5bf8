// Disk use on the workers, asked for by the frontend: `du` and `prune` reach what only a worker
// can see (its layer snapshots and materialised contexts) through one Redis
// channel. The frontend publishes a request; every worker answers on a reply list that the
// frontend waits on with BLPOP, so nobody polls.
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface WorkerDiskRequest {
  id: string;
  /** `du` measures; `prune` first removes what is reclaimable, then measures. */
  op: 'du' | 'prune';
  /** prune: snapshots kept (bytes); 0 removes every snapshot no running stage uses. */
  keepBytes?: number;
}

/** One part of a worker's state dir, as `du -s -B1` counts it (st_blocks, hardlinks once). */
export interface WorkerDiskPart {
  kind: 'snapshots' | 'contexts';
  bytes: number;
  /** What a prune could remove now (snapshots and contexts no running build uses). */
  reclaimableBytes: number;
}

export interface WorkerDiskReport {
  workerId: string;
  parts: WorkerDiskPart[];
  /** prune: bytes removed by this request. */
  reclaimedBytes: number;
  /** Set when the worker could not do all it was asked (e.g. it stayed busy). */
  note?: string;
}

const channel = (prefix: string) => `${prefix}:worker-disk`;
const replyKey = (prefix: string, id: string) => `${prefix}:worker-disk:reply:${id}`;
const REPLY_TTL_S = 120;

/**
 * Asks every worker in `workerIds` and returns the reports that arrive within `timeoutMs`
 * (a worker that died meanwhile is simply missing from the answer).
 */
export async function askWorkersDisk(redis: Redis, prefix: string, request: Omit<WorkerDiskRequest, 'id'>, workerIds: readonly string[], timeoutMs: number): Promise<WorkerDiskReport[]> {
  if (workerIds.length === 0) return [];
  const id = randomUUID();
  const waiting = new Set(workerIds);
  const reports: WorkerDiskReport[] = [];
  // BLPOP blocks its connection: it gets one of its own.
  const blocking = redis.duplicate();
  try {
    await redis.publish(channel(prefix), JSON.stringify({ ...request, id } satisfies WorkerDiskRequest));
    const deadline = Date.now() + timeoutMs;
    while (waiting.size > 0) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const popped = await blocking.blpop(replyKey(prefix, id), Math.max(left / 1000, 0.01));
      if (!popped) break;
      const report = parseReport(popped[1]);
      if (report && waiting.delete(report.workerId)) reports.push(report);
    }
  } finally {
    blocking.disconnect();
    await redis.del(replyKey(prefix, id)).catch(() => undefined);
  }
  return reports;
}

function parseReport(text: string): WorkerDiskReport | undefined {
  try {
    const r = JSON.parse(text) as WorkerDiskReport;
    if (typeof r.workerId !== 'string' || !Array.isArray(r.parts) || typeof r.reclaimedBytes !== 'number') return undefined;
    return r;
  } catch {
    return undefined;
  }
}

/** The worker's side: answers every request with `handle`; close() unsubscribes. */
export async function serveWorkerDisk(redis: Redis, prefix: string, handle: (request: WorkerDiskRequest) => Promise<WorkerDiskReport>, onError?: (err: Error) => void): Promise<{ close(): void }> {
  const subscriber = redis.duplicate();
  subscriber.on('message', (_channel: string, message: string) => {
    let request: WorkerDiskRequest;
    try {
      request = JSON.parse(message) as WorkerDiskRequest;
      if (typeof request.id !== 'string' || !/^[0-9a-f-]{36}$/.test(request.id) || (request.op !== 'du' && request.op !== 'prune')) return;
    } catch {
      return;
    }
    void handle(request)
      .then((report) => redis.multi().rpush(replyKey(prefix, request.id), JSON.stringify(report)).expire(replyKey(prefix, request.id), REPLY_TTL_S).exec())
      .catch((err: Error) => onError?.(err));
  });
  await subscriber.subscribe(channel(prefix));
  return { close: () => subscriber.disconnect() };
}
