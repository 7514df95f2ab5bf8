import type { RedisClient as Redis } from '@buildyard/contracts';
import { DEFAULT_KEYS, cacheRecordSchema, jsonFromRedis, luaCommands, type LuaCommand, type LuaScript, type RedisKeys } from '@buildyard/contracts';
import type { CacheIndex, CacheRecord, NewCacheRecord } from './CacheRecord.js';

// Each change of a record, its LRU entry and the blob reference counts is one script (../lua).
const LUA_DIR = new URL('../lua/', import.meta.url);
const SCRIPTS: Record<'put' | 'delete' | 'touch', LuaScript> = {
  put: { files: ['cache_put.lua'], keys: 3 },
  delete: { files: ['cache_delete.lua'], keys: 'dynamic' },
  touch: { files: ['cache_touch.lua'], keys: 2 },
};

export class RedisCacheIndex implements CacheIndex {
  private readonly recordPrefix: string;
  private readonly lruKey: string;
  private readonly blobRefsKey: string;
  private readonly scripts: Record<keyof typeof SCRIPTS, LuaCommand>;

  constructor(private readonly redis: Redis, readonly tenant: string, keys: RedisKeys = DEFAULT_KEYS) {
    if (!/^[A-Za-z0-9_.-]+$/.test(tenant)) throw new Error(`invalid tenant name "${tenant}": use letters, digits, '.', '_' or '-'`);
    this.recordPrefix = keys.cache.records(tenant);
    this.lruKey = keys.cache.lru(tenant);
    this.blobRefsKey = keys.cache.blobRefs;
    this.scripts = luaCommands(redis, 'buildyard_cache', LUA_DIR, SCRIPTS);
  }

  /** Every layer digest some record of some tenant references (the blob GC must keep these). */
  static async referencedBlobs(redis: Redis, keys: RedisKeys = DEFAULT_KEYS): Promise<Set<string>> {
    return new Set(await redis.hkeys(keys.cache.blobRefs));
  }

  private parse(raw: string, key: string): CacheRecord {
    return jsonFromRedis(cacheRecordSchema, raw, `cache record ${key.slice(0, 80)} of tenant ${this.tenant}`);
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const raw = (await this.scripts.touch(this.recordPrefix + key, this.lruKey, Date.now(), key)) as string | null;
    return raw ? this.parse(raw, key) : undefined;
  }

  /**
   * Looks many keys up in one round trip: a pipeline of get()'s script (each found record is
   * marked used), in `keys` order. A frontend answers a whole unchanged build with this.
   */
  async getMany(keys: readonly string[]): Promise<Array<CacheRecord | undefined>> {
    if (keys.length === 0) return [];
    const now = Date.now();
    // luaCommands registers the scripts under `<namespace>_<name>`; ioredis gives pipelines every defined command.
    const pipeline = this.redis.pipeline() as unknown as Record<string, (...args: Array<string | number>) => unknown> & { exec(): Promise<Array<[Error | null, unknown]> | null> };
    for (const key of keys) pipeline.buildyard_cache_touch(this.recordPrefix + key, this.lruKey, now, key);
    const replies = (await pipeline.exec()) ?? [];
    return keys.map((key, i) => {
      const [err, raw] = replies[i] ?? [new Error('no reply'), null];
      if (err) throw new Error(`looking cache record ${key.slice(0, 80)} of tenant ${this.tenant} up failed: ${err.message}`);
      return raw ? this.parse(raw as string, key) : undefined;
    });
  }

  async put(record: NewCacheRecord): Promise<CacheRecord> {
    const now = Date.now();
    const full: CacheRecord = { ...record, createdMs: now, lastUsedMs: now, usageCount: 0 };
    const stored = (await this.scripts.put(this.recordPrefix + record.key, this.lruKey, this.blobRefsKey,
      JSON.stringify(full), now, record.key, record.layer?.digest ?? '')) as string;
    return this.parse(stored, record.key);
  }

  async list(): Promise<CacheRecord[]> {
    const keys = await this.redis.zrange(this.lruKey, 0, -1);
    if (keys.length === 0) return [];
    const raws = await this.redis.mget(keys.map((k) => this.recordPrefix + k));
    return raws.flatMap((r, i) => (r === null ? [] : [this.parse(r, keys[i])]));
  }

  async delete(keys: string[]): Promise<string[]> {
    if (keys.length === 0) return [];
    const unique = [...new Set(keys)];
    return (await this.scripts.delete(2 + unique.length, this.lruKey, this.blobRefsKey, ...unique.map((k) => this.recordPrefix + k), ...unique)) as string[];
  }
}
