import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, utimesSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { BlobLeases, RedisCacheIndex } from '@buildyard/cache';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { startRedis } from '@buildyard/testkit';
import { Frontend } from './index.js';

test('shared-store GC keeps referenced and leased blobs and removes old unreferenced ones', async () => {
  const redisService = await startRedis();
  const redis = new Redis(redisService.url);
  const sharedDir = mkdtempSync(join(tmpdir(), 'buildyard-gc-'));
  const scheduler = new Scheduler(redisService.url, { tickMs: 0 });
  const workers = new WorkerRegistry(redisService.url);
  after(async () => { await scheduler.close(); await workers.close(); redis.disconnect(); await redisService.stop(); rmSync(sharedDir, { recursive: true, force: true }); });
  const frontend = new Frontend({
    redis, scheduler, workers, tokens: new Map(), sharedDir, secretsKey: '', insecureRegistries: [], buildPlatform: 'linux/amd64', version: '0.0.0',
    maxContextBytes: 1 << 20, maxContextFiles: 100, maxLogBytesPerStep: 1 << 16,
  });
  await frontend.blobs.init();
  const put = async (text: string) => (await frontend.blobs.put(Buffer.from(text))).digest;
  const [referenced, leased, orphan] = [await put('referenced layer'), await put('leased layer'), await put('orphan layer')];
  await new RedisCacheIndex(redis, 'team').put({ key: 'k', layer: { digest: referenced, diffID: referenced, size: 16, mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip' }, description: 'RUN x', platform: 'linux/amd64' });
  await new BlobLeases(redis).lease('running-build', [leased], 60_000);
  const old = new Date(Date.now() - 3_600_000);
  for (const d of [referenced, leased, orphan]) utimesSync(frontend.blobs.path(d), old, old);

  const result = await frontend.collectGarbage({ keepBytes: 0, keepDurationMs: 60_000 });
  assert.equal(result.deleted, 1);
  assert.ok(await frontend.blobs.has(referenced), 'a blob a cache record uses stays');
  assert.ok(await frontend.blobs.has(leased), 'a blob a running build leased stays');
  assert.ok(!(await frontend.blobs.has(orphan)), 'an old unreferenced blob is removed');
});
