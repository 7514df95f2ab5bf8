import { randomUUID } from 'node:crypto';
import { Worker, type Job } from 'bullmq';
import type { RedisClient } from './connectRedis.js';
import { connectRedis, type RedisTarget } from './connectRedis.js';
import { MalformedRedisDataError, abandonRedis, keepSubscribed, stageJobDataSchema, type StageJobData } from '@buildyard/contracts';
import { Dispatcher, type ViewScope } from './Dispatcher.js';
import { DEFAULT_PREFIX, platformQueueName, schedulerKeys, workerQueueName, type SchedulerKeys } from './keys.js';
import { StageStore } from './StageStore.js';
import { WorkerRegistry } from './WorkerRegistry.js';
import type { StageHandler } from './types.js';

export interface StageConsumerOptions {
  redis: RedisTarget;
  worker: {
    id: string;
    nativePlatforms: string[];
    emulatedPlatforms: string[];
    capacity: number;
    version?: string;
    /** Bytes held in the local snapshot cache, reported with each heartbeat. */
    cacheBytes?: () => number;
  };
  handler: StageHandler;
  prefix?: string;
  /** Heartbeat period (default 5000 ms) and expiry (default 10000 ms). */
  heartbeatMs?: number;
  heartbeatTtlMs?: number;
  /** BullMQ job lock: a worker that stops renewing it for this long loses the job (default 30000 ms). */
  lockDurationMs?: number;
  /** How often lost locks are looked for (default 15000 ms). */
  stalledIntervalMs?: number;
  /** Times a stage may be recovered from dead workers before it fails (default 2). */
  maxStalledCount?: number;
  /**
   * Longest idle wait between queue polls, a safety net only: a placement wakes as many idle
   * consumers of its queue as it added jobs, directly (default 30000 ms).
   */
  pollMs?: number;
  /** Used only when no scheduler has configured the limit in Redis (default 'fleet'). */
  tenantLimit?: number | 'fleet';
  onError?: (err: Error) => void;
  /**
   * A job that only the safety poll found: a placement put it on one of this consumer's queues
   * and the wake-up meant for it never came (a lost wake-up; there should be none). The detail
   * is this consumer's view at that look, for the log.
   */
  onLostWakeUp?: (detail: LostWakeUp) => void;
}

export interface LostWakeUp {
  queue: string;
  jobId: string;
  /** Stages running when the poll fired, and the state the consumer believed it was in. */
  running: number;
  quiet: boolean;
  idleIn: string[];
  ownOwed: number;
}

interface Source {
  name: string;
  worker: Worker;
  /** undefined for the worker's own queue: emulated then depends on the job's platform. */
  emulated: boolean | undefined;
}

interface Running {
  buildId: string;
  ref: string;
  abort: AbortController;
}

/**
 * BullMQ's Worker opens a second, blocking connection (`duplicate()`) for a fetch loop this
 * consumer never runs (jobs are fetched with `block: false`): one idle connection per queue per
 * worker. The client handed to it duplicates into a view of the same connection instead, whose
 * quit/disconnect (BullMQ closing "its" connection) leave the shared one open.
 */
function withoutBlockingConnection(redis: RedisClient): RedisClient {
  const forward = (target: RedisClient, prop: string | symbol) => {
    const v = Reflect.get(target, prop, target) as unknown;
    return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
  };
  const borrowed = new Proxy(redis, {
    get: (t, prop) => (prop === 'quit' || prop === 'disconnect' ? async () => 'OK' : forward(t, prop)),
    set: () => true, // BullMQ marks a closed connection 'end'; the shared one is not closed
  });
  return new Proxy(redis, { get: (t, prop) => (prop === 'duplicate' ? () => borrowed : forward(t, prop)) });
}

function message(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.split('\n')[0] || 'stage failed without a message';
}

/**
 * The worker's side: takes stage jobs up to `capacity` at once from its own queue first, then
 * its native platforms' queues, then the emulated ones, runs the handler with an AbortSignal
 * that fires on cancellation, and reports the result atomically through the stage store.
 *
 * BullMQ's Worker is used in manual-fetch mode because one capacity is shared by several
 * queues; that makes lock renewal ours (see runJob).
 */
