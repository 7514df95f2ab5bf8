// Garbage collection of build contexts by grant age. A context (its manifest and file contents)
// lives as long as some tenant keeps proving it holds it: every sync renews the tenant's grants
// of the context id and of every content in it (ContextGrants). A context whose newest grant,
// over every tenant, is older than the age is deleted from the shared blob store and this
// process's copies, with the grants older than the age; contents a younger context (any
// tenant's), a cache record or a running build still uses stay, content addressing storing
// identical files once. Deleting from a shared store races writers that found a blob there a
// moment ago: every deleter announces what it may delete before reading the grants and the blob
// leases, and a context writer asks after granting (ContextStore.putManifest), so one of them sees
// the other; a deletion stays on record while a sync that began before it runs (ContextWrites).
// A build's own writes are leased before they are visible (blobWrites.ts).
import { randomUUID } from 'node:crypto';
import { contextGrantKeys, isRegular, type ContextStore, type SharedContent } from '@buildyard/context';
import { DEFAULT_KEYS, redisKeys, scanKeys, type RedisClient as Redis, type RedisKeys } from '@buildyard/contracts';
import { BlobLeases } from './BlobLeases.js';
import { RedisCacheIndex } from './RedisCacheIndex.js';

/** Default age after which a context no tenant synced is collected (BuildKit's local-source cache is pruned too). */
export const DEFAULT_CONTEXT_MAX_AGE_MS = 7 * 24 * 3600_000;

/** How long a deleter's announcement outlives it if it dies (ContextStore waits at most as long). */
const ANNOUNCE_TTL_MS = 10 * 60_000;
/**
 * How long a deletion stays on record for writers (ContextGrants.recentDeletions) that did not
 * register (ContextWrites): a registered sync keeps every deletion since it began on record.
 */
const RECENT_DELETION_MS = 3600_000;
const BATCH = 1000;
/** How often a writer waiting for a deleter asks again (deletions of one batch take well under a second). */
const DELETION_POLL_MS = 50;

/** Every tenant's grants: per member (context id or content digest), its newest proof over all tenants. */
export interface ContextGrantAges {
  /** The grant sets' keys, by kind. */
  keys: { ids: string[]; content: string[] };
  contexts: Map<string, number>;
  contents: Map<string, number>;
}

/**
 * Reads every tenant's context grants (one SCAN per master, one ZRANGE per set). The SCAN also
 * lists every tenant found in the tenant set (grants made before it existed), so deleters can
 * read that small set instead of scanning the keyspace.
 */
export async function readContextGrantAges(redis: Redis, prefix: string): Promise<ContextGrantAges> {
  const k = contextGrantKeys(prefix);
  const out: ContextGrantAges = { keys: { ids: [], content: [] }, contexts: new Map(), contents: new Map() };
  const tenants = new Set<string>();
  for (const key of await scanKeys(redis, k.scanPattern)) {
    const parsed = k.parse(key);
    if (!parsed) continue;
    tenants.add(parsed.tenant);
    out.keys[parsed.kind].push(key);
    const into = parsed.kind === 'ids' ? out.contexts : out.contents;
    const flat = await redis.zrange(key, 0, -1, 'WITHSCORES');
    for (let i = 0; i < flat.length; i += 2) {
      const score = Number(flat[i + 1]);
      if (score > (into.get(flat[i]!) ?? -Infinity)) into.set(flat[i]!, score);
    }
  }
  if (tenants.size > 0) await redis.sadd(k.tenants, ...tenants);
  await redis.set(k.tenantsComplete, '1');
  return out;
}

/** How often a running context write says it is alive; one silent for DEAD_WRITE_MS is taken for dead (its process died). */
const WRITE_BEAT_MS = 60_000;
const DEAD_WRITE_MS = 5 * 60_000;

/**
 * Context writes under way (syncs: they find contents in the shared store, upload the others,
 * and grant them all at the end, maybe hours later). While one runs, every deletion made since it
 * began stays on record (ContextBlobGuard), so its final check (ContextStore.putManifest asking
 * recentDeletions) sees a deletion of a content it found at any time during the sync.
 */
