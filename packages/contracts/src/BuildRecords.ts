import type { RedisClient as Redis } from './redisClient.js';
import { z } from 'zod';
import { fromRedis, jsonList } from './fromRedis.js';
import { DEFAULT_KEYS, type RedisKeys } from './keys.js';

export const BUILD_RECORD_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type BuildRecordStatus = (typeof BUILD_RECORD_STATUSES)[number];

const count = z.coerce.number().int().nonnegative();
/** A string map held as JSON in a hash field (absent or empty: none). */
const jsonMap = z.preprocess((v) => {
  if (v === undefined || v === '') return {};
  try { return typeof v === 'string' ? JSON.parse(v) : v; } catch { return v; }
}, z.record(z.string(), z.string()));

/**
 * The build list the frontend keeps for Status and the dashboard: a hash per build and a
 * sorted set by creation time. Never holds secrets or credentials. The schema reads a hash as
 * Redis returns it (every field a string); `coordinator` is the id of the frontend running it.
 */
export const buildRecordHashSchema = z.object({
  buildId: z.string().min(1),
  tenant: z.string(),
  status: z.enum(BUILD_RECORD_STATUSES),
  platforms: jsonList,
  createdMs: count,
  finishedMs: count.default(0),
  digest: z.string().default(''),
  error: z.string().default(''),
  verticesTotal: count.default(0),
  verticesCached: count.default(0),
  pushed: jsonList,
  // Records of frontends older than coordinator heartbeats have none.
  coordinator: z.string().default(''),
  // What the build was asked for, shown by history inspect (older records have none).
  context: z.string().default(''),
  dockerfile: z.string().default(''),
  target: z.string().default(''),
  buildArgs: jsonMap,
  noCache: z.preprocess((v) => v === '1' || v === true, z.boolean()),
  network: z.string().default(''),
  // The image names its outputs name (shown while it runs, before anything is pushed).
  images: jsonList,
  // Why a client cancelled the build, set by whichever frontend took the Cancel: the one
  // coordinating it checks before planning and before submitting stages.
  cancelRequested: z.string().default(''),
});

export type BuildRecord = z.output<typeof buildRecordHashSchema>;

/** What a build was asked for, recorded when it starts (history inspect shows it). */
export type BuildRequestFields = Pick<BuildRecord, 'context' | 'dockerfile' | 'target' | 'buildArgs' | 'noCache' | 'network' | 'images'>;

/** Reads a build hash; throws MalformedRedisDataError when it is not one. */
export function buildRecordFromHash(hash: Record<string, string>): BuildRecord {
  return fromRedis(buildRecordHashSchema, hash, `the record of build ${hash.buildId ?? '(no id)'}`);
}

/** How long a build's record is kept by default (history.retentionMs). */
export const BUILD_RECORD_RETENTION_MS = 7 * 24 * 3600 * 1000;

/** A build still queued or running (status as stored; absent for a record not written yet). */
export function isUnfinished(status: BuildRecordStatus | string | undefined): boolean {
  return status === 'queued' || status === 'running';
}

export class BuildRecords {
  /** How long each record is kept after its build starts. */
  readonly retentionMs: number;
  /** Whether this process added the last day's unfinished builds to the set (see unfinished()). */
  private listedRecentBuilds = false;

  constructor(private readonly redis: Redis, private readonly keys: RedisKeys = DEFAULT_KEYS, opts: { retentionMs?: number } = {}) {
    this.retentionMs = opts.retentionMs ?? BUILD_RECORD_RETENTION_MS;
  }

