import { createHash } from 'node:crypto';
import { Queue, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { platformQueueName, workerQueueName, type SchedulerKeys } from './keys.js';
import type { AbortOutcome, StageStore } from './StageStore.js';
import type { WorkerRegistry } from './WorkerRegistry.js';
import type { WorkerStatus } from './types.js';
import { stageJobDataSchema, type StageJobData } from '@buildyard/contracts';

/** What a BullMQ stage job carries; the payload stays in the stage hash (read at start). */
/** The job's data: see @buildyard/contracts (its schema validates what workers read back). */
export type { StageJobData } from '@buildyard/contracts';

export interface DispatcherOptions {
  /** Running stages per tenant when Redis holds no configured limit (0 = unlimited). */
  tenantLimit: number;
}

export type Placement = { queue: string } | { error: string };

export function noWorkerMessage(platform: string): string {
  return `no worker can build ${platform}`;
}

/**
 * Picks a queue for a stage: native workers first, then emulating ones; and within that class
 * the worker that ran the stage's dependencies if it has a free slot (its own queue is consulted
 * first by its consumer), else the shared platform queue.
 */
export async function choosePlacement(
  platform: string,
  inputWorkers: string[],
  workers: WorkerStatus[],
  queuedOn: (workerId: string) => Promise<number>,
): Promise<Placement> {
  const eligible = workers.filter((w) => !w.draining);
  const native = eligible.filter((w) => w.nativePlatforms.includes(platform));
  const emulated = eligible.filter((w) => w.emulatedPlatforms.includes(platform));
  const pool = native.length > 0 ? native : emulated;
  if (pool.length === 0) return { error: noWorkerMessage(platform) };
  const votes = new Map<string, number>();
  for (const id of inputWorkers) votes.set(id, (votes.get(id) ?? 0) + 1);
  const holders = pool.filter((w) => votes.has(w.id)).sort((a, b) => votes.get(b.id)! - votes.get(a.id)!);
  for (const w of holders) {
    if (w.running + (await queuedOn(w.id)) < w.capacity) return { queue: workerQueueName(w.id) };
  }
  return { queue: platformQueueName(platform, native.length > 0 ? 'native' : 'emulated') };
}

function jobIdFor(ref: string, suffix: string): string {
  // BullMQ rejects ':' in custom ids and integer-looking ids; a hash prefix avoids both.
  return `s${createHash('sha256').update(ref).digest('hex').slice(0, 32)}-${suffix}`;
}

/** Moves claimed stages onto BullMQ queues. Frontends and workers both run it; claims are atomic. */
export class Dispatcher {
  private readonly queues = new Map<string, Queue>();
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly redis: Redis,
    private readonly keys: SchedulerKeys,
    private readonly store: StageStore,
    private readonly registry: WorkerRegistry,
    private readonly opts: DispatcherOptions,
  ) {}

  queue(name: string): Queue {
    let q = this.queues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix });
      q.on('error', () => undefined); // connection errors surface on the next call
      this.queues.set(name, q);
    }
    return q;
  }

  /** Claims and places everything that may run now; concurrent calls coalesce into a rerun. */
  dispatch(): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.dispatchOnce();
      } while (this.again);
    })().finally(() => { this.running = null; });
    return this.running;
  }

  private async dispatchOnce(): Promise<void> {
    const refs = await this.store.claim(this.opts.tenantLimit);
    if (refs.length === 0) return;
    const workers = await this.registry.list();
    // Stages this pass put on each worker's own queue: the worker may take one before the next
    // placement counts its queue, and `running` (read before the pass) does not show it yet, so
    // two stages ready at once could both go to one worker while another is free.
    const placed = new Map<string, number>();
    let freed = false;
    for (const ref of refs) freed = (await this.place(ref, workers, 'd', placed)) || freed;
    await this.redis.publish(this.keys.workChannel, '1');
    if (freed) this.again = true;
  }

  /** Places one stage; returns true when the build failed instead (slots were freed). */
  private async place(ref: string, workers: WorkerStatus[], kind: 'd' | 'r', placed = new Map<string, number>()): Promise<boolean> {
    const info = await this.store.dispatchInfo(ref);
    if (!info) return false;
    const placement = await choosePlacement(info.platform, info.inputWorkers, workers,
      async (id) => Math.max(await this.queue(workerQueueName(id)).count(), placed.get(id) ?? 0));
    if ('error' in placement) {
      await this.applyAbort(await this.store.abort(info.buildId, 'failed', placement.error));
      return true;
    }
    const jobId = jobIdFor(ref, kind === 'd' ? String(info.dispatches) : `r${Date.now()}`);
    if (!(await this.store.markQueued(ref, placement.queue, jobId))) return false;
    const data: StageJobData = {
      ref, buildId: info.buildId, tenant: info.tenant, priority: info.priority, platform: info.platform,
      stageId: info.stageId, cacheKey: info.cacheKey, traceContext: info.traceContext,
    };
    // Recorded so readers list queues without scanning BullMQ's keys (Scheduler.queueNames).
    await this.redis.sadd(this.keys.queues, placement.queue);
    await this.queue(placement.queue).add(info.stageId, data, {
      jobId,
      priority: 1001 - info.priority, // BullMQ: lower number runs first
      attempts: 1, // a real failure is final; worker loss is handled by stall detection
      removeOnComplete: { age: 3600, count: 1000 },
      removeOnFail: { age: 24 * 3600 },
    });
    const onWorker = workers.find((w) => workerQueueName(w.id) === placement.queue);
    if (onWorker) placed.set(onWorker.id, (placed.get(onWorker.id) ?? 0) + 1);
    return false;
  }

  /** Removes cancelled stages' queued jobs and tells consumers to abort their running ones. */
  async applyAbort(out: AbortOutcome): Promise<void> {
    for (const { queue, jobId } of out.jobs) {
      // Active (locked) jobs refuse removal; their consumer aborts on the cancel message.
      await this.queue(queue).remove(jobId).catch(() => 0);
    }
    for (const buildId of out.builds) await this.redis.publish(this.keys.cancelChannel, buildId);
  }

  /**
   * Re-homes jobs placed on one worker's own queue: waiting ones always, active ones only when
   * their lock has expired (the worker died). Used for dead and draining workers.
   */
  async rehome(workerId: string): Promise<number> {
    const name = workerQueueName(workerId);
    const q = this.queue(name);
    const jobs: Job[] = await q.getJobs(['wait', 'prioritized', 'delayed', 'paused', 'active']);
    if (jobs.length === 0) return 0;
    const workers = (await this.registry.list()).filter((w) => w.id !== workerId);
    let moved = 0;
    for (const job of jobs) {
      if (!job.id) continue;
      try {
        // BullMQ refuses, atomically, to remove a job whose lock is held: a live consumer's
        // active job stays; one whose lock expired with its worker is taken.
        await job.remove();
      } catch {
        continue; // locked, or picked up meanwhile
      }
      const data = stageJobDataSchema.safeParse(job.data);
      if (!data.success) continue; // not a stage job of ours; removed above, nothing to re-home
      await this.place(data.data.ref, workers, 'r');
      moved++;
    }
    if (moved > 0) await this.redis.publish(this.keys.workChannel, '1');
    return moved;
  }

  /**
   * Forgets a queue (drops it from the recorded set) when no job is pending on it; used for the
   * own queues of workers that are gone, whose ids never come back.
   */
  async forgetIfIdle(name: string): Promise<boolean> {
    const pending = await this.queue(name).getJobCountByTypes('active', 'wait', 'prioritized', 'delayed', 'paused', 'waiting-children');
    if (pending > 0) return false;
    await this.redis.srem(this.keys.queues, name);
    await this.queues.get(name)?.close().catch(() => undefined);
    this.queues.delete(name);
    return true;
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((q) => q.close().catch(() => undefined)));
    this.queues.clear();
  }
}