export class ContextWrites {
  /** Write id -> when it began (ms); write id -> when it last said it is alive (ms). */
  readonly keys: { started: string; beats: string };

  constructor(private readonly redis: Redis, prefix: string) {
    this.keys = { started: `${prefix}:contexts:writes:started`, beats: `${prefix}:contexts:writes:beats` };
  }

  /** Runs `fn` (a sync) as a registered write: begun before it finds anything, ended when it returns. */
  async during<T>(fn: () => Promise<T>): Promise<T> {
    const id = randomUUID();
    const now = Date.now();
    await this.redis.zadd(this.keys.beats, now, id);
    await this.redis.zadd(this.keys.started, now, id);
    const beat = setInterval(() => { this.redis.zadd(this.keys.beats, 'XX', Date.now(), id).catch(() => undefined); }, WRITE_BEAT_MS);
    beat.unref();
    try {
      return await fn();
    } finally {
      clearInterval(beat);
      // A failed removal leaves a write that stops beating: it is dropped as dead later.
      await this.redis.zrem(this.keys.started, id).catch(() => undefined);
      await this.redis.zrem(this.keys.beats, id).catch(() => undefined);
    }
  }

  /** When the oldest write still alive began; writes whose process died are dropped. Undefined when none runs. */
  async oldestLive(now = Date.now()): Promise<number | undefined> {
    // Few at a time (syncs under way), so all of them are read.
    const flat = await this.redis.zrange(this.keys.started, 0, -1, 'WITHSCORES');
    if (flat.length === 0) return undefined;
    const ids = flat.filter((_, i) => i % 2 === 0);
    const beats = await this.redis.zmscore(this.keys.beats, ...ids);
    const dead = ids.filter((_, i) => beats[i] === null || Number(beats[i]) <= now - DEAD_WRITE_MS);
    if (dead.length > 0) {
      await this.redis.zrem(this.keys.started, ...dead);
      await this.redis.zrem(this.keys.beats, ...dead);
    }
    const live = ids.map((_, i) => i).filter((i) => !dead.includes(ids[i]!));
    return live.length > 0 ? Math.min(...live.map((i) => Number(flat[2 * i + 1]))) : undefined;
  }
}

/**
 * Announces deletions from the shared blob store and keeps what a context still references.
 * Used by every deleter of shared blobs (the context GC, pruneCache, the frontend's blob GC), so
 * a context file whose digest equals a layer or manifest someone deletes is not lost.
 */
export class ContextBlobGuard {
  private readonly keys: ReturnType<typeof contextGrantKeys>;

  private readonly leases: BlobLeases;
  private readonly writes: ContextWrites;

  constructor(private readonly redis: Redis, prefix: string) {
    this.keys = contextGrantKeys(prefix);
    this.leases = new BlobLeases(redis, redisKeys(prefix));
    this.writes = new ContextWrites(redis, prefix);
  }

  /**
   * Deletes each of `digests` with `del` unless some tenant's context grant (content or context
   * id, any age still in Redis) or a blob lease (a running build's, a writer's) names it at the
   * time of deletion. Answers those deleted.
   * `younger`: only grants newer than this protect (the context GC's cutoff); default any.
   */
  async deleteUnlessReferenced(
    digests: Iterable<string>, del: (digest: string) => Promise<boolean>, younger = -Infinity,
    /** What else keeps a blob, asked after the announcement too (the fs store's grant files). */
    alsoReferenced?: (digests: readonly string[]) => Promise<Set<string>>,
  ): Promise<string[]> {
    const list = [...new Set(digests)];
    const deleted: string[] = [];
    for (let i = 0; i < list.length; i += BATCH) {
      const slice = list.slice(i, i + BATCH);
      await this.announce(slice);
      const gone: string[] = [];
      try {
        const referenced = await this.referenced(slice, younger);
        // Leases too, read after the announcement: a writer that leased before it is seen, one
        // that leases after it waits for this deletion to end before writing (blobWrites.ts).
        for (const d of await this.leases.leasedAmong(slice)) referenced.add(d);
        for (const d of (await alsoReferenced?.(slice)) ?? []) referenced.add(d);
        for (const d of slice) if (!referenced.has(d) && (await del(d))) gone.push(d);
      } finally {
        await this.done(slice, gone);
      }
      deleted.push(...gone);
    }
    return deleted;
  }