export class StageConsumer {
  readonly id: string;
  private readonly opts: StageConsumerOptions;
  private readonly keys: SchedulerKeys;
  private redis: RedisClient | undefined;
  private sub: RedisClient | undefined;
  private registry: WorkerRegistry | undefined;
  private store: StageStore | undefined;
  private dispatcher: Dispatcher | undefined;
  private sources: Source[] = [];
  /** Stages whose handler runs or whose outcome is being recorded: they fill the capacity. */
  private readonly running = new Map<string, Running>();
  /** Every job not yet closed, those whose slot was freed already too (close waits for them). */
  private readonly jobs = new Set<Promise<void>>();
  private heartbeatTimer: NodeJS.Timeout | undefined;
  /** The drain flag as the last heartbeat read it, kept for a re-registration. */
  private drainingSeen = false;
  private loopDone: Promise<void> | undefined;
  private closing = false;
  /** Given up on Redis while closing (abandon): what fails from then on is expected, not reported. */
  private abandoned = false;
  private wakeUp: (() => void) | undefined;
  /** A wake-up arrived while the loop was not asleep: its next sleep returns at once. */
  private woken = false;
  /** Queues whose idle set holds this consumer (a wake-up's SPOP takes it out of one). */
  private readonly idleIn = new Set<string>();
  /**
   * Queues this consumer was woken for and has not yet taken a job from: the waker chose this
   * consumer for a job there, so if the slots fill from another queue first (its own queue is
   * looked at first) the wake-up goes on to another idle consumer instead of being dropped.
   */
  private readonly owed = new Set<string>();
  /** Jobs this consumer's own dispatcher put on its own queue (woken in process) and not yet taken. */
  private ownOwed = 0;
  /**
   * Quiet: since a look that found every queue empty, this consumer has stayed in every idle set.
   * Each job added to its queues since then either woke an idle consumer through Redis (a message
   * to this one clears quiet) or is counted in `ownOwed`, so looking again would find nothing that
   * no one was woken for: a freed slot or a job just taken needs no look (at a large, mostly idle
   * fleet those empty looks were 4 of every 5 moveToActive calls of a chain, on the connection the
   * completion's dispatch uses).
   */
  private quiet = false;
  /** The last sleep ended by its timeout (the safety poll), not by a wake-up. */
  private pollFired = false;
  /** Jobs the safety poll found (see onLostWakeUp). */
  private lostWakeUpCount = 0;

  constructor(opts: StageConsumerOptions) {
    if (opts.worker.capacity < 1) throw new Error(`worker ${opts.worker.id}: capacity ${opts.worker.capacity} must be at least 1`);
    this.opts = opts;
    this.id = opts.worker.id;
    this.keys = schedulerKeys(opts.prefix ?? DEFAULT_PREFIX);
  }

  /** Number of stages this consumer is running now. */
  get runningCount(): number {
    return this.running.size;
  }

  /** Jobs that waited for the safety poll because their wake-up was lost (see onLostWakeUp). */
  get lostWakeUps(): number {
    return this.lostWakeUpCount;
  }