  async create(record: Pick<BuildRecord, 'buildId' | 'tenant' | 'platforms' | 'coordinator'> & Partial<BuildRequestFields>): Promise<void> {
    const now = Date.now();
    const key = this.keys.build(record.buildId);
    const asked = {
      context: record.context ?? '', dockerfile: record.dockerfile ?? '', target: record.target ?? '',
      buildArgs: JSON.stringify(record.buildArgs ?? {}), noCache: record.noCache ? '1' : '0', network: record.network ?? '',
      images: JSON.stringify(record.images ?? []),
    };
    await this.redis.multi()
      .hset(key, { buildId: record.buildId, tenant: record.tenant, status: 'queued', platforms: JSON.stringify(record.platforms), createdMs: now, finishedMs: 0, digest: '', error: '', verticesTotal: 0, verticesCached: 0, pushed: '[]', coordinator: record.coordinator, ...asked })
      .pexpire(key, this.retentionMs)
      .zadd(this.keys.builds, now, record.buildId)
      .zadd(this.keys.tenantBuilds(record.tenant), now, record.buildId)
      .sadd(this.keys.unfinishedBuilds, record.buildId)
      .zremrangebyscore(this.keys.builds, 0, now - this.retentionMs)
      .zremrangebyscore(this.keys.tenantBuilds(record.tenant), 0, now - this.retentionMs)
      // A tenant that stops building leaves no list behind once its last record has expired.
      .pexpire(this.keys.tenantBuilds(record.tenant), this.retentionMs)
      .exec();
  }

  /**
   * Records a client's cancel of a build and tells every frontend (the one coordinating it
   * aborts its runner). The caller checked the build is unfinished: one that ends meanwhile
   * keeps its end, the field is then read by nobody.
   */
  async requestCancel(buildId: string, reason: string): Promise<void> {
    await this.redis.hset(this.keys.build(buildId), 'cancelRequested', reason);
    await this.redis.publish(this.keys.buildCancels, buildId);
  }

  /** The reason a client cancelled the build with, or '' when none did. */
  async cancelRequested(buildId: string): Promise<string> {
    return (await this.redis.hget(this.keys.build(buildId), 'cancelRequested')) ?? '';
  }

  /** Forgets builds: their hashes and their places in the lists (their event streams are the caller's). */
  async remove(buildIds: string[]): Promise<void> {
    if (buildIds.length === 0) return;
    const tenants = new Set((await this.hashes(buildIds)).map((h) => h.tenant).filter((t): t is string => t !== undefined));
    const tx = this.redis.multi().del(...buildIds.map((id) => this.keys.build(id))).zrem(this.keys.builds, ...buildIds).srem(this.keys.unfinishedBuilds, ...buildIds);
    for (const tenant of tenants) tx.zrem(this.keys.tenantBuilds(tenant), ...buildIds);
    await tx.exec();
  }