  /** A deleter wrapped for pruneCache / collectBlobGarbage: its `delete` goes through the guard. */
  guarded(del: (digest: string) => Promise<boolean>): (digest: string) => Promise<boolean> {
    return async (d) => (await this.deleteUnlessReferenced([d], del)).length === 1;
  }

  /** Of `digests`, those some grant set names with a score above `younger` (read after announcing). */
  async referenced(digests: readonly string[], younger: number): Promise<Set<string>> {
    const out = new Set<string>();
    if (digests.length === 0) return out;
    for (const key of await this.grantSets()) {
      const scores = await this.redis.zmscore(key, ...digests);
      digests.forEach((d, i) => { if (scores[i] !== null && Number(scores[i]) > younger) out.add(d); });
    }
    return out;
  }

  /**
   * Every tenant's grant sets, listed after the announcement: a tenant's first grant made since
   * is then either seen or its writer sees the announcement. From the tenant set once a GC
   * completed it (one SMEMBERS), else by scanning the keyspace.
   * Left open: frontends of a release before the tenant set grant without adding the tenant, so
   * during a rolling upgrade from one a tenant whose first grant such a frontend makes after the
   * set was completed is missed here until the next context GC's scan adds it. No frontend
   * records its release, so this cannot tell when the last old one is gone: run a context GC
   * (any prune does) once the old frontends are stopped.
   */
  private async grantSets(): Promise<string[]> {
    if (await this.redis.exists(this.keys.tenantsComplete)) {
      return (await this.redis.smembers(this.keys.tenants)).flatMap((t) => [this.keys.contexts(t), this.keys.content(t)]);
    }
    return (await scanKeys(this.redis, this.keys.scanPattern)).filter((key) => this.keys.parse(key));
  }

  /**
   * Returns once no deleter has any of `digests` announced (see blobWrites.ts: a writer that
   * leased them waits out a deletion that began before its lease, then writes). A deleter that
   * died leaves its announcement until the key expires; this waits at most that long.
   */
  async waitForDeletions(digests: readonly string[], onWait?: (digest: string) => void): Promise<void> {
    const until = Date.now() + ANNOUNCE_TTL_MS;
    const told = new Set<string>();
    let waiting = [...digests];
    while (waiting.length > 0) {
      const scores = await this.redis.zmscore(this.keys.deleting, ...waiting);
      waiting = waiting.filter((_, i) => scores[i] !== null && Number(scores[i]) > 0);
      if (waiting.length === 0 || Date.now() >= until) return;
      for (const d of waiting) if (!told.has(d)) { told.add(d); onWait?.(d); }
      await new Promise((r) => setTimeout(r, DELETION_POLL_MS));
    }
  }

  private async announce(digests: readonly string[]): Promise<void> {
    const tx = this.redis.multi();
    for (const d of digests) tx.zincrby(this.keys.deleting, 1, d);
    tx.pexpire(this.keys.deleting, ANNOUNCE_TTL_MS);
    await tx.exec();
  }

  /** Ends the announcement; what went is recorded first, so a writer asking later still learns it. */
  private async done(digests: readonly string[], gone: readonly string[]): Promise<void> {
    const now = Date.now();
    if (gone.length > 0) {
      // Kept while a context write that began before them still runs, however long (a sync
      // that found these an hour ago asks only when it grants them); else for RECENT_DELETION_MS,
      // for writers that never registered. Clocks of machines differ: the margin covers that.
      const oldest = await this.writes.oldestLive(now);
      const keepFrom = Math.min(now, oldest ?? now) - RECENT_DELETION_MS;
      // A separate key (and MULTI) from `deleting`: one key per MULTI runs on Redis Cluster.
      const tx = this.redis.multi()
        .zadd(this.keys.deleted, ...gone.flatMap((d) => [now, d]))
        .zremrangebyscore(this.keys.deleted, '-inf', `(${keepFrom}`);
      // With writes running, the records go only by the trim above (the next deletion's).
      if (oldest === undefined) tx.pexpire(this.keys.deleted, RECENT_DELETION_MS);
      else tx.persist(this.keys.deleted);
      await tx.exec();
    }
    const tx = this.redis.multi();
    for (const d of digests) tx.zincrby(this.keys.deleting, -1, d);
    tx.zremrangebyscore(this.keys.deleting, '-inf', 0);
    await tx.exec();
  }
}