  async start(): Promise<void> {
    const o = this.opts;
    const prefix = o.prefix ?? DEFAULT_PREFIX;
    const redis = (this.redis = connectRedis(o.redis));
    const sub = (this.sub = connectRedis(o.redis));
    // ioredis reconnects by itself; without a listener an error event would be an uncaught exception.
    redis.on('error', (err: Error) => this.report(err));
    sub.on('error', (err: Error) => this.report(err));
    this.registry = new WorkerRegistry(redis, { prefix, heartbeatTtlMs: o.heartbeatTtlMs });
    this.store = new StageStore(redis, prefix);
    this.dispatcher = new Dispatcher(redis, this.keys, this.store, this.registry, {
      tenantLimit: o.tenantLimit ?? 'fleet',
      local: { queue: workerQueueName(this.id), wake: (jobs) => { this.ownOwed += jobs; this.wake(); } },
    }, (err) => this.report(err));
    await this.registry.register(this.info());

    const workerOpts = {
      connection: withoutBlockingConnection(redis),
      prefix: this.keys.bullPrefix,
      autorun: false,
      lockDuration: o.lockDurationMs ?? 30_000,
      stalledInterval: o.stalledIntervalMs ?? 15_000,
      maxStalledCount: o.maxStalledCount ?? 2,
    };
    const queues: Array<[string, boolean | undefined]> = [
      [workerQueueName(this.id), undefined],
      ...o.worker.nativePlatforms.map((p): [string, boolean] => [platformQueueName(p, 'native'), false]),
      ...o.worker.emulatedPlatforms.map((p): [string, boolean] => [platformQueueName(p, 'emulated'), true]),
    ];
    for (const [name, emulated] of queues) {
      // Only this consumer checks its own queue, so that check always runs BullMQ's full stalled
      // script (~9 commands), while the shared queues' checks are split across the fleet by
      // BullMQ's lock: a quarter of the rate on the own queue is most of a worker's idle cost
      // saved. A dead worker never checks its own queue anyway: the scheduler's tick re-homes it.
      const own = emulated === undefined;
      const worker = new Worker(name, null, own ? { ...workerOpts, stalledInterval: 4 * workerOpts.stalledInterval } : workerOpts);
      worker.on('error', (err) => this.report(err));
      // A stage that stalled too often is failed by BullMQ without any handler seeing it.
      worker.on('failed', (job, err) => { if (job) void this.onBullFailed(job, err); });
      // A job recovered from a dead worker is back on the queue without a placement: wake a taker.
      worker.on('stalled', () => {
        this.wake();
        void this.registry?.wake(new Map([[name, 1]])).catch((err) => this.report(err));
      });
      this.sources.push({ name, worker, emulated });
    }
    for (const s of this.sources) await s.worker.startStalledCheckTimer();

    sub.on('message', (channel: string, msg: string) => this.onMessage(channel, msg));
    // After each confirmed subscription (the first, and again after a reconnect): wake-ups sent
    // while it was down are lost, and the idle sets' SPOPs that sent them took this consumer out,
    // so it enters every idle set again (only now, when a wake-up can reach it) and looks.
    await keepSubscribed(sub, [this.keys.cancelChannel, this.keys.wakeChannel(this.id)], (err) => this.report(err), () => { this.leaveIdle(); this.wake(); });
    this.heartbeatTimer = setInterval(() => void this.heartbeat(), o.heartbeatMs ?? 5000);
    this.loopDone = this.loop();
  }

  /** Finishes running stages, hands back jobs placed on this worker, and deregisters. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await this.registry?.drain(this.id).catch(() => undefined);
    this.wake();
    await this.loopDone;
    this.passOnWakeUps();
    await Promise.all(this.jobs);
    // A finished stage's dependents are being placed (claimed, not yet queued): quitting Redis
    // now would leave them 'dispatching' for ever, and their build hung (a drain in a rolling restart).
    await this.dispatcher?.dispatch().catch((err) => this.report(err));
    if (this.heartbeatTimer) clearInterval(this.heartbeatTimer);
    await this.dispatcher?.rehome(this.id).catch((err) => this.report(err));
    await Promise.all(this.sources.map((s) => s.worker.close().catch(() => undefined)));
    await this.registry?.remove(this.id).catch(() => undefined);
    await this.dispatcher?.close();
    this.sub?.disconnect();
    await this.redis?.quit().catch(() => undefined);
  }

  /**
   * Gives up on a close() that cannot finish because Redis does not answer: the running stages
   * are aborted and this consumer's connections closed, so whatever waits on Redis fails at once
   * and close() returns. Nothing is handed back: the jobs' locks expire, and once Redis is back
   * another worker runs those stages again, as after a crash.
   */
  abandon(reason: Error): void {
    this.closing = true;
    this.abandoned = true;
    for (const r of this.running.values()) r.abort.abort(reason);
    for (const client of [this.sub, this.redis]) if (client) abandonRedis(client, reason);
  }

  private info() {
    const w = this.opts.worker;
    return {
      id: w.id, nativePlatforms: w.nativePlatforms, emulatedPlatforms: w.emulatedPlatforms,
      capacity: w.capacity, cacheBytes: w.cacheBytes?.() ?? 0, version: w.version ?? '',
    };
  }

  private report(err: unknown): void {
    if (this.abandoned || (this.closing && /Connection is closed/.test(message(err)))) return;
    this.opts.onError?.(err instanceof Error ? err : new Error(String(err)));
  }

