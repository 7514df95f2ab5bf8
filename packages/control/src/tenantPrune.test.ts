// Control.Prune (also `buildctl prune` through the BuildKit endpoint) asks every worker to prune
// within the caller's tenant only, and reports what each worker reclaimed. What a worker then
// removes is in packages/fleet/src/tenantPrune.test.ts (a real worker); here a stand-in worker
// on real Redis answers, to see what the frontend asks and reports.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { serveWorkerDisk, type WorkerDiskRequest } from '@buildyard/cache';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { PruneRequest } from '@buildyard/proto';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { startRedis } from '@buildyard/testkit';
import { Frontend } from './index.js';

test('a tenant\'s prune asks the workers to prune that tenant\'s own state only, and reports what each reclaimed', async (t) => {
  const redisService = await startRedis();
  const redis = new Redis(redisService.url);
  const sharedDir = mkdtempSync(join(tmpdir(), 'buildyard-tenant-prune-'));
  const scheduler = new Scheduler(redisService.url, { tickMs: 0 });
  const workers = new WorkerRegistry(redisService.url, { heartbeatTtlMs: 600_000 });
  const asked: WorkerDiskRequest[] = [];
  const worker = await serveWorkerDisk(redis, DEFAULT_KEYS.prefix, async (request) => {
    asked.push(request);
    return { workerId: 'w1', parts: [], reclaimedBytes: 4096 };
  });
  t.after(async () => { worker.close(); await scheduler.close(); await workers.close(); redis.disconnect(); await redisService.stop(); rmSync(sharedDir, { recursive: true, force: true }); });
  await workers.register({ id: 'w1', nativePlatforms: ['linux/amd64'], emulatedPlatforms: [], capacity: 1, cacheBytes: 0, version: 'test' });
  const frontend = new Frontend({
    redis, scheduler, workers, tokens: new Map(), sharedDir, secretsKey: '', insecureRegistries: [], buildPlatform: 'linux/amd64', version: '0.0.0',
    maxContextBytes: 1 << 20, maxContextFiles: 100, maxLogBytesPerStep: 1 << 16,
  });
  await frontend.blobs.init();

  /** The request the worker got, without its id. */
  const sent = () => {
    assert.equal(asked.length, 1, 'one request per prune');
    const { id, ...request } = asked.shift()!;
    assert.match(id, /^[0-9a-f-]{36}$/);
    return request;
  };

  const all = await frontend.prune(PruneRequest.fromPartial({ all: true }), 'bob');
  assert.deepEqual(sent(), { op: 'prune', keepBytes: 0, tenant: 'bob' }, 'bob\'s --all reaches bob\'s own only, all of it');
  assert.deepEqual(all.removed.map((r) => [r.id, r.size, r.description]), [['worker/w1', 4096, 'worker w1: step snapshots and cache mounts of bob']]);
  assert.equal(all.reclaimedBytes, 4096);

  await frontend.prune(PruneRequest.fromPartial({ keepStorage: 1_000_000 }), 'alice');
  assert.deepEqual(sent(), { op: 'prune', keepBytes: 1_000_000, tenant: 'alice' }, 'alice keeps --keep-storage of her own');
});