export interface ContextGcOptions {
  /** This process's context store (openContextStore): deletes reach its shared store and its copies. */
  store: ContextStore;
  redis: Redis;
  keys?: RedisKeys;
  /** Contexts whose newest grant (every tenant) is older than this are deleted. */
  maxAgeMs?: number;
  /** The clock (tests age grants by moving it, or by writing older scores). */
  now?: number;
  /** The lock's expiry: one collection at a time across frontends; a dead collector's lock expires. */
  lockTtlMs?: number;
}

export interface ContextGcResult {
  /** False when another process held the lock (this one only trimmed its own copies). */
  ran: boolean;
  /** Context ids deleted. */
  contexts: string[];
  /** Every digest deleted from the shared store (manifests and contents). */
  deleted: string[];
  /** Grants dropped (members of tenants' grant sets). */
  grantsDropped: number;
  /** This process's local copies removed (shared stores only). */
  localCopies: number;
  /** Temp files of uploads cut off (a killed process) removed from this process's store. */
  stagingLeftovers: number;
}

/**
 * Collects contexts no tenant synced within `maxAgeMs` (see the file comment). Contexts a running
 * build leased (BuildRunner leases its context id for the build) are kept with their grants and
 * contents. Runs under a Redis lock; a process that does not get it trims only its own copies.
 */
export async function collectContextGarbage(opts: ContextGcOptions): Promise<ContextGcResult> {
  const keys = opts.keys ?? DEFAULT_KEYS;
  const now = opts.now ?? Date.now();
  const cutoff = now - (opts.maxAgeMs ?? DEFAULT_CONTEXT_MAX_AGE_MS);
  const k = contextGrantKeys(keys.prefix);
  const token = randomUUID();
  const lockTtlMs = opts.lockTtlMs ?? ANNOUNCE_TTL_MS;
  const result: ContextGcResult = { ran: false, contexts: [], deleted: [], grantsDropped: 0, localCopies: 0, stagingLeftovers: 0 };
  if ((await opts.redis.set(k.gcLock, token, 'PX', lockTtlMs, 'NX')) === 'OK') {
    try {
      if (opts.store.fsGrants) await collectFsUnderLock(opts, keys, cutoff, result);
      else await collectUnderLock(opts, keys, cutoff, result);
      result.ran = true;
    } finally {
      await opts.redis.eval(RELEASE_LOCK, 1, k.gcLock, token);
    }
  }
  // Every frontend's own copies: those no young grant or lease names go (the collector's
  // deletes took its copies already; another frontend's stale copy would only be a cache).
  // Only the copies past the age are looked up, not every tenant's grants read.
  const evictable = await localCopiesOlderThan(opts.store, cutoff);
  const kept = new Set<string>();
  const guard = new ContextBlobGuard(opts.redis, keys.prefix);
  const leases = new BlobLeases(opts.redis, keys);
  for (let i = 0; i < evictable.length; i += BATCH) {
    const slice = evictable.slice(i, i + BATCH);
    for (const d of await guard.referenced(slice, cutoff)) kept.add(d);
    for (const d of await leases.leasedAmong(slice)) kept.add(d);
  }
  const checked = new Set(evictable);
  result.localCopies = (await opts.store.evictLocalCopies(cutoff, (d) => !checked.has(d) || kept.has(d))).length;
  result.stagingLeftovers = await opts.store.removeStagingLeftovers(STAGING_LEFTOVER_AGE_MS);
  return result;
}