  private async heartbeat(): Promise<void> {
    try {
      const beat = await this.registry!.heartbeat(this.id, { running: this.running.size, cacheBytes: this.opts.worker.cacheBytes?.() ?? 0 });
      if (beat.registered) this.setDraining(beat.draining);
      // A worker swept as dead (a heartbeat starved of CPU, say) comes back still draining if it
      // was; registering took it out of every idle set.
      else if (!this.closing) {
        this.leaveIdle();
        await this.registry!.register(this.info(), { draining: this.drainingSeen });
        // Registering took it out of every idle set, also out of those a look entered while the
        // registration was on its way: it enters them again on its next look.
        this.leaveIdle();
        this.wake();
      }
    } catch (err) {
      this.report(err);
    }
  }

  /** The drain flag as the registry has it; draining took this worker out of every idle set. */
  private setDraining(draining: boolean): void {
    if (draining) this.leaveIdle();
    if (draining === this.drainingSeen) return;
    this.drainingSeen = draining;
    if (!draining) this.wake();
  }

  private onMessage(channel: string, msg: string): void {
    if (channel === this.keys.cancelChannel) return this.abortBuild(msg, 'build cancelled');
    if (msg === 'drain' || msg === 'undrain') return this.setDraining(msg === 'drain');
    // A wake-up for a job on queue `msg`; the waker's SPOP took us out of that queue's idle set.
    this.leaveIdle(msg);
    this.owed.add(msg);
    // Full meanwhile: the job is someone else's to take.
    if (this.closing || this.drainingSeen || this.running.size >= this.opts.worker.capacity) return this.passOnWakeUps();
    this.wake();
  }

  /** Hands the wake-ups this consumer cannot use to other idle consumers of those queues. */
  private passOnWakeUps(): void {
    if (this.owed.size === 0) return;
    const perQueue = new Map([...this.owed].map((q): [string, number] => [q, 1]));
    this.owed.clear();
    void this.registry!.wake(perQueue).catch((err) => this.report(err));
  }

  /**
   * Enters (or leaves) the idle sets of this consumer's queues. Entering happens before looking
   * at the queues, so a job added after an empty look still finds this consumer to wake.
   */
  private async setIdle(on: boolean): Promise<void> {
    const todo = on ? this.sources.map((s) => s.name).filter((q) => !this.idleIn.has(q)) : [...this.idleIn];
    if (todo.length === 0) return;
    const p = this.redis!.pipeline();
    for (const q of todo) {
      // Marked before the command runs: a wake-up that follows it then finds the mark to clear.
      if (on) { this.idleIn.add(q); p.sadd(this.keys.idleConsumers(q), this.id); }
      else { this.leaveIdle(q); p.srem(this.keys.idleConsumers(q), this.id); }
    }
    try {
      for (const [err] of (await p.exec()) ?? []) if (err) throw err;
    } catch (err) {
      // Not known to be in those sets: the next look sends their SADDs again.
      if (on) for (const q of todo) this.leaveIdle(q);
      throw err;
    }
  }

  /** This consumer is out of one queue's idle set (or all): it is no longer sure to be woken. */
  private leaveIdle(queue?: string): void {
    if (queue === undefined) this.idleIn.clear();
    else this.idleIn.delete(queue);
    this.quiet = false;
  }

  /** Nothing to look for: every job on this consumer's queues is one some consumer was woken for. */
  private nothingToFind(): boolean {
    return this.quiet && this.ownOwed === 0;
  }

  private wake(): void {
    const w = this.wakeUp;
    this.wakeUp = undefined;
    if (w) w();
    else this.woken = true;
  }

