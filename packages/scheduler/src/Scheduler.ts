import type { RedisClient } from './connectRedis.js';
import { followBuildEvents } from './buildEvents.js';
import { connectRedis, useRedis, type RedisTarget } from './connectRedis.js';
import { Dispatcher, noWorkerMessage } from './Dispatcher.js';
import { closeRedis, describeQueueName } from '@buildyard/contracts';
import { DEFAULT_PREFIX, platformQueueName, schedulerKeys, workerQueueName, type SchedulerKeys } from './keys.js';
import { StageStore } from './StageStore.js';
import { WorkerRegistry } from './WorkerRegistry.js';
import type { BuildEvent, BuildRequest, BuildState, StagePlacement } from './types.js';

export interface SchedulerOptions {
  /** Redis key prefix shared by schedulers, consumers and the dashboard (default `buildyard:sched`: contracts' `redisKeys().scheduler.prefix`). */
  prefix?: string;
  /**
   * Running stages per tenant; a tenant at its limit waits while others proceed. A number is a
   * fixed cap (0 = unlimited); 'fleet' (the default) follows the fleet: unlimited while no other
   * tenant waits, else an equal share of the live workers' slots.
   */
  tenantLimit?: number | 'fleet';
  /** Period of the safety-net dispatch and dead-worker sweep (default 1000 ms, 0 = off). */
  tickMs?: number;
  /** How long finished builds (state, stages, events) stay in Redis (default 24 h, 0 = forever). */
  retentionSec?: number;
  /** Must match the workers' setting (default 10 s). */
  heartbeatTtlMs?: number;
  /** How long a claim outlives a dispatcher that died before queueing it (default 30 s; see DispatcherOptions). */
  claimLeaseMs?: number;
}

/** Thrown by submitBuild when a platform has no live worker; the build is recorded as failed. */
export class NoWorkerError extends Error {
  constructor(readonly platform: string) {
    super(noWorkerMessage(platform));
    this.name = 'NoWorkerError';
  }
}

/** The frontend's side: submits builds as stage jobs, cancels them, reports their progress. */
export class Scheduler {
  readonly registry: WorkerRegistry;
  readonly keys: SchedulerKeys;
  private readonly redis: RedisClient;
  private readonly owned: boolean;
  private readonly store: StageStore;
  private readonly dispatcher: Dispatcher;
  private readonly ready: Promise<unknown>;
  private readonly timer: NodeJS.Timeout | undefined;
  private readonly followers = new Set<RedisClient>();
  private ticking = false;

  constructor(redis: RedisTarget, opts: SchedulerOptions = {}) {
    const { client, owned } = useRedis(redis);
    this.redis = client;
    this.owned = owned;
    const prefix = opts.prefix ?? DEFAULT_PREFIX;
    this.keys = schedulerKeys(prefix);
    this.registry = new WorkerRegistry(client, { prefix, heartbeatTtlMs: opts.heartbeatTtlMs });
    this.store = new StageStore(client, prefix);
    const tenantLimit = opts.tenantLimit ?? 'fleet';
    this.dispatcher = new Dispatcher(client, this.keys, this.store, this.registry, { tenantLimit, claimLeaseMs: opts.claimLeaseMs });
    this.ready = client.hset(this.keys.config, 'tenantLimit', tenantLimit, 'retentionSec', opts.retentionSec ?? 86_400)
      .then(() => this.releaseHeldTenants());
    const tickMs = opts.tickMs ?? 1000;
    if (tickMs > 0) {
      this.timer = setInterval(() => void this.tick(), tickMs);
      this.timer.unref();
    }
  }

  /**
   * Records the build and queues every stage whose dependencies are done. Rejects with
   * NoWorkerError (`no worker can build linux/s390x`) when a platform some stage executes on
   * (its runPlatform, else its group's) has no live worker.
   */
  async submitBuild(req: BuildRequest): Promise<void> {
    await this.ready;
    await this.store.submit(req);
    // A platform needs a live worker only if some stage executes on it: an arm64 build whose stages
    // all run on the build platform (FROM --platform=$BUILDPLATFORM) needs no arm64 worker, as with
    // BuildKit. A group without stages keeps its own platform's check.
    const needed = [...new Set(req.platforms.flatMap((p) => p.stages.length === 0 ? [p.platform] : p.stages.map((s) => s.runPlatform ?? p.platform)))];
    const view = await this.registry.placementView(needed, []);
    for (const platform of needed) {
      const live = view.platforms.get(platform);
      if (!live || live.native + live.emulated === 0) {
        await this.dispatcher.applyAbort(await this.store.abort(req.buildId, 'failed', noWorkerMessage(platform)));
        throw new NoWorkerError(platform);
      }
    }
    await this.dispatcher.dispatch();
  }