/** This process's copies (a shared store's local tier) written at or before `cutoff`; none for an unshared store. */
async function localCopiesOlderThan(store: ContextStore, cutoff: number): Promise<string[]> {
  // A shared store's content is a TieredBlobStore (SharedContent): its `local` is this process's tier.
  const local = (store.content as Partial<SharedContent>).local;
  if (!local) return [];
  const out: string[] = [];
  for await (const b of local.list()) if (b.mtime.getTime() <= cutoff) out.push(b.digest);
  return out;
}

/** An upload's temp file this old belongs to a sync that cannot still be running. */
const STAGING_LEFTOVER_AGE_MS = 24 * 3600_000;

const RELEASE_LOCK = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;
// Drops the members of one grant set given in ARGV[2..] whose score is still at most ARGV[1]
// and answers them: a tenant that synced since the collector read the set keeps its fresh grant.
const DROP_OLD = `local out = {}
for i = 2, #ARGV do
  local s = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if s and tonumber(s) <= tonumber(ARGV[1]) then redis.call('ZREM', KEYS[1], ARGV[i]); table.insert(out, ARGV[i]) end
end
return out`;

async function collectUnderLock(opts: ContextGcOptions, keys: RedisKeys, cutoff: number, result: ContextGcResult): Promise<void> {
  const { redis, store } = opts;
  const guard = new ContextBlobGuard(redis, keys.prefix);
  const leases = new BlobLeases(redis, keys);
  const ages = await readContextGrantAges(redis, keys.prefix);
  const leased = await leases.leased();
  const isOld = (score: number | undefined) => score !== undefined && score <= cutoff;

  // Contexts past the age and not in use; their manifests say which contents they hold.
  const old = [...ages.contexts].filter(([id, t]) => isOld(t) && !leased.has(id)).map(([id]) => id);
  const candidates = new Set<string>(old);
  for (const id of old) for (const d of await filesOf(store, id)) candidates.add(d);
  // Contents uploaded but never part of a younger context (an aborted sync, an old one's).
  for (const [d, t] of ages.contents) if (isOld(t)) candidates.add(d);
  // Kept: what a younger grant names (every file of a young context has one: each sync renews
  // them all), what a running build leased (with the files of a leased context), what a cache
  // record references (a layer may equal a context file).
  const keep = await keptBlobs(store, ages, leased, cutoff);
  for (const d of await RedisCacheIndex.referencedBlobs(redis, keys)) keep.add(d);
  const chosen = [...candidates].filter((d) => !keep.has(d));

  // Old grants go (in-use contexts keep theirs: a frontend taking a build over checks them).
  const droppedIds = new Map<string, string[]>();
  for (const key of [...ages.keys.ids, ...ages.keys.content]) {
    const members = (await redis.zrangebyscore(key, '-inf', cutoff)).filter((m) => !leased.has(m));
    for (let i = 0; i < members.length; i += BATCH) {
      const dropped = (await redis.eval(DROP_OLD, 1, key, cutoff, ...members.slice(i, i + BATCH))) as string[];
      result.grantsDropped += dropped.length;
      if (ages.keys.ids.includes(key)) droppedIds.set(key, [...(droppedIds.get(key) ?? []), ...dropped]);
    }
  }

  // A build that leased one of these contexts since the first read (it checked the grant before
  // the drop) keeps it, its files and its grant, put back at the cutoff (still past the age: the
  // next collection after the build takes it).
  const leasedNow = await leases.leased();
  const lateKeep = new Set<string>();
  for (const id of old) if (leasedNow.has(id)) for (const d of [id, ...(await filesOf(store, id))]) lateKeep.add(d);
  for (const [key, ids] of droppedIds) {
    const back = ids.filter((id) => leasedNow.has(id));
    if (back.length > 0) await redis.zadd(key, 'NX', ...back.flatMap((id) => [cutoff, id]));
  }
  const deletable = chosen.filter((d) => !leasedNow.has(d) && !lateKeep.has(d));
  result.deleted = await guard.deleteUnlessReferenced(deletable, async (d) => (await store.deleteContents([d])).length === 1, cutoff);
  const gone = new Set(result.deleted);
  result.contexts = old.filter((id) => gone.has(id));
}

