// Disk use on the workers, asked for by the frontend: `du` and `prune` reach what only a worker
// can see (its layer snapshots and materialised contexts) through one Redis
// channel. The frontend publishes a request; every worker answers on a reply list that the
// frontend waits on with BLPOP, so nobody polls.
import { randomUUID } from 'node:crypto';
import type { RedisClient as Redis } from '@buildyard/contracts';
import { keepSubscribed, redisKeys, workerDiskReportSchema, workerDiskRequestSchema, type WorkerDiskReport, type WorkerDiskRequest } from '@buildyard/contracts';

// The messages and their keys cross Redis: their schemas live in @buildyard/contracts.
export type { WorkerDiskRequest, WorkerDiskReport, WorkerDiskPart } from '@buildyard/contracts';

const channel = (prefix: string) => redisKeys(prefix).workerDisk.channel;
const replyKey = (prefix: string, id: string) => redisKeys(prefix).workerDisk.reply(id);
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
  blocking.on('error', () => undefined); // a lost connection rejects the BLPOP below
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

/**
 * Whose a prune on the workers is: one tenant's (Control.Prune: `buildyard prune`, `buildctl
 * prune`), which reaches only that tenant's own step snapshots (and what is built on them) and
 * RUN cache mounts, or the fleet's (an operator's), which reaches every snapshot, context, layer
 * copy and cache mount no running stage uses. Shared state is never a tenant's to clear: another
 * tenant's builds would pay for it.
 */
export type WorkerPruneScope = { tenant: string } | 'fleet';

/** Asks every worker in `workerIds` to prune within `scope`, down to `keepBytes` (undefined: each its configured size). */
export function pruneWorkers(redis: Redis, prefix: string, workerIds: readonly string[], scope: WorkerPruneScope, keepBytes: number | undefined, timeoutMs: number): Promise<WorkerDiskReport[]> {
  const request = { op: 'prune' as const, ...(keepBytes !== undefined ? { keepBytes } : {}), ...(scope === 'fleet' ? {} : { tenant: scope.tenant }) };
  return askWorkersDisk(redis, prefix, request, workerIds, timeoutMs);
}

/** A report as read back; anything else (another version, garbage) is left out of the answer. */
function parseReport(text: string): WorkerDiskReport | undefined {
  try {
    const r = workerDiskReportSchema.safeParse(JSON.parse(text));
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/** The worker's side: answers every request with `handle`; close() unsubscribes. */
export async function serveWorkerDisk(redis: Redis, prefix: string, handle: (request: WorkerDiskRequest) => Promise<WorkerDiskReport>, onError?: (err: Error) => void): Promise<{ close(): void }> {
  const subscriber = redis.duplicate();
  // ioredis reconnects by itself; without a listener its error events are logged as unhandled.
  subscriber.on('error', (err: Error) => onError?.(err));
  subscriber.on('message', (_channel: string, message: string) => {
    let request: WorkerDiskRequest;
    try {
      const parsed = workerDiskRequestSchema.safeParse(JSON.parse(message));
      if (!parsed.success) return;
      request = parsed.data;
    } catch {
      return;
    }
    void handle(request)
      .then((report) => redis.multi().rpush(replyKey(prefix, request.id), JSON.stringify(report)).expire(replyKey(prefix, request.id), REPLY_TTL_S).exec())
      .catch((err: Error) => onError?.(err));
  });
  // Subscribed again on every reconnect (see keepSubscribed): a worker deaf to this channel is
  // left out of every `du` and `prune` answer.
  await keepSubscribed(subscriber, [channel(prefix)], (err) => onError?.(err));
  return { close: () => subscriber.disconnect() };
}
