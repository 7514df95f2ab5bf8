import { createHash, randomUUID } from 'node:crypto';
import { FlowProducer, Queue, type FlowJob, type Job } from 'bullmq';
import type { RedisClient } from './connectRedis.js';
import { describeQueueName, platformQueueName, workerQueueName, type SchedulerKeys } from './keys.js';
import type { AbortOutcome, Claimer, StageDispatchInfo, StageStore } from './StageStore.js';
import type { HolderStatus, PlacementView, PlatformCount, WorkerRegistry } from './WorkerRegistry.js';
import { stageJobDataSchema, type StageJobData } from '@buildyard/contracts';

/** What a BullMQ stage job carries; the payload stays in the stage hash (read at start). */
/** The job's data: see @buildyard/contracts (its schema validates what workers read back). */
export type { StageJobData } from '@buildyard/contracts';

export interface DispatcherOptions {
  /**
   * Running stages per tenant when Redis holds no configured limit: a number (0 = unlimited) or
   * 'fleet' (unlimited while no other tenant waits, else an equal share of the live slots).
   */
  tenantLimit: number | 'fleet';
  /**
   * How long this dispatcher's claimed stages stay its own without it (default 30 s): if the
   * process dies between claim and queue, a scheduler's tick gives them back to ready after it.
   * A pass that outlasts it is still safe: a recovered claim refuses its late markQueued.
   */
  claimLeaseMs?: number;
  /**
   * The own queue of the consumer this dispatcher runs in, and how to wake that consumer: a job
   * this dispatcher puts there (a chain's next stage, on the worker holding its inputs) wakes it
   * in process as soon as the job exists, instead of through Redis after the pass.
   */
  local?: { queue: string; wake: (jobs: number) => void };
}

export type Placement = { queue: string; worker?: string } | { error: string };

export function noWorkerMessage(platform: string): string {
  return `no worker can build ${platform}`;
}

/** BullMQ job states in which a job is still pending (not completed or failed). */
const PENDING_LISTS = ['active', 'wait', 'paused'] as const;
const PENDING_ZSETS = ['prioritized', 'delayed', 'waiting-children'] as const;

/**
 * Picks a queue for a stage: native workers first, then emulating ones; and within that class
 * the worker that ran the stage's dependencies if it has a free slot (its own queue is consulted
 * first by its consumer), else the shared platform queue. `live` counts the platform's live, not
 * draining workers; `holders` are the input holders that are alive; `placed` counts the stages
 * this pass already put on each worker's own queue (not in `queued` yet).
 */
export function choosePlacement(
  platform: string,
  inputWorkers: string[],
  live: PlatformCount,
  holders: ReadonlyMap<string, HolderStatus>,
  placed: ReadonlyMap<string, number> = new Map(),
): Placement {
  const cls = live.native > 0 ? 'native' : live.emulated > 0 ? 'emulated' : undefined;
  if (!cls) return { error: noWorkerMessage(platform) };
  const votes = new Map<string, number>();
  for (const id of inputWorkers) votes.set(id, (votes.get(id) ?? 0) + 1);
  const candidates = [...votes.keys()].filter((id) => {
    const h = holders.get(id);
    return h && !h.draining && (cls === 'native' ? h.nativePlatforms : h.emulatedPlatforms).includes(platform);
  }).sort((a, b) => votes.get(b)! - votes.get(a)!);
  for (const id of candidates) {
    const h = holders.get(id)!;
    if (h.running + h.queued + (placed.get(id) ?? 0) < h.capacity) return { queue: workerQueueName(id), worker: id };
  }
  return { queue: platformQueueName(platform, cls) };
}

/**
 * A queue a dispatcher keeps a Queue object for (see Dispatcher.addJobs): a platform queue, or
 * the own queue of the consumer it runs in (`local`); never another worker's own queue, whose
 * count grows with the fleet.
 */
export function isSteadyQueue(name: string, local?: string): boolean {
  return name === local || describeQueueName(name)?.kind !== 'worker';
}

/** What a placement view covers: run platforms and input-holding workers. */
export interface ViewScope {
  platforms: string[];
  holders: string[];
}

function scopeOf(infos: StageDispatchInfo[]): ViewScope {
  // Placement follows where a stage executes, not the target platform it belongs to.
  return { platforms: [...new Set(infos.map((i) => i.runPlatform))], holders: [...new Set(infos.flatMap((i) => i.inputWorkers))] };
}

function jobIdFor(ref: string, suffix: string): string {
  // BullMQ rejects ':' in custom ids and integer-looking ids; a hash prefix avoids both.
  return `s${createHash('sha256').update(ref).digest('hex').slice(0, 32)}-${suffix}`;
}

