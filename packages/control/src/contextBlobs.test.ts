// Issue 19 follow-up: with a registry blob store, context files and layers share one repository
// (content addressing). A frontend's prune or blob GC deleting a layer or an unreferenced blob
// must not take a file a live context holds, which the frontend's own copy would hide until a
// worker failed with "upload the context again".
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { RedisCacheIndex, openContextStore, openSharedBlobStore } from '@buildyard/cache';
import { materializeContext, storeDirectory } from '@buildyard/context';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { sha256Digest } from '@buildyard/oci';
import { PruneRequest } from '@buildyard/proto';
import { Scheduler, WorkerRegistry } from '@buildyard/scheduler';
import { startRedis, startRegistry } from '@buildyard/testkit';
import { Frontend } from './index.js';

test('prune and the blob GC keep a registry blob a live context holds as a file; they delete one no context holds', async () => {
  const [redisService, registry] = await Promise.all([startRedis(), startRegistry()]);
  const redis = new Redis(redisService.url);
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-context-blobs-'));
  const scheduler = new Scheduler(redisService.url, { tickMs: 0 });
  const workers = new WorkerRegistry(redisService.url);
  after(async () => {
    await scheduler.close(); await workers.close(); redis.disconnect();
    await Promise.allSettled([redisService.stop(), registry.stop()]);
    rmSync(dir, { recursive: true, force: true });
  });
  const repository = `${registry.host}/buildyard/blobs`;
  const frontend = new Frontend({
    redis, scheduler, workers, tokens: new Map(), sharedDir: join(dir, 'frontend/shared'), stateDir: join(dir, 'frontend'), blobStore: { type: 'registry', repository },
    secretsKey: '', insecureRegistries: [], buildPlatform: 'linux/amd64', version: '0.0.0', maxContextBytes: 1 << 20, maxContextFiles: 100, maxLogBytesPerStep: 1 << 16,
  });
  await frontend.blobs.init();
  const inRegistry = async (digest: string) => (await fetch(`${registry.url}/v2/buildyard/blobs/blobs/${digest}`, { method: 'HEAD' })).status === 200;

  // Alice's context holds a file whose bytes equal a cached layer (a vendored tarball) and one
  // equal to a blob of the frontend's own store nothing references.
  const layer = Buffer.from('bytes of a layer and of a context file\n');
  const loose = Buffer.from('an unreferenced blob that is also a context file\n');
  const src = join(dir, 'src');
  mkdirSync(src);
  writeFileSync(join(src, 'vendor.tgz'), layer);
  writeFileSync(join(src, 'loose.txt'), loose);
  const { contextId } = await storeDirectory(frontend.contexts, src, { tenant: 'alice' });
  const mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip';
  await frontend.blobs.put(layer);
  await new RedisCacheIndex(redis, 'bob').put({ key: 'k', layer: { digest: sha256Digest(layer), diffID: sha256Digest(layer), size: layer.length, mediaType }, description: 'RUN x', platform: 'linux/amd64' });
  const other = Buffer.from('a layer no context holds\n');
  await frontend.blobs.put(other);
  await new RedisCacheIndex(redis, 'bob').put({ key: 'o', layer: { digest: sha256Digest(other), diffID: sha256Digest(other), size: other.length, mediaType }, description: 'RUN y', platform: 'linux/amd64' });
  const garbage = Buffer.from('an unreferenced blob no context holds\n');
  for (const b of [loose, garbage]) {
    await frontend.blobs.put(b);
    const old = new Date(Date.now() - 3600_000);
    utimesSync(frontend.blobs.path(sha256Digest(b)), old, old);
  }

  // Bob prunes all his cache: both layers' records go, the layer no context holds leaves the registry.
  const pruned = await frontend.prune(PruneRequest.fromPartial({ all: true }), 'bob');
  assert.equal(pruned.removed.length, 2);
  assert.equal(await inRegistry(sha256Digest(other)), false, 'the prune deleted a layer');
  assert.equal(await inRegistry(sha256Digest(layer)), true, 'but not the one a context holds');
  // The blob GC, with no grace at all: the same.
  await frontend.collectGarbage({ keepBytes: 0, keepDurationMs: 0 });
  assert.equal(await inRegistry(sha256Digest(garbage)), false, 'the GC deleted an unreferenced blob');
  assert.equal(await inRegistry(sha256Digest(loose)), true, 'but not one a context holds');

  // A worker (its own dir, only the registry and Redis in common) materialises the context.
  const worker = openContextStore({
    root: join(dir, 'worker/contexts'), redis, keyPrefix: DEFAULT_KEYS.prefix,
    blobs: openSharedBlobStore({ type: 'registry', repository, sharedDir: join(dir, 'worker/shared'), localDir: join(dir, 'worker/blobs') }),
  });
  await materializeContext(worker, contextId, join(dir, 'worker/ctx'));
});