  /** Cancels a running build: queued jobs are removed, running handlers see their AbortSignal fire. */
  async cancelBuild(buildId: string, reason = 'cancelled'): Promise<boolean> {
    const out = await this.store.abort(buildId, 'cancelled', reason);
    await this.dispatcher.applyAbort(out);
    await this.dispatcher.dispatch(); // the tenant's slots were freed
    return out.builds.includes(buildId);
  }

  getBuild(buildId: string): Promise<BuildState | null> {
    return this.store.getBuild(buildId);
  }

  /**
   * The stage queues that may hold jobs: every queue a stage was placed on (recorded at
   * placement; the own queue of a worker that is gone is forgotten once nothing is pending on
   * it) and the platform queues of the live workers. Their jobs are read through BullMQ's Queue
   * API under `keys.bullPrefix`.
   */
  async queueNames(): Promise<string[]> {
    const live = await this.registry.list();
    const names = new Set<string>();
    for (const name of await this.redis.smembers(this.keys.queues)) {
      const described = describeQueueName(name);
      const gone = described?.kind === 'worker' && !live.some((w) => w.id === described.workerId);
      if (!gone || !(await this.dispatcher.forgetIfIdle(name))) names.add(name);
    }
    for (const w of live) {
      for (const p of w.nativePlatforms) names.add(platformQueueName(p, 'native'));
      for (const p of w.emulatedPlatforms) names.add(platformQueueName(p, 'emulated'));
    }
    return [...names].sort();
  }

  /** Where a stage (`stageRef`) runs or ran; null when the scheduler has no such stage. */
  stagePlacement(ref: string): Promise<StagePlacement | null> {
    return this.store.stagePlacement(ref);
  }

  /** The build's events so far, without waiting for more (events() follows a live build). */
  async eventsSoFar(buildId: string): Promise<BuildEvent[]> {
    const tail = (await this.redis.xrevrange(this.keys.buildEvents(buildId), '+', '-', 'COUNT', 1)) as [string, string[]][];
    if (tail.length === 0) return [];
    const lastId = tail[0][0];
    const abort = new AbortController();
    const events: BuildEvent[] = [];
    for await (const ev of this.events(buildId, { signal: abort.signal })) {
      events.push(ev);
      if (ev.id === lastId) { abort.abort(); break; }
    }
    return events;
  }

  /** Per-tenant override of the running-stage limit (0 = unlimited, null = back to the default). */
  async setTenantLimit(tenant: string, limit: number | null): Promise<void> {
    const key = this.keys.tenantLimit(tenant);
    if (limit === null) await this.redis.del(key);
    else await this.redis.set(key, limit);
    await this.releaseHeldTenants();
    await this.dispatcher.dispatch();
  }

  /** A changed limit may let tenants held at the old one claim again. */
  private async releaseHeldTenants(): Promise<void> {
    await this.redis.multi().sunionstore(this.keys.tenants, this.keys.tenants, this.keys.tenantsHeld).del(this.keys.tenantsHeld).exec();
  }

  /** The build's events from the start (or after `from`), ending with its build-* event. */
  async *events(buildId: string, opts: { from?: string; signal?: AbortSignal } = {}): AsyncGenerator<BuildEvent, void, undefined> {
    const conn = connectRedis(this.redis);
    this.followers.add(conn);
    try {
      yield* followBuildEvents(conn, this.keys.buildEvents(buildId), buildId, {
        ...opts,
        exists: async () => (await this.redis.exists(this.keys.build(buildId))) === 1,
      });
    } finally {
      this.followers.delete(conn);
      conn.disconnect();
    }
  }

  /** Resolves with the final state once the build is done, failed or cancelled. */
  async waitForBuild(buildId: string, opts: { signal?: AbortSignal } = {}): Promise<BuildState> {
    for await (const _ of this.events(buildId, opts)) { /* drain until the terminal event */ }
    if (opts.signal?.aborted) throw new Error(`waiting for build ${buildId} was aborted`);
    const state = await this.getBuild(buildId);
    if (!state) throw new Error(`build ${buildId} not found; check the build id`);
    return state;
  }

  /**
   * Dispatches held-back stages, re-homes jobs placed on dead or draining workers and gives back
   * claims of dispatchers that died before queueing them.
   */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      for (const id of await this.registry.deadWorkers()) {
        await this.dispatcher.rehome(id);
        if ((await this.dispatcher.pending(workerQueueName(id))) === 0) await this.registry.remove(id);
      }
      // A tick reads no per-worker state: dead workers are one range query, draining ones a small set.
      for (const id of await this.registry.drainingWorkers()) await this.dispatcher.rehome(id);
      // Stages whose dispatcher died between claim and queue: ready again, dispatched below.
      await this.store.recoverClaims();
      await this.dispatcher.dispatch();
    } catch {
      // Redis hiccup: the next tick retries.
    } finally {
      this.ticking = false;
    }
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const c of this.followers) c.disconnect();
    await this.dispatcher.close();
    if (this.owned) await closeRedis(this.redis);
  }
}