/**
 * Moves claimed stages onto BullMQ queues. Frontends and workers both run it; claims are atomic.
 * A pass costs a fixed number of round trips whatever the fleet's size: claim (with each
 * stage's placement inputs), one placement view, one pipeline of state changes, one add (a
 * script call for a lone job, else one MULTI of job adds; see addJobs), then at once the
 * claims' release and one wake-up of as many idle consumers per queue as jobs were added to it
 * (a job on the own queue of the consumer running this dispatcher wakes that consumer directly).
 */
export class Dispatcher {
  private flows: FlowProducer | undefined;
  /** Queue objects for lone adds to steady queues (see addJobs). */
  private readonly steadyQueues = new Map<string, Queue>();
  private running: Promise<void> | null = null;
  private again = false;
  private readonly claimer: Claimer;

  constructor(
    private readonly redis: RedisClient,
    private readonly keys: SchedulerKeys,
    private readonly store: StageStore,
    private readonly registry: WorkerRegistry,
    private readonly opts: DispatcherOptions,
    private readonly onError: (err: Error) => void = () => undefined,
  ) {
    this.claimer = { id: randomUUID(), leaseMs: opts.claimLeaseMs ?? 30_000 };
  }

  /**
   * Claims and places everything that may run now; concurrent calls coalesce into a rerun.
   * `expect`: the run platforms and input holders of what the claim will most likely return (a
   * completion's dependents: its platform, its worker); the placement view is then read right
   * behind the claim, in the same round trip, and used when it covers what was claimed.
   */
  dispatch(expect?: ViewScope): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let scope = expect;
      do {
        this.again = false;
        await this.dispatchOnce(scope);
        scope = undefined;
      } while (this.again);
    })().finally(() => { this.running = null; });
    return this.running;
  }

  private async dispatchOnce(expect: ViewScope | undefined): Promise<void> {
    const claiming = this.store.claim(this.opts.tenantLimit, this.claimer);
    // Both are sent before either is awaited: the view is read after the claim, as a view read
    // once the claim's reply is in would be. Read-only, so a view that turns out not to cover
    // the claimed stages (or nothing claimed) only cost its reading.
    const viewing = expect ? this.registry.placementView(expect.platforms, expect.holders) : undefined;
    viewing?.catch(() => undefined);
    const claimed = await claiming;
    if (claimed.length === 0) return;
    const scope = scopeOf(claimed);
    const early = viewing && scope.platforms.every((p) => expect!.platforms.includes(p)) && scope.holders.every((h) => expect!.holders.includes(h))
      ? await viewing : undefined;
    if (await this.placeAll(claimed, 'd', early)) this.again = true;
  }

  /** Places stages; returns true when slots were freed instead (a build failed, a stage became a follower). */
  private async placeAll(infos: StageDispatchInfo[], kind: 'd' | 'r', early?: PlacementView): Promise<boolean> {
    const scope = scopeOf(infos);
    const view = early ?? await this.registry.placementView(scope.platforms, scope.holders);
    // Stages this pass put on each worker's own queue: the view's queue depths predate them.
    const placed = new Map<string, number>();
    const chosen: Array<{ info: StageDispatchInfo; queue: string; jobId: string }> = [];
    const failed = new Map<string, string>();
    const live = (info: StageDispatchInfo) => view.platforms.get(info.runPlatform) ?? { native: 0, emulated: 0 };
    const choose = (info: StageDispatchInfo) => choosePlacement(info.runPlatform, info.inputWorkers, live(info), view.holders, placed);
    const bind = (info: StageDispatchInfo, queue: string, jobId: string, worker?: string) => {
      if (worker) placed.set(worker, (placed.get(worker) ?? 0) + 1);
      chosen.push({ info, queue, jobId });
    };
    // When a pass places two or more stages, those not given to an input holder (a holder gets
    // its first dependent only: its inputs are local there) go to idle consumers' own queues, one
    // each, to consumers this pass gave nothing: independent stages then run side by side on
    // different workers, where the first consumer woken would fetch them back to back from a
    // shared queue (or the holder would take them all). A lone stage keeps the shared queue.
    const spread: Array<{ info: StageDispatchInfo; jobId: string; queue: string }> = [];
    const sharedQueue = (info: StageDispatchInfo) => platformQueueName(info.runPlatform, live(info).native > 0 ? 'native' : 'emulated');
    for (const info of infos) {
      const p = choose(info);
      if ('error' in p) {
        failed.set(info.buildId, p.error);
        continue;
      }
      const jobId = jobIdFor(info.ref, kind === 'd' ? String(info.dispatches) : `r${Date.now()}`);
      if (p.worker && !placed.has(p.worker)) bind(info, p.queue, jobId, p.worker);
      else spread.push({ info, jobId, queue: sharedQueue(info) });
    }
    // On any queue: the first consumer woken may serve several.
    const compete = spread.length + placed.size > 1;
    const idle = compete ? await this.idleConsumers(spread.map((s) => s.queue), placed.size) : new Map<string, string[]>();
    for (const s of spread) {
      const free = idle.get(s.queue)?.find((id) => !placed.has(id));
      if (free) {
        bind(s.info, workerQueueName(free), s.jobId, free);
        continue;
      }
      const p = choose(s.info);
      if ('error' in p) failed.set(s.info.buildId, p.error);
      else bind(s.info, p.queue, s.jobId, p.worker);
    }
    // Aborted first: their other stages' markQueued then refuses (the stage is cancelled).
    for (const [buildId, error] of failed) await this.applyAbort(await this.store.abort(buildId, 'failed', error));
    const marks = await this.store.markQueuedAll(chosen.map((c) => ({ ref: c.info.ref, queue: c.queue, jobId: c.jobId })), this.claimer, kind);
    const add = chosen.filter((_, i) => marks[i] === 'add');
    // A stage that became a follower freed its tenant slot: another may be claimed now.
    const freed = failed.size > 0 || marks.includes('follow');
    if (add.length === 0) return freed;
    await this.addJobs(add.map(({ info, queue, jobId }): FlowJob => {
      const data: StageJobData = {
        ref: info.ref, buildId: info.buildId, tenant: info.tenant, priority: info.priority, platform: info.platform,
        ...(info.runPlatform !== info.platform ? { runPlatform: info.runPlatform } : {}),
        stageId: info.stageId, cacheKey: info.cacheKey, traceContext: info.traceContext,
      };
      return {
        name: info.stageId, queueName: queue, data,
        opts: {
          jobId,
          priority: 1001 - info.priority, // BullMQ: lower number runs first
          attempts: 1, // a real failure is final; worker loss is handled by stall detection
          removeOnComplete: { age: 3600, count: 1000 },
          removeOnFail: { age: 24 * 3600 },
        },
      };
    }));
    const perQueue = new Map<string, number>();
    for (const c of add) perQueue.set(c.queue, (perQueue.get(c.queue) ?? 0) + 1);
    const local = this.opts.local;
    const own = local ? perQueue.get(local.queue) : undefined;
    if (own) { perQueue.delete(local!.queue); local!.wake(own); }
    await Promise.all([this.store.jobsAdded(add.map((c) => c.info.ref)), this.registry.wake(perQueue)]);
    return freed;
  }

  /**
   * Up to (stages + `taken`) idle consumers of each shared queue, in one round trip: enough to
   * give each stage one that this pass has not given a stage yet.
   */
  private async idleConsumers(queues: string[], taken: number): Promise<Map<string, string[]>> {
    const counts = new Map<string, number>();
    for (const q of queues) counts.set(q, (counts.get(q) ?? 0) + 1);
    const pipeline = this.redis.pipeline();
    for (const [q, n] of counts) pipeline.srandmember(this.keys.idleConsumers(q), n + taken);
    const replies = (await pipeline.exec()) ?? [];
    return new Map([...counts.keys()].map((q, i) => [q, (replies[i]?.[1] as string[] | null) ?? []]));
  }

  /**
   * Adds a pass's jobs. A lone job on a steady queue (a platform queue, or the own queue of the
   * consumer this dispatcher runs in: a handful per process, whatever the fleet's size) goes
   * through a Queue object kept for that queue: one script call, where the flow producer wraps
   * even one job in a MULTI with a flow's bookkeeping (~120 against ~240 µs of this process's
   * CPU per add here; at a large fleet most passes are a chain's one next stage on the own
   * queue). Anything else goes in one FlowProducer MULTI: no Queue object per worker's queue.
   */
  private async addJobs(jobs: FlowJob[]): Promise<void> {
    const [only] = jobs;
    if (jobs.length === 1 && only && isSteadyQueue(only.queueName, this.opts.local?.queue)) {
      await this.steadyQueue(only.queueName).add(only.name, only.data, only.opts);
      return;
    }
    await this.flowProducer().addBulk(jobs);
  }

  private steadyQueue(name: string): Queue {
    let q = this.steadyQueues.get(name);
    if (!q) {
      q = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix });
      q.on('error', (err) => this.onError(err));
      this.steadyQueues.set(name, q);
    }
    return q;
  }

  /** One FlowProducer adds jobs to any queue in one MULTI (no Queue object per queue name). */
  private flowProducer(): FlowProducer {
    if (!this.flows) {
      this.flows = new FlowProducer({ connection: this.redis, prefix: this.keys.bullPrefix });
      this.flows.on('error', (err) => this.onError(err));
    }
    return this.flows;
  }

  /** A Queue object for a rare operation (removal, re-homing), closed afterwards. */
  private async withQueue<T>(name: string, fn: (q: Queue) => Promise<T>): Promise<T> {
    const q = new Queue(name, { connection: this.redis, prefix: this.keys.bullPrefix });
    q.on('error', (err) => this.onError(err));
    try {
      return await fn(q);
    } finally {
      await q.close().catch(() => undefined);
    }
  }

  /** Jobs pending on a queue, read from BullMQ's keys directly (LLEN/ZCARD, one round trip). */
  async pending(name: string): Promise<number> {
    const base = `${this.keys.bullPrefix}:${name}`;
    const p = this.redis.pipeline();
    for (const t of PENDING_LISTS) p.llen(`${base}:${t}`);
    for (const t of PENDING_ZSETS) p.zcard(`${base}:${t}`);
    return ((await p.exec()) ?? []).reduce((n, [err, v]) => { if (err) throw err; return n + Number(v); }, 0);
  }

  /** Removes cancelled stages' queued jobs and tells consumers to abort their running ones. */
  async applyAbort(out: AbortOutcome): Promise<void> {
    const byQueue = new Map<string, string[]>();
    for (const { queue, jobId } of out.jobs) byQueue.set(queue, [...(byQueue.get(queue) ?? []), jobId]);
    for (const [queue, jobIds] of byQueue) {
      // Active (locked) jobs refuse removal; their consumer aborts on the cancel message.
      await this.withQueue(queue, async (q) => { for (const id of jobIds) await q.remove(id).catch(() => 0); });
    }
    for (const buildId of out.builds) await this.redis.publish(this.keys.cancelChannel, buildId);
  }

  /**
   * Re-homes jobs placed on one worker's own queue: waiting ones always, active ones only when
   * their lock has expired (the worker died). Used for dead and draining workers.
   */
  async rehome(workerId: string): Promise<number> {
    const name = workerQueueName(workerId);
    if ((await this.pending(name)) === 0) return 0;
    const refs = await this.takeJobs(name);
    const infos = (await Promise.all(refs.map((r) => this.store.dispatchInfo(r)))).filter((i): i is StageDispatchInfo => i !== null);
    // The worker being re-homed is dead or draining: the view leaves it out.
    if (infos.length > 0) await this.placeAll(infos.map((i) => ({ ...i, inputWorkers: i.inputWorkers.filter((w) => w !== workerId) })), 'r');
    return refs.length;
  }

  /**
   * The first half of re-homing: removes the queue's jobs that may go and returns their stages,
   * which placeAll then queues again. Each stage is put on recover's watch list under this
   * dispatcher's lease before its job is removed, so a crash in between gives it back to ready
   * once the lease expires (recover.lua) instead of leaving it queued on a job that is gone.
   * Only a stage's current job re-homes it (a stale job of a stage that moved on is just removed).
   */
  async takeJobs(name: string): Promise<string[]> {
    return this.withQueue(name, async (q) => {
      const jobs = (await q.getJobs(['wait', 'prioritized', 'delayed', 'paused', 'active'])).filter((j): j is Job & { id: string } => !!j.id);
      const refOf = new Map<Job, string>();
      for (const job of jobs) {
        const data = stageJobDataSchema.safeParse(job.data);
        if (data.success) refOf.set(job, data.data.ref); // else not a stage job of ours: removed, nothing to re-home
      }
      const watched = new Set(await this.store.watch([...refOf].map(([job, ref]) => ({ ref, jobId: job.id! })), this.claimer));
      const out: string[] = [];
      const kept: string[] = [];
      for (const job of jobs) {
        const ref = refOf.get(job);
        try {
          // BullMQ refuses, atomically, to remove a job whose lock is held: a live consumer's
          // active job stays; one whose lock expired with its worker is taken.
          await job.remove();
        } catch {
          if (ref && watched.has(ref)) kept.push(ref); // locked, or picked up meanwhile: its job stays
          continue;
        }
        if (ref && watched.has(ref)) out.push(ref);
      }
      await this.store.jobsAdded(kept);
      return out;
    });
  }

  /**
   * Forgets a queue (drops it from the recorded set) when no job is pending on it; used for the
   * own queues of workers that are gone, whose ids never come back.
   */
  async forgetIfIdle(name: string): Promise<boolean> {
    if ((await this.pending(name)) > 0) return false;
    await this.redis.srem(this.keys.queues, name);
    return true;
  }

  async close(): Promise<void> {
    await this.flows?.close().catch(() => undefined);
    this.flows = undefined;
    const queues = [...this.steadyQueues.values()];
    this.steadyQueues.clear();
    await Promise.all(queues.map((q) => q.close().catch(() => undefined)));
  }
}
