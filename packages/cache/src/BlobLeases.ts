import type { Redis } from 'ioredis';
import { DEFAULT_KEYS, type RedisKeys } from '@buildyard/contracts';

// Adds digests to a build's lease and pushes its expiry out, atomically.
const LEASE_SCRIPT = `
redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
local setKey = KEYS[2]
for i = 3, #ARGV do redis.call('SADD', setKey, ARGV[i]) end
redis.call('PEXPIREAT', setKey, ARGV[1])
return 1
`;

// Drops expired leases, then returns every digest still leased.
const LEASED_SCRIPT = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
for _, id in ipairs(expired) do redis.call('DEL', ARGV[2] .. id) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
local ids = redis.call('ZRANGE', KEYS[1], 0, -1)
local out = {}
local seen = {}
for _, id in ipairs(ids) do
  for _, d in ipairs(redis.call('SMEMBERS', ARGV[2] .. id)) do
    if not seen[d] then seen[d] = true; table.insert(out, d) end
  end
end
return out
`;

/**
 * Blobs a running build depends on, so that a prune never removes them under it. A lease
 * belongs to a build id and expires by itself (a frontend that dies cannot leak it forever).
 */
export class BlobLeases {
  constructor(private readonly redis: Redis, private readonly keys: RedisKeys = DEFAULT_KEYS) {}

  /** Adds `digests` to the build's lease and extends it to now + ttlMs. */
  async lease(buildId: string, digests: Iterable<string>, ttlMs: number): Promise<void> {
    if (!buildId || buildId.includes(' ')) throw new Error(`invalid build id "${buildId}" for a blob lease`);
    const list = [...new Set(digests)];
    const expiresAt = Date.now() + ttlMs;
    await this.redis.eval(LEASE_SCRIPT, 2, this.keys.leases.expiries, this.keys.leases.build(buildId), expiresAt, buildId, ...list);
  }

  async release(buildId: string): Promise<void> {
    await this.redis.multi().zrem(this.keys.leases.expiries, buildId).del(this.keys.leases.build(buildId)).exec();
  }

  /** Every digest under an unexpired lease. */
  async leased(): Promise<Set<string>> {
    const digests = (await this.redis.eval(LEASED_SCRIPT, 1, this.keys.leases.expiries, Date.now(), this.keys.leases.buildPrefix)) as string[];
    return new Set(digests);
  }
}
