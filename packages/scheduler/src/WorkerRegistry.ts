import type { RedisClient } from './connectRedis.js';
import { closeRedis, fromRedis, jsonFromRedis, luaCommands, placementViewSchema, workerHashSchema, type LuaCommand, type LuaScript } from '@buildyard/contracts';
import { useRedis, type RedisTarget } from './connectRedis.js';
import { DEFAULT_PREFIX, fixedScriptKeys, schedulerKeys, workerQueueName, type SchedulerKeys } from './keys.js';
import { callDeclared, positionalArgs } from './scriptCall.js';
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

/** What placement knows of a worker that holds a stage's inputs. */
export interface HolderStatus {
  capacity: number;
  running: number;
  draining: boolean;
  nativePlatforms: string[];
  emulatedPlatforms: string[];
  /** Jobs waiting on its own queue. */
  queued: number;
}

/** Live, not draining workers of one platform, by class. */
export interface PlatformCount {
  native: number;
  emulated: number;
}

export interface PlacementView {
  platforms: Map<string, PlatformCount>;
  /** Live input holders only: a dead or unknown one is absent. */
  holders: Map<string, HolderStatus>;
}

type Script = 'register' | 'heartbeat' | 'live' | 'dead' | 'drain' | 'remove' | 'view' | 'wake';
const LUA_DIR = new URL('../lua/', import.meta.url);
// KEYS: the fixed keys, then the call's own: by label (asked for when found by what the script
// reads; see prelude.lua), or by position for w_view and w_wake (see each script's header).
const script = (file: string): LuaScript => ({ files: ['prelude.lua', 'workers_prelude.lua', file], keys: 'dynamic' });
const SCRIPTS: Record<Script, LuaScript> = {
  register: script('w_register.lua'), heartbeat: script('w_heartbeat.lua'), live: script('w_live.lua'), dead: script('w_dead.lua'),
  drain: script('w_drain.lua'), remove: script('w_remove.lua'), view: script('w_view.lua'), wake: script('w_wake.lua'),
};

/**
 * Workers in Redis: a hash of what each can build, a heartbeat expiry in one sorted set (on
 * Redis's clock; a SIGKILLed worker simply stops renewing it) and, per platform and class, a
 * sorted set of the live workers that are not draining. Every operation is one script, so a
 * lookup costs one round trip whatever the fleet's size.
 */
export class WorkerRegistry {
  readonly keys: SchedulerKeys;
  readonly heartbeatTtlMs: number;
  private readonly redis: RedisClient;
  private readonly owned: boolean;
  private readonly scripts: Record<Script, LuaCommand>;
  /** What each worker's last heartbeat reported: an unchanged report is not written again. */
  private readonly reported = new Map<string, string>();
  /** Per worker, the labels of its platform sets its scripts asked for: a heartbeat then needs one call. */
  private readonly platformLabels = new Map<string, string[]>();

  constructor(redis: RedisTarget, opts: WorkerRegistryOptions = {}) {
    const { client, owned } = useRedis(redis);
    this.redis = client;
    this.owned = owned;
    this.keys = schedulerKeys(opts.prefix ?? DEFAULT_PREFIX);
    this.heartbeatTtlMs = opts.heartbeatTtlMs ?? 10_000;
    this.scripts = luaCommands(client, 'buildyard_workers', LUA_DIR, SCRIPTS);
  }

  /** Runs a script on one worker (or none: ''), declaring its hash and the platform sets asked for before. */
  private async run(name: Script, id: string, args: Array<string | number>): Promise<unknown> {
    const known = id ? [`w:${id}`, ...(this.platformLabels.get(id) ?? [])] : [];
    const { reply, labels } = await callDeclared(this.scripts[name], name, this.keys, fixedScriptKeys(this.keys), known, args);
    if (id) {
      if (this.platformLabels.size >= 10_000) this.platformLabels.clear();
      this.platformLabels.set(id, [...labels].filter((l) => l.startsWith('pn:') || l.startsWith('pe:')));
    }
    return reply;
  }

  private runPositional(name: Script, keys: string[], args: Array<string | number>): Promise<unknown> {
    return this.scripts[name](...positionalArgs(this.keys, fixedScriptKeys(this.keys), keys, args));
  }

  /** Registers (or re-registers) a worker; `draining` carries a drain over a re-registration. */
  async register(info: WorkerInfo, opts: { draining?: boolean } = {}): Promise<void> {
    if (!info.id) throw new Error('worker id is empty; give every worker a unique id');
    if (info.capacity < 1) throw new Error(`worker ${info.id}: capacity ${info.capacity} must be at least 1`);
    this.reported.delete(info.id);
    this.platformLabels.set(info.id, [...info.nativePlatforms.map((p) => `pn:${p}`), ...info.emulatedPlatforms.map((p) => `pe:${p}`)]);
    await this.run('register', info.id, [info.id, this.heartbeatTtlMs, JSON.stringify(info.nativePlatforms), JSON.stringify(info.emulatedPlatforms),
      info.capacity, info.cacheBytes, info.version, opts.draining ? 1 : 0]);
  }

