import type { Redis } from 'ioredis';
import { DEFAULT_KEYS, cacheRecordSchema, jsonFromRedis, type RedisKeys } from '@buildyard/contracts';
import type { CacheIndex, CacheRecord, NewCacheRecord } from './CacheRecord.js';

// First writer wins: the record, the LRU entry and the blob reference count change together.
const PUT_SCRIPT = `
local existing = redis.call('GET', KEYS[1])
if existing then return existing end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
if ARGV[4] ~= '' then redis.call('HINCRBY', KEYS[3], ARGV[4], 1) end
return ARGV[1]
`;

// Returns the digests whose last reference went away.
const DELETE_SCRIPT = `
local freed = {}
for i = 1, #ARGV do
  local recKey = KEYS[1] .. ARGV[i]
  local raw = redis.call('GET', recKey)
  if raw then
    redis.call('DEL', recKey)
    redis.call('ZREM', KEYS[2], ARGV[i])
    local rec = cjson.decode(raw)
    if type(rec.layer) == 'table' then
      local left = redis.call('HINCRBY', KEYS[3], rec.layer.digest, -1)
      if left <= 0 then
        redis.call('HDEL', KEYS[3], rec.layer.digest)
        table.insert(freed, rec.layer.digest)
      end
    end
  end
end
return freed
`;

// Marks a record used; the JSON keeps the counters so a record reads back whole.
const TOUCH_SCRIPT = `
local raw = redis.call('GET', KEYS[1])
if not raw then return nil end
local rec = cjson.decode(raw)
rec.lastUsedMs = tonumber(ARGV[1])
rec.usageCount = (rec.usageCount or 0) + 1
local updated = cjson.encode(rec)
redis.call('SET', KEYS[1], updated)
redis.call('ZADD', KEYS[2], ARGV[1], ARGV[2])
return updated
`;

export class RedisCacheIndex implements CacheIndex {
  private readonly recordPrefix: string;
  private readonly lruKey: string;
  private readonly blobRefsKey: string;

  constructor(private readonly redis: Redis, readonly tenant: string, keys: RedisKeys = DEFAULT_KEYS) {
    if (!/^[A-Za-z0-9_.-]+$/.test(tenant)) throw new Error(`invalid tenant name "${tenant}": use letters, digits, '.', '_' or '-'`);
    this.recordPrefix = keys.cache.records(tenant);
    this.lruKey = keys.cache.lru(tenant);
    this.blobRefsKey = keys.cache.blobRefs;
  }

  /** Every layer digest some record of some tenant references (the blob GC must keep these). */
  static async referencedBlobs(redis: Redis, keys: RedisKeys = DEFAULT_KEYS): Promise<Set<string>> {
    return new Set(await redis.hkeys(keys.cache.blobRefs));
  }

  private parse(raw: string, key: string): CacheRecord {
    return jsonFromRedis(cacheRecordSchema, raw, `cache record ${key.slice(0, 80)} of tenant ${this.tenant}`);
  }

  async get(key: string): Promise<CacheRecord | undefined> {
    const raw = (await this.redis.eval(TOUCH_SCRIPT, 2, this.recordPrefix + key, this.lruKey, Date.now(), key)) as string | null;
    return raw ? this.parse(raw, key) : undefined;
  }

  async put(record: NewCacheRecord): Promise<CacheRecord> {
    const now = Date.now();
    const full: CacheRecord = { ...record, createdMs: now, lastUsedMs: now, usageCount: 0 };
    const stored = (await this.redis.eval(PUT_SCRIPT, 3, this.recordPrefix + record.key, this.lruKey, this.blobRefsKey,
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
    return (await this.redis.eval(DELETE_SCRIPT, 3, this.recordPrefix, this.lruKey, this.blobRefsKey, ...keys)) as string[];
  }
}
