import type { Redis } from 'ioredis';
import { fromRedis, workerHashSchema } from '@buildyard/contracts';
import { useRedis, type RedisTarget } from './connectRedis.js';
import { DEFAULT_PREFIX, schedulerKeys, type SchedulerKeys } from './keys.js';
import type { WorkerInfo, WorkerStatus } from './types.js';

export interface WorkerRegistryOptions {
  prefix?: string;
  /** A worker whose last heartbeat is older than this is dead (default 10 s). */
  heartbeatTtlMs?: number;
}

export interface Heartbeat {
  running: number;
  cacheBytes: number;
}

/**
 * Workers in Redis: a hash of what each can build, plus an `:alive` key that expires unless the
 * worker heartbeats. Liveness is the key's existence, so a SIGKILLed worker disappears on its own.
 */
export class WorkerRegistry {
  readonly keys: SchedulerKeys;
  readonly heartbeatTtlMs: number;
  private readonly redis: Redis;
  private readonly owned: boolean;

  constructor(redis: RedisTarget, opts: WorkerRegistryOptions = {}) {
    const { client, owned } = useRedis(redis);
    this.redis = client;
    this.owned = owned;
    this.keys = schedulerKeys(opts.prefix ?? DEFAULT_PREFIX);
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? 10_000;
  }

  /** Registers (or re-registers) a worker; `draining` carries a drain over a re-registration. */
  async register(info: WorkerInfo, opts: { draining?: boolean } = {}): Promise<void> {
    if (!info.id) throw new Error('worker id is empty; give every worker a unique id');
    if (info.capacity < 1) throw new Error(`worker ${info.id}: capacity ${info.capacity} must be at least 1`);
    const now = Date.now();
    await this.redis.multi()
      .del(this.keys.worker(info.id))
      .hset(this.keys.worker(info.id), {
        nativePlatforms: JSON.stringify(info.nativePlatforms),
        emulatedPlatforms: JSON.stringify(info.emulatedPlatforms),
        capacity: info.capacity,
        cacheBytes: info.cacheBytes,
        version: info.version,
        running: 0,
        draining: opts.draining ? 1 : 0,
        registeredAt: now,
        lastHeartbeat: now,
      })
      .sadd(this.keys.workers, info.id)
      .set(this.keys.workerAlive(info.id), String(now), 'PX', this.heartbeatTtlMs)
      .exec();
  }

  /** Refreshes liveness. `registered: false` means the worker was removed and must register again. */
  async heartbeat(id: string, beat: Heartbeat): Promise<{ registered: boolean; draining: boolean }> {
    const key = this.keys.worker(id);
    if (!(await this.redis.exists(key))) return { registered: false, draining: false };
    const now = Date.now();
    const res = await this.redis.multi()
      // 'running' itself is counted atomically by the stage scripts; a heartbeat's snapshot would
      // race with them, so it is kept apart for display.
      .hset(key, { reportedRunning: beat.running, cacheBytes: beat.cacheBytes, lastHeartbeat: now })
      .sadd(this.keys.workers, id)
      .set(this.keys.workerAlive(id), String(now), 'PX', this.heartbeatTtlMs)
      .hget(key, 'draining')
      .exec();
    return { registered: true, draining: res?.[3]?.[1] === '1' };
  }

  /** Workers whose heartbeat is current, draining ones included (see `draining`). */
  async list(): Promise<WorkerStatus[]> {
    const ids = (await this.redis.smembers(this.keys.workers)).sort();
    const out: WorkerStatus[] = [];
    for (const id of ids) {
      const w = await this.get(id);
      if (w) out.push(w);
    }
    return out;
  }

  /** One alive worker, or null when it is unknown or its heartbeat expired. */
  async get(id: string): Promise<WorkerStatus | null> {
    const [h, alive] = await Promise.all([this.redis.hgetall(this.keys.worker(id)), this.redis.get(this.keys.workerAlive(id))]);
    if (!alive || !h.capacity) return null;
    const w = fromRedis(workerHashSchema, h, `the registry record of worker ${id}`);
    return { id, ...w, lastHeartbeat: w.lastHeartbeat ?? Number(alive) };
  }

  async isDraining(id: string): Promise<boolean> {
    return (await this.redis.hget(this.keys.worker(id), 'draining')) === '1';
  }

  /** Registered workers whose heartbeat expired (their placed jobs need re-homing). */
  async deadWorkers(): Promise<string[]> {
    const ids = await this.redis.smembers(this.keys.workers);
    const dead: string[] = [];
    for (const id of ids) if (!(await this.redis.exists(this.keys.workerAlive(id)))) dead.push(id);
    return dead;
  }

  /** The worker finishes its running stages and takes no new ones. */
  async drain(id: string): Promise<void> {
    if (!(await this.redis.exists(this.keys.worker(id)))) throw new Error(`worker ${id} is not registered; list workers to see their ids`);
    await this.redis.hset(this.keys.worker(id), 'draining', 1);
  }

  async undrain(id: string): Promise<void> {
    await this.redis.hset(this.keys.worker(id), 'draining', 0);
  }

  async remove(id: string): Promise<void> {
    await this.redis.multi()
      .del(this.keys.worker(id), this.keys.workerAlive(id))
      .srem(this.keys.workers, id)
      .exec();
  }

  async close(): Promise<void> {
    if (this.owned) await this.redis.quit().catch(() => undefined);
  }
}