  private sleep(ms: number): Promise<void> {
    if (this.woken) {
      this.woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const t = setTimeout(() => { this.wakeUp = undefined; this.pollFired = true; resolve(); }, ms);
      this.wakeUp = () => { clearTimeout(t); resolve(); };
    });
  }

  private abortBuild(buildId: string, reason: string): void {
    for (const r of this.running.values()) if (r.buildId === buildId) r.abort.abort(new Error(reason));
  }

  private async loop(): Promise<void> {
    const pollMs = this.opts.pollMs ?? 30_000;
    const capacity = this.opts.worker.capacity;
    while (!this.closing) {
      let took = false;
      // Looking now covers any wake-up that came before.
      this.woken = false;
      const byPoll = this.pollFired ? this.lostWakeUpDetail() : undefined;
      this.pollFired = false;
      // The poll also mends what it might have hidden: the idle sets are entered again, in case
      // this consumer is out of one it counts itself in (it could then never be woken there).
      if (byPoll) this.leaveIdle();
      try {
        if (this.running.size < capacity && !this.drainingSeen) {
          // Sent ahead of the look on the same connection (Redis runs them in order), so a job
          // added after an empty look still finds this consumer to wake, without a round trip
          // of its own before the look.
          const idle = this.setIdle(true);
          idle.catch(() => undefined); // awaited below, after the look
          took = await this.fetchOne(byPoll);
          await idle;
          // Every queue was looked at and held nothing: the jobs woken for went to others. Still
          // in every idle set (the SADDs went ahead of the look, no wake-up took this consumer out
          // since), every job added from now on wakes someone.
          if (!took) {
            this.owed.clear();
            if (this.sources.every((s) => this.idleIn.has(s.name))) this.quiet = true;
          }
          if (this.running.size >= capacity) {
            await this.setIdle(false);
            this.passOnWakeUps();
          }
        } else {
          await this.setIdle(false);
          this.passOnWakeUps();
        }
      } catch (err) {
        this.report(err);
      }
      if ((!took || this.nothingToFind()) && !this.closing) await this.sleep(pollMs);
    }
  }

  /** This consumer's state as a safety poll fires, reported if the poll finds a job. */
  private lostWakeUpDetail(): Omit<LostWakeUp, 'queue' | 'jobId'> {
    return { running: this.running.size, quiet: this.quiet, idleIn: [...this.idleIn], ownOwed: this.ownOwed };
  }

  private async fetchOne(byPoll?: Omit<LostWakeUp, 'queue' | 'jobId'>): Promise<boolean> {
    for (const source of this.sources) {
      if (this.closing) return false;
      const token = randomUUID();
      const job = (await source.worker.getNextJob(token, { block: false })) as Job<StageJobData> | undefined;
      if (source.emulated === undefined) this.ownOwed = job ? Math.max(0, this.ownOwed - 1) : 0;
      if (job) {
        // Found only because the poll fired: no wake-up came for it (a shared queue's job may
        // be one another consumer was woken for and has not taken yet: those count too).
        if (byPoll) {
          this.lostWakeUpCount++;
          this.opts.onLostWakeUp?.({ ...byPoll, queue: source.name, jobId: job.id ?? '' });
        }
        this.owed.delete(source.name);
        this.startJob(job, token, source);
        return true;
      }
    }
    return false;
  }

  private startJob(job: Job<StageJobData>, token: string, source: Source): void {
    const checked = stageJobDataSchema.safeParse(job.data);
    if (!checked.success) {
      // Not a job the scheduler wrote (or of an incompatible version): fail it rather than run garbage.
      const err = new MalformedRedisDataError(`stage job ${job.queueName}/${job.id}`, checked.error.issues[0]?.message ?? 'invalid');
      this.report(err);
      void job.moveToFailed(err, token, false).catch((e) => this.report(e));
      return;
    }
    const entry: Running = { buildId: job.data.buildId, ref: job.data.ref, abort: new AbortController() };
    const key = `${job.queueName}/${job.id}`;
    this.running.set(key, entry);
    // The slot frees once the stage's outcome is recorded: closing its BullMQ job only tidies
    // the queue, and the next job is fetched meanwhile. `claim`: look for stages to place (the
    // completion path sends its claim itself, right behind the completion).
    let freed = false;
    const free = (claim: boolean) => {
      if (freed) return;
      freed = true;
      this.running.delete(key);
      if (claim) this.dispatch();
      // A quiet consumer with a free slot is in every idle set already: what is added wakes it.
      if (!this.nothingToFind()) this.wake();
    };
    const done: Promise<void> = this.runJob(job, token, source, entry, free)
      .catch((err) => this.report(err))
      .finally(() => {
        free(true);
        this.jobs.delete(done);
      });
    this.jobs.add(done);
  }

  private dispatch(expect?: ViewScope): void {
    this.dispatcher!.dispatch(expect).catch((err) => this.report(err));
  }

  private async runJob(job: Job<StageJobData>, token: string, source: Source, entry: Running, free: (claim: boolean) => void): Promise<void> {
    const store = this.store!;
    const data = job.data;
    const jobId = job.id ?? '';
    // Where the stage executes decides emulation (a $BUILDPLATFORM stage of an arm64 build runs amd64).
    const emulated = source.emulated ?? !this.opts.worker.nativePlatforms.includes(data.runPlatform ?? data.platform);
    const lockMs = this.opts.lockDurationMs ?? 30_000;
    // Manual fetching means nobody renews our lock; losing it means another worker has the stage.
    const lockTimer = setInterval(() => {
      job.extendLock(token, lockMs).then((ok) => {
        if (!ok) entry.abort.abort(new Error('lost the job lock; the stage moved to another worker'));
      }, (err) => this.report(err));
    }, Math.max(100, Math.floor(lockMs / 3)));
    // Pub/sub may miss a message during a reconnect; the stage state is the source of truth.
    const cancelPoll = setInterval(() => {
      this.redis!.hget(this.keys.stage(data.ref), 'state').then((s) => {
        if (s === 'cancelled') entry.abort.abort(new Error('build cancelled'));
      }, () => undefined);
    }, 1000);
    try {
      const started = await store.start(data.ref, this.id, emulated, jobId);
      if (started.kind === 'skip') {
        free(true);
        await job.moveToCompleted({ skipped: started.state }, token, false).catch(() => undefined);
        return;
      }
      let result: unknown;
      try {
        result = await this.opts.handler({
          buildId: data.buildId, tenant: started.tenant, platform: data.platform, stageId: data.stageId,
          cacheKey: started.cacheKey, payload: started.payload, emulated, traceContext: started.traceContext,
          inputs: started.inputs, attempt: started.attempt,
        }, entry.abort.signal);
      } catch (err) {
        if (entry.abort.signal.aborted) {
          await store.release(data.ref, this.id);
          free(true);
          await job.moveToCompleted({ aborted: true }, token, false).catch(() => undefined);
          return;
        }
        const out = await store.fail(data.ref, this.id, message(err), jobId);
        await this.dispatcher!.applyAbort(out);
        free(true);
        await job.moveToFailed(err instanceof Error ? err : new Error(message(err)), token, false).catch(() => undefined);
        return;
      }
      if (entry.abort.signal.aborted) {
        await store.release(data.ref, this.id);
        free(true);
        await job.moveToCompleted({ aborted: true }, token, false).catch(() => undefined);
        return;
      }
      const json = JSON.stringify(result ?? null);
      // The claim of the stages it makes ready goes out right behind the completion, on the same
      // connection, before either reply (both calls send before their first await): the next
      // stage of a chain is claimed without a round trip of its own in between. A completion
      // that first asked for keys changed nothing on that call: the claim is sent again then.
      const completed = store.complete(data.ref, this.id, emulated, json, jobId);
      // Its dependents most likely run where it ran: the placement view rides with the claim.
      this.dispatch(started.hasDependents ? { platforms: [data.runPlatform ?? data.platform], holders: [this.id] } : undefined);
      free((await completed).calls > 1);
      await job.moveToCompleted(result ?? null, token, false).catch(() => undefined);
    } finally {
      clearInterval(lockTimer);
      clearInterval(cancelPoll);
    }
  }

  private async onBullFailed(job: Job, err: Error): Promise<void> {
    if (!/stalled/i.test(err.message)) return;
    const parsed = stageJobDataSchema.safeParse(job.data);
    if (!parsed.success) return; // not a stage job of ours: nothing to re-home
    const data = parsed.data;
    try {
      const state = await this.redis!.hget(this.keys.stage(data.ref), 'state');
      if (state !== 'running' && state !== 'queued') return;
      const out = await this.store!.abort(data.buildId, 'failed',
        `stage ${data.stageId} (${data.platform}) was lost with its worker too many times; check the workers' health`);
      await this.dispatcher!.applyAbort(out);
    } catch (e) {
      this.report(e);
    }
  }
}
