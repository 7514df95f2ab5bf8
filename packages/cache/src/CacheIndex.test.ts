import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { LocalCacheIndex, RedisCacheIndex, type CacheIndex, type NewCacheRecord } from './index.js';

const layer = (n: number) => ({ digest: `sha256:${String(n).repeat(64).slice(0, 64)}`, diffID: `sha256:${'d'.repeat(64)}`, size: 100 * n, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' });
const record = (key: string, n: number | null): NewCacheRecord => ({ key, layer: n === null ? null : layer(n), description: `RUN step ${key}`, platform: 'linux/amd64' });

let redisService: RedisService;
let redis: Redis;
before(async () => { redisService = await startRedis(); redis = new Redis(redisService.url); });
after(async () => { redis?.disconnect(); await redisService?.stop(); });

// The same contract holds for both backends.
const backends: Array<[string, () => Promise<{ index: CacheIndex; other: CacheIndex; cleanup(): Promise<void> }>]> = [
  ['RedisCacheIndex', async () => {
    const ns = `t${Math.random().toString(36).slice(2, 8)}`;
    return { index: new RedisCacheIndex(redis, ns), other: new RedisCacheIndex(redis, ns + 'b'), cleanup: async () => {} };
  }],
  ['LocalCacheIndex', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'buildyard-cache-'));
    return { index: new LocalCacheIndex(join(dir, 'a')), other: new LocalCacheIndex(join(dir, 'b')), cleanup: () => rm(dir, { recursive: true, force: true }) };
  }],
];

for (const [name, make] of backends) {
  describe(name, () => {
    test('first writer wins and get marks the entry used', async () => {
      const { index, cleanup } = await make();
      try {
        assert.equal(await index.get('k1'), undefined);
        const first = await index.put(record('k1', 1));
        const second = await index.put(record('k1', 2));
        assert.equal(second.layer?.digest, first.layer?.digest);
        const got = await index.get('k1');
        assert.equal(got?.layer?.size, 100);
        assert.equal(got?.usageCount, 1);
        assert.ok(got!.lastUsedMs >= first.lastUsedMs);
        assert.equal((await index.put(record('empty', null))).layer, null);
        assert.deepEqual((await index.list()).map((r) => r.key).sort(), ['empty', 'k1']);
      } finally { await cleanup(); }
    });

    test('delete frees a blob only when no entry references it', async () => {
      const { index, cleanup } = await make();
      try {
        await index.put(record('a', 7));
        await index.put(record('b', 7));
        await index.put(record('c', 8));
        assert.deepEqual(await index.delete(['a']), []);
        assert.deepEqual((await index.delete(['b', 'c'])).sort(), [layer(7).digest, layer(8).digest].sort());
        assert.deepEqual(await index.list(), []);
      } finally { await cleanup(); }
    });

    test('tenants do not see each other even knowing the key', async () => {
      const { index, other, cleanup } = await make();
      try {
        await index.put(record('secret-key', 3));
        assert.equal(await other.get('secret-key'), undefined);
        assert.deepEqual(await other.list(), []);
      } finally { await cleanup(); }
    });
  });
}

test('a blob shared by two tenants survives until both entries are gone', async () => {
  const a = new RedisCacheIndex(redis, 'shareA');
  const b = new RedisCacheIndex(redis, 'shareB');
  await a.put(record('x', 5));
  await b.put(record('y', 5));
  assert.deepEqual(await a.delete(['x']), []);
  assert.deepEqual(await b.delete(['y']), [layer(5).digest]);
});

test('tenant names that could break key namespacing are refused', () => {
  assert.throws(() => new RedisCacheIndex(redis, 'a:b'), /invalid tenant name "a:b"/);
});