/**
 * The same with the fs blob store: contexts, contents and grant files live under the shared
 * dir, which every process sees, and content grants are never renewed there. So a content goes
 * when it was written before the cutoff and no younger or leased context's manifest names it
 * (a sweep of the store: old manifests and contents of contexts already gone alike).
 */
async function collectFsUnderLock(opts: ContextGcOptions, keys: RedisKeys, cutoff: number, result: ContextGcResult): Promise<void> {
  const { redis, store } = opts;
  const grants = store.fsGrants!;
  const leases = new BlobLeases(redis, keys);
  const leased = await leases.leased();
  const seen = new Set<string>();
  const keep = new Set<string>();
  /** Adds the granted contexts that are young or in use, with their files, to `keep`. */
  const keepLive = async (inUse: Set<string>) => {
    const newest = new Map<string, number>();
    for (const g of await grants.contextGrants()) newest.set(g.contextId, Math.max(g.ms, newest.get(g.contextId) ?? -Infinity));
    for (const [id, ms] of newest) {
      if (seen.has(id) || (ms <= cutoff && !inUse.has(id))) continue;
      seen.add(id);
      for (const d of [id, ...(await filesOf(store, id))]) keep.add(d);
    }
  };
  await keepLive(leased);
  const old: string[] = [];
  for await (const b of store.content.list()) if (b.mtime.getTime() <= cutoff && !keep.has(b.digest)) old.push(b.digest);
  const stale = (await grants.contextGrants()).filter((g) => g.ms <= cutoff && !leased.has(g.contextId));
  for (const g of stale) if (await grants.dropContextGrant(g.dir, g.contextId, cutoff)) result.grantsDropped++;

  const guard = new ContextBlobGuard(redis, keys.prefix);
  // After announcing: contexts granted or leased since the first look keep their files.
  const recheck = async (digests: readonly string[]) => {
    await keepLive(await leases.leased());
    return new Set(digests.filter((d) => keep.has(d)));
  };
  result.deleted = await guard.deleteUnlessReferenced(old, async (d) => (await store.deleteContents([d])).length === 1, cutoff, recheck);
  await grants.dropContentGrants(result.deleted);
  const gone = new Set(result.deleted);
  result.contexts = [...new Set(stale.map((g) => g.contextId))].filter((id) => gone.has(id));
}

/** What stays whatever its age says: young grants, leased digests and the files of leased contexts. */
async function keptBlobs(store: ContextStore, ages: ContextGrantAges, leased: Set<string>, cutoff: number): Promise<Set<string>> {
  const keep = new Set<string>(leased);
  for (const [d, t] of ages.contents) if (t > cutoff) keep.add(d);
  for (const [id, t] of ages.contexts) if (t > cutoff) keep.add(id);
  for (const id of leased) if (ages.contexts.has(id)) for (const d of await filesOf(store, id)) keep.add(d);
  return keep;
}

/** The contents a context's manifest names; none when the manifest is already gone. */
async function filesOf(store: ContextStore, contextId: string): Promise<string[]> {
  if (!(await store.content.has(contextId))) return [];
  return (await store.manifest(contextId)).filter(isRegular).map((e) => e.digest);
}

/** How long a build's hold on its contexts outlives a frontend that died before the build's leases were released. */
const CONTEXT_LEASE_TTL_MS = 24 * 3600_000;

/**
 * Holds contexts for a running build: leases their ids under the build's lease (released with
 * its other leases when it ends), then checks `tenant`'s grants. Leased first: the context GC
 * either sees the lease and keeps the context, or dropped the grant before and the check fails.
 * Answers the ids `tenant` has no grant for (refuse those).
 */
export async function holdContexts(opts: { redis: Redis; keys?: RedisKeys; store: ContextStore }, buildId: string, tenant: string, contextIds: readonly string[]): Promise<string[]> {
  if (contextIds.length === 0) return [];
  await new BlobLeases(opts.redis, opts.keys ?? DEFAULT_KEYS).lease(buildId, contextIds, CONTEXT_LEASE_TTL_MS);
  const missing: string[] = [];
  for (const id of contextIds) if (!(await opts.store.tenantHas(tenant, id))) missing.push(id);
  return missing;
}