  async update(buildId: string, fields: Partial<Omit<BuildRecord, 'buildId' | 'tenant' | 'createdMs'>>): Promise<void> {
    const flat: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(fields)) flat[k] = Array.isArray(v) ? JSON.stringify(v) : (v as string | number);
    const ended = fields.status !== undefined && !isUnfinished(fields.status);
    if (!ended) await this.redis.hset(this.keys.build(buildId), flat);
    else await this.redis.multi().hset(this.keys.build(buildId), flat).srem(this.keys.unfinishedBuilds, buildId).exec();
  }

  /** The raw hash, empty when the build is unknown (the dashboard shows malformed ones as they are). */
  async hash(buildId: string): Promise<Record<string, string>> {
    return this.redis.hgetall(this.keys.build(buildId));
  }

  async get(buildId: string): Promise<BuildRecord | undefined> {
    const raw = await this.hash(buildId);
    return raw.buildId ? buildRecordFromHash(raw) : undefined;
  }

  /** Build ids newest first, `count` from `start`. */
  async idsNewestFirst(start: number, count: number): Promise<string[]> {
    return this.redis.zrevrange(this.keys.builds, start, start + count - 1);
  }

  /** Build ids created since `sinceMs`, oldest first. */
  async idsSince(sinceMs: number): Promise<string[]> {
    return this.redis.zrangebyscore(this.keys.builds, sinceMs, '+inf');
  }

  /** Raw hashes of many builds in one round trip (empty objects for unknown ids). */
  async hashes(buildIds: string[]): Promise<Record<string, string>[]> {
    if (buildIds.length === 0) return [];
    const pipe = this.redis.pipeline();
    for (const id of buildIds) pipe.hgetall(this.keys.build(id));
    const rows = (await pipe.exec()) ?? [];
    return rows.map(([err, h]) => {
      if (err) throw err;
      return (h ?? {}) as Record<string, string>;
    });
  }

  /**
   * Builds still queued or running, newest first. Reads the set of unfinished ids, so a sweep
   * costs what is running, not the whole history. Ids whose record ended or expired without
   * leaving the set (a process killed between the two writes) are dropped from it here.
   */
  async unfinished(): Promise<BuildRecord[]> {
    if (!this.listedRecentBuilds) {
      await this.listRecentUnfinishedBuilds();
      this.listedRecentBuilds = true;
    }
    const ids = await this.redis.smembers(this.keys.unfinishedBuilds);
    const hashes = await this.hashes(ids);
    const records: BuildRecord[] = [];
    const stale: string[] = [];
    hashes.forEach((hash, i) => {
      const record = hash.buildId ? buildRecordFromHash(hash) : undefined;
      if (record && isUnfinished(record.status)) records.push(record);
      else stale.push(ids[i]!);
    });
    if (stale.length > 0) await this.redis.srem(this.keys.unfinishedBuilds, ...stale);
    return records.sort((a, b) => b.createdMs - a.createdMs);
  }

  /**
   * Once per process: builds of the last day that frontends older than the unfinished set
   * started (an upgrade in the middle of builds) join the set, so a sweep still finds them.
   */
  private async listRecentUnfinishedBuilds(): Promise<void> {
    const ids = await this.redis.zrevrangebyscore(this.keys.builds, '+inf', Date.now() - 24 * 3600 * 1000);
    const hashes = await this.hashes(ids);
    const unfinished = hashes.filter((h) => isUnfinished(h.status)).map((h) => h.buildId).filter((id): id is string => !!id);
    if (unfinished.length > 0) await this.redis.sadd(this.keys.unfinishedBuilds, ...unfinished);
  }

  /** One tenant's build ids newest first, `count` from `start` (expired ones dropped on the way). */
  async tenantIdsNewestFirst(tenant: string, start: number, count: number): Promise<string[]> {
    await this.indexTenants();
    const key = this.keys.tenantBuilds(tenant);
    await this.redis.zremrangebyscore(key, 0, Date.now() - this.retentionMs);
    return this.redis.zrevrange(key, start, start + count - 1);
  }

  /** The newest `limit` builds of one tenant. */
  async list(tenant: string, limit: number): Promise<BuildRecord[]> {
    const ids = await this.tenantIdsNewestFirst(tenant, 0, limit);
    // The tenant is compared again: a list is only an index, the record says whose build it is.
    return (await this.hashes(ids)).filter((h) => h.buildId && h.tenant === tenant).map((h) => buildRecordFromHash(h));
  }

  private tenantsIndexed = false;

  /**
   * Once per deployment (and checked once per process): records kept from before the tenant
   * lists existed join their tenant's list. Idempotent, so frontends starting together may both run it.
   */
  private async indexTenants(): Promise<void> {
    if (this.tenantsIndexed) return;
    if (!(await this.redis.exists(this.keys.tenantBuildsIndexed))) {
      for (let start = 0; ; start += 500) {
        const ids = await this.redis.zrange(this.keys.builds, start, start + 499, 'WITHSCORES');
        const pairs: Array<[string, string]> = [];
        for (let i = 0; i + 1 < ids.length; i += 2) pairs.push([ids[i]!, ids[i + 1]!]);
        const hashes = await this.hashes(pairs.map(([id]) => id));
        const pipe = this.redis.pipeline();
        hashes.forEach((h, i) => { if (h.tenant) pipe.zadd(this.keys.tenantBuilds(h.tenant), pairs[i]![1], pairs[i]![0]).pexpire(this.keys.tenantBuilds(h.tenant), this.retentionMs); });
        await pipe.exec();
        if (pairs.length < 500) break;
      }
      await this.redis.set(this.keys.tenantBuildsIndexed, '1');
    }
    this.tenantsIndexed = true;
  }
}