  /**
   * Refreshes liveness and returns the drain flag with it. `registered: false` means the worker
   * was removed and must register again.
   */
  async heartbeat(id: string, beat: Heartbeat): Promise<{ registered: boolean; draining: boolean }> {
    const report = `${beat.running} ${beat.cacheBytes}`;
    const changed = this.reported.get(id) !== report;
    const r = Number(await this.run('heartbeat', id, [id, this.heartbeatTtlMs, changed ? beat.running : '', changed ? beat.cacheBytes : '']));
    if (r >= 0) this.reported.set(id, report);
    else this.reported.delete(id);
    return { registered: r >= 0, draining: r === 1 };
  }

  private async live(ids: string[]): Promise<WorkerStatus[]> {
    const raw = (await callDeclared(this.scripts.live, 'live', this.keys, fixedScriptKeys(this.keys), ids.map((id) => `w:${id}`), ids)).reply as Array<[string, string, string[]]>;
    return raw.map(([id, expiry, flat]) => {
      const h: Record<string, string> = {};
      for (let i = 0; i + 1 < flat.length; i += 2) h[flat[i]] = flat[i + 1];
      const w = fromRedis(workerHashSchema, h, `the registry record of worker ${id}`);
      return { id, ...w, lastHeartbeat: w.lastHeartbeat ?? Number(expiry) - this.heartbeatTtlMs };
    });
  }

  /** Workers whose heartbeat is current, draining ones included (see `draining`), in one round trip. */
  async list(): Promise<WorkerStatus[]> {
    return (await this.live([])).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /** One alive worker, or null when it is unknown or its heartbeat expired. */
  async get(id: string): Promise<WorkerStatus | null> {
    return (await this.live([id]))[0] ?? null;
  }

  async isDraining(id: string): Promise<boolean> {
    return (await this.redis.hget(this.keys.worker(id), 'draining')) === '1';
  }

  /**
   * Registered workers whose heartbeat expired (their placed jobs need re-homing), in one script.
   * For the scheduler's periodic sweep only: it counts the sweeps themselves, and takes a pause
   * between two of more than half the heartbeat TTL for an outage of Redis, whose expiries it
   * forgives until a TTL has passed (see w_dead.lua; workers beat at least twice per TTL).
   */
  async deadWorkers(): Promise<string[]> {
    return (await this.runPositional('dead', [], [this.heartbeatTtlMs, Math.floor(this.heartbeatTtlMs / 2)])) as string[];
  }

  /** Registered workers that are draining (their queued jobs need re-homing). */
  async drainingWorkers(): Promise<string[]> {
    return this.redis.smembers(this.keys.workersDraining);
  }

  /** Live worker counts per platform and the state of the given input holders, in one round trip. */
  async placementView(platforms: string[], holders: string[]): Promise<PlacementView> {
    const k = this.keys;
    const keys = [
      ...platforms.flatMap((p) => [k.platformWorkers(p, 'native'), k.platformWorkers(p, 'emulated')]),
      ...holders.flatMap((id) => [k.worker(id), `${k.bullQueue(workerQueueName(id))}:wait`, `${k.bullQueue(workerQueueName(id))}:prioritized`]),
    ];
    const raw = jsonFromRedis(placementViewSchema, (await this.runPositional('view', keys, [JSON.stringify({ platforms, holders })])) as string, 'the placement view of the worker registry');
    return { platforms: new Map(Object.entries(raw.platforms)), holders: new Map(Object.entries(raw.holders)) };
  }

  /** Wakes as many idle consumers of each queue as jobs were added to it. */
  async wake(added: Map<string, number>): Promise<void> {
    if (added.size === 0) return;
    await this.runPositional('wake', [...added.keys()].map((q) => this.keys.idleConsumers(q)), [...added].flat());
  }

  /** The worker finishes its running stages and takes no new ones (it is told at once). */
  async drain(id: string): Promise<void> {
    if (Number(await this.run('drain', id, [id, 1])) !== 1) throw new Error(`worker ${id} is not registered; list workers to see their ids`);
  }

  async undrain(id: string): Promise<void> {
    await this.run('drain', id, [id, 0]);
  }

  async remove(id: string): Promise<void> {
    await this.run('remove', id, [id]);
    this.platformLabels.delete(id);
  }

  async close(): Promise<void> {
    if (this.owned) await closeRedis(this.redis);
  }
}
