// The set-up the registry-backed blob store tests share: a registry, a plain proxy in front of
// it (to count or corrupt what passes), a redis-server, and a scratch directory, for the whole
// test file.
import { after, before } from 'node:test';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, startRegistry, startRegistryProxy, type RedisService, type RegistryProxy, type RegistryService } from '@buildyard/testkit';

export interface RegistryFixture {
  readonly registry: RegistryService;
  /** A client of the file's own redis-server, with `{ redis: true }` (context grants and deletion records live there). */
  readonly redis: Redis;
  readonly proxy: RegistryProxy;
  /** A scratch directory removed after the file's tests. */
  readonly dir: string;
}

/** Registers the file's before/after hooks; read the fixture's fields inside tests. */
export function useRegistryFixture(prefix: string, opts: { redis?: boolean } = {}): RegistryFixture {
  const f: { registry?: RegistryService; proxy?: RegistryProxy; dir?: string; redisService?: RedisService; redis?: Redis } = {};
  before(async () => {
    if (opts.redis) {
      f.redisService = await startRedis();
      f.redis = new Redis(f.redisService.url);
    }
    f.registry = await startRegistry();
    f.proxy = await startRegistryProxy({ upstream: f.registry.host, mode: 'plain' });
    f.dir = await mkdtemp(join(tmpdir(), `buildyard-${prefix}-`));
  });
  after(async () => {
    f.redis?.disconnect();
    await Promise.allSettled([f.proxy?.stop(), f.registry?.stop(), f.redisService?.stop()]);
    if (f.dir) await rm(f.dir, { recursive: true, force: true });
  });
  return f as RegistryFixture;
}
