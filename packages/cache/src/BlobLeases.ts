import type { RedisClient as Redis } from '@buildyard/contracts';
import { DEFAULT_KEYS, luaCommands, type LuaCommand, type LuaScript, type RedisKeys } from '@buildyard/contracts';

// Taking a lease and listing live ones (dropping expired ones) are scripts under ../lua.
const LUA_DIR = new URL('../lua/', import.meta.url);
const SCRIPTS: Record<'lease' | 'leased' | 'endScope', LuaScript> = {
  lease: { files: ['lease.lua'], keys: 2 }, leased: { files: ['leased.lua'], keys: 'dynamic' }, endScope: { files: ['lease_scope_end.lua'], keys: 4 },
};

/** How long a build's "ended" mark stays: as long as any lease taken for it can last. */
const ENDED_MARK_MS = 24 * 3600_000;

/**
 * Blobs a running build depends on, so that a prune never removes them under it. A lease
 * belongs to a build id and expires by itself (a frontend that dies cannot leak it forever).
 */
export class BlobLeases {
  private readonly scripts: Record<keyof typeof SCRIPTS, LuaCommand>;

  constructor(private readonly redis: Redis, private readonly keys: RedisKeys = DEFAULT_KEYS) {
    this.scripts = luaCommands(redis, 'buildyard_leases', LUA_DIR, SCRIPTS);
  }

  /** Adds `digests` to the build's lease and extends it to now + ttlMs. */
  async lease(buildId: string, digests: Iterable<string>, ttlMs: number): Promise<void> {
    if (!buildId || buildId.includes(' ')) throw new Error(`invalid build id "${buildId}" for a blob lease`);
    const list = [...new Set(digests)];
    const expiresAt = Date.now() + ttlMs;
    await this.scripts.lease(this.keys.leases.expiries, this.keys.leases.build(buildId), expiresAt, buildId, ...list);
  }

  /** Ends the build's lease, and marks it ended for stage scopes still running (endScope). */
  async release(buildId: string): Promise<void> {
    const { leases } = this.keys;
    await this.redis.multi().zrem(leases.expiries, buildId).del(leases.build(buildId)).set(leases.ended(buildId), '1', 'PX', ENDED_MARK_MS).exec();
  }

  /**
   * Ends the lease of one stage's write scope, held as `scopeHolder`: its digests join the
   * build's lease while the build runs, and are released at once if the build already ended (a
   * stage that outlived its cancelled build). Never releases a scope that is still writing.
   */
  async endScope(buildId: string, scopeHolder: string): Promise<void> {
    const { leases } = this.keys;
    await this.scripts.endScope(leases.expiries, leases.build(buildId), leases.build(scopeHolder), leases.ended(buildId), buildId, scopeHolder);
  }

  /**
   * Of `digests`, those under an unexpired lease. Not one snapshot, and need not be: a lease taken
   * before this call started is seen (a lease adds its holder and its digests at once), which is
   * what a deleter that announced first relies on (ContextBlobGuard, blobWrites.ts).
   */
  async leasedAmong(digests: readonly string[]): Promise<Set<string>> {
    const out = new Set<string>();
    if (digests.length === 0) return out;
    const now = Date.now();
    const flat = await this.redis.zrange(this.keys.leases.expiries, 0, -1, 'WITHSCORES');
    const live: string[] = [];
    for (let i = 0; i < flat.length; i += 2) if (Number(flat[i + 1]) > now) live.push(flat[i]!);
    if (live.length === 0) return out;
    // One round trip for every holder (all lease keys share one hash slot, so Redis Cluster too).
    const pipe = this.redis.pipeline();
    for (const id of live) pipe.smismember(this.keys.leases.build(id), ...digests);
    for (const [err, member] of (await pipe.exec()) ?? []) {
      if (err) throw err;
      digests.forEach((d, i) => { if ((member as number[])[i] === 1) out.add(d); });
    }
    return out;
  }

  /** Every digest under an unexpired lease. */
  async leased(): Promise<Set<string>> {
    // The script declares every key it touches (Redis Cluster): the build ids are read first,
    // and it answers null when they changed meanwhile.
    const expiries = this.keys.leases.expiries;
    for (let attempt = 0; attempt < 20; attempt++) {
      const ids = await this.redis.zrange(expiries, 0, -1);
      const digests = (await this.scripts.leased(1 + ids.length, expiries, ...ids.map((id) => this.keys.leases.build(id)), Date.now(), ...ids)) as string[] | null;
      if (digests !== null) return new Set(digests);
    }
    throw new Error(`blob leases at ${expiries} kept changing while being read 20 times; retry the prune`);
  }
}
