import type { Redis } from 'ioredis';

export type BuildRecordStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

/**
 * The build list the frontend keeps for Status and the dashboard: a hash per build and a
 * sorted set by creation time. Never holds secrets or credentials.
 */
export interface BuildRecord {
  buildId: string;
  tenant: string;
  status: BuildRecordStatus;
  platforms: string[];
  createdMs: number;
  finishedMs: number;
  digest: string;
  error: string;
  verticesTotal: number;
  verticesCached: number;
  pushed: string[];
  /** Id of the frontend process running this build. */
  coordinator: string;
}

const key = (buildId: string) => `buildyard:build:${buildId}`;
const LIST = 'buildyard:builds';
const RETENTION_MS = 7 * 24 * 3600 * 1000;

export class BuildRecords {
  constructor(private readonly redis: Redis) {}

  async create(record: Pick<BuildRecord, 'buildId' | 'tenant' | 'platforms' | 'coordinator'>): Promise<void> {
    const now = Date.now();
    await this.redis.multi()
      .hset(key(record.buildId), { buildId: record.buildId, tenant: record.tenant, status: 'queued', platforms: JSON.stringify(record.platforms), createdMs: now, finishedMs: 0, digest: '', error: '', verticesTotal: 0, verticesCached: 0, pushed: '[]', coordinator: record.coordinator })
      .pexpire(key(record.buildId), RETENTION_MS)
      .zadd(LIST, now, record.buildId)
      .zremrangebyscore(LIST, 0, now - RETENTION_MS)
      .exec();
  }

  async update(buildId: string, fields: Partial<Omit<BuildRecord, 'buildId' | 'tenant' | 'createdMs'>>): Promise<void> {
    const flat: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(fields)) flat[k] = Array.isArray(v) ? JSON.stringify(v) : (v as string | number);
    await this.redis.hset(key(buildId), flat);
  }

  async get(buildId: string): Promise<BuildRecord | undefined> {
    const raw = await this.redis.hgetall(key(buildId));
    if (!raw.buildId) return undefined;
    return {
      buildId: raw.buildId, tenant: raw.tenant, status: raw.status as BuildRecordStatus, platforms: JSON.parse(raw.platforms || '[]'),
      createdMs: Number(raw.createdMs), finishedMs: Number(raw.finishedMs), digest: raw.digest, error: raw.error,
      verticesTotal: Number(raw.verticesTotal), verticesCached: Number(raw.verticesCached), pushed: JSON.parse(raw.pushed || '[]'),
      coordinator: raw.coordinator ?? '',
    };
  }

  /** Builds still queued or running, newest first, among those created in the last day. */
  async unfinished(): Promise<BuildRecord[]> {
    const ids = await this.redis.zrevrangebyscore(LIST, '+inf', Date.now() - 24 * 3600 * 1000);
    const records = await Promise.all(ids.map((id) => this.get(id)));
    return records.filter((r): r is BuildRecord => !!r && (r.status === 'queued' || r.status === 'running'));
  }

  /** The newest builds of one tenant. */
  async list(tenant: string, limit: number): Promise<BuildRecord[]> {
    const ids = await this.redis.zrevrange(LIST, 0, Math.max(limit * 10, 100));
    const out: BuildRecord[] = [];
    for (const id of ids) {
      const record = await this.get(id);
      if (record?.tenant === tenant) out.push(record);
      if (out.length >= limit) break;
    }
    return out;
  }
}
