// A blob a running build wrote but has not referenced yet (an image manifest or config before the
// push, a layer before its cache record) against every deleter of the shared store, at no grace:
// a real registry repository and a real Redis. The deleters are wired as the frontend wires them
// (Frontend.collectGarbage and Frontend.prune): through ContextBlobGuard.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { redisKeys } from '@buildyard/contracts';
import { FsContentStore, sha256Digest } from '@buildyard/oci';
import {
  BlobLeases, ContextBlobGuard, RedisCacheIndex, RegistryBlobStore, TieredBlobStore,
  collectBlobGarbage, holdBlobWrites, openSharedBlobStore, pruneCache,
} from './index.js';
import { useRegistryFixture } from './registryFixture.test-util.js';

const fx = useRegistryFixture('blob-writes', { redis: true });

let n = 0;
/** A test's own key prefix and repository, and a store per process on them (own local dir each). */
function world(name: string) {
  const keys = redisKeys(`bw-${name}`);
  const repository = `${fx.registry.host}/bw/${name}`;
  const process = () => new TieredBlobStore(new FsContentStore(join(fx.dir, `p-${++n}`)), new RegistryBlobStore({ repository, spoolDir: fx.dir }));
  const guard = new ContextBlobGuard(fx.redis, keys.prefix);
  const leases = new BlobLeases(fx.redis, keys);
  /** The frontend's blob GC at no grace and no kept bytes; `del` wraps the store's delete (a gate). */
  const blobGc = async (store: TieredBlobStore, del: (d: string) => Promise<boolean> = (d) => store.delete(d)) => collectBlobGarbage({
    store: { list: () => store.list(), delete: guard.guarded(del) },
    referenced: await RedisCacheIndex.referencedBlobs(fx.redis, keys), leases, policy: { keepBytes: 0, keepDurationMs: 0 },
  });
  const write = <T>(holder: string, fn: () => Promise<T>, onDeletionWait?: (d: string) => void) => holdBlobWrites({ redis: fx.redis, keys, holder, onDeletionWait }, fn);
  return { keys, process, guard, leases, blobGc, write };
}

/** A promise and its resolve, to hold one side of a race at a known point. */
function gate<T = void>(): { promise: Promise<T>; open: (v: T) => void } {
  let open!: (v: T) => void;
  const promise = new Promise<T>((r) => { open = r; });
  return { promise, open };
}

/** The blob GC on `store`, held after it decided (announced, read grants and leases) and before it deletes. */
function heldBlobGc(w: ReturnType<typeof world>, store: TieredBlobStore) {
  const decided = gate();
  const proceed = gate();
  const gc = w.blobGc(store, async (d) => {
    decided.open();
    await proceed.promise;
    return store.delete(d);
  });
  return { decided, proceed, gc };
}

/**
 * A blob an old build left unreferenced, and the frontend's GC held after it chose to delete it;
 * a second process (a worker) and a gate that opens when a build's write waits for the deletion.
 */
async function doomedBlob(name: string) {
  const w = world(name);
  const frontend = w.process();
  const worker = w.process();
  const bytes = randomBytes(400);
  const digest = sha256Digest(bytes);
  await frontend.put(bytes);
  const { decided, proceed, gc } = heldBlobGc(w, frontend);
  await decided.promise; // announced, grants and leases read: it will delete
  const waited = gate<'waited'>();
  return { w, worker, bytes, digest, proceed, gc, waited };
}

test('the blob GC at no grace keeps what a running build wrote and has not referenced; it goes once the build ends', async () => {
  const w = world('gc');
  const frontend = w.process();
  const config = randomBytes(300);
  const manifest = randomBytes(500);
  await w.write('build-1', async () => {
    await frontend.put(config);
    const wr = await frontend.writer({ expectedDigest: sha256Digest(manifest) });
    await wr.write(manifest);
    await wr.commit();
  });
  const garbage = await frontend.put(randomBytes(100));

  const first = await w.blobGc(frontend);
  assert.deepEqual(first.deleted, [garbage.digest], 'only the blob no build holds goes');
  for (const b of [config, manifest]) assert.equal(await frontend.remote.has(sha256Digest(b)), true, 'the build\'s blobs stay in the shared store');

  await w.leases.release('build-1');
  const second = await w.blobGc(frontend);
  assert.deepEqual(new Set(second.deleted), new Set([config, manifest].map((b) => sha256Digest(b))), 'the ended build\'s blobs are garbage now');
});

test('a build storing a blob the GC already chose (and found unleased) writes it again after the deletion', async () => {
  // An old build's config, unreferenced: the GC's candidate. A new build produces the same bytes.
  const { w, worker, bytes, digest, proceed, gc, waited } = await doomedBlob('race');
  const put = w.write('build-2', () => worker.put(bytes), () => waited.open('waited'));
  const first = await Promise.race([put.then(() => 'stored' as const), waited.promise]);
  proceed.open();
  assert.deepEqual((await gc).deleted, [digest], 'the GC deleted the old copy');
  await put;
  assert.equal(await worker.remote.has(digest), true, 'the build\'s blob is in the shared store after the GC');
  assert.equal(first, 'waited', 'the write waited for the deletion instead of finding the doomed copy');
});

test('a build that finds a blob the GC already chose learns it is gone (and so pulls it again) instead of using the doomed copy', async () => {
  const { w, worker, bytes, digest, proceed, gc, waited } = await doomedBlob('found');
  // RegistryClient's pull asks has() and skips the download when it answers true.
  const found = w.write('build-5', () => worker.has(digest), () => waited.open('waited'));
  const first = await Promise.race([found.then(() => 'answered' as const), waited.promise]);
  proceed.open();
  assert.deepEqual((await gc).deleted, [digest]);
  assert.equal(await found, false, 'the build is told the blob is not there');
  assert.equal(first, 'waited');
  // Found again from now on, the build's lease keeps what it stores.
  await w.write('build-5', () => worker.put(bytes, digest));
  assert.deepEqual((await w.blobGc(worker)).deleted, []);
  assert.equal(await worker.remote.has(digest), true);
});

test('a prune freeing a layer that a running build stores again leaves the build\'s copy', async () => {
  const w = world('prune');
  const frontend = w.process();
  const worker = w.process();
  const layer = randomBytes(600);
  const digest = sha256Digest(layer);
  await frontend.put(layer);
  const index = new RedisCacheIndex(fx.redis, 'bob', w.keys);
  const mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip';
  await index.put({ key: 'k', layer: { digest, diffID: digest, size: layer.length, mediaType }, description: 'RUN x', platform: 'linux/amd64' });

  const decided = gate();
  const proceed = gate();
  const prune = pruneCache({
    index, leases: w.leases, policy: { all: true },
    blobs: { delete: w.guard.guarded(async (d) => { decided.open(); await proceed.promise; return frontend.delete(d); }) },
  });
  await decided.promise;
  const waited = gate<'waited'>();
  const put = w.write('build-3', () => worker.put(layer, digest), () => waited.open('waited'));
  const first = await Promise.race([put.then(() => 'stored' as const), waited.promise]);
  proceed.open();
  assert.deepEqual((await prune).deletedBlobs, [digest]);
  await put;
  assert.equal(await worker.remote.has(digest), true, 'the running build\'s layer is in the shared store after the prune');
  assert.equal(first, 'waited');
});

test('the fs blob store (one shared directory) leases what a build writes too', async () => {
  const w = world('fs');
  const store = openSharedBlobStore({ type: 'fs', sharedDir: join(fx.dir, 'fs-shared'), localDir: join(fx.dir, 'fs-local') });
  const bytes = randomBytes(200);
  await w.write('build-4', () => store.put(bytes));
  const result = await collectBlobGarbage({
    store: { list: () => store.list(), delete: w.guard.guarded((d) => store.delete(d)) },
    referenced: new Set(), leases: w.leases, policy: { keepBytes: 0, keepDurationMs: 0 },
  });
  assert.deepEqual(result.deleted, []);
  assert.equal(await store.has(sha256Digest(bytes)), true);
});

test('a worker stage\'s blobs join its build\'s lease when the stage ends, outlast the build\'s release while the stage writes, and go when a stage outlives its build', async () => {
  const w = world('stage');
  const worker = w.process();
  const stageOf = (fn: () => Promise<unknown>) => holdBlobWrites({ redis: fx.redis, keys: w.keys, holder: 'build-6', stage: true }, fn);
  const [early, late] = [randomBytes(300), randomBytes(300)];
  const [earlyDigest, lateDigest] = [early, late].map((b) => sha256Digest(b));

  await stageOf(() => worker.put(early));
  assert.deepEqual(await w.leases.leasedAmong([earlyDigest]), new Set([earlyDigest]), 'a finished stage\'s blob is held until its build ends');
  assert.deepEqual(await fx.redis.zrange(w.keys.leases.expiries, 0, -1), ['build-6'], 'under the build\'s own lease, no stage holder left');

  // A stage still writing when its build ends (cancelled): the build's release must not drop it.
  const wrote = gate();
  const resume = gate();
  const lateStage = stageOf(async () => { await worker.put(late); wrote.open(); await resume.promise; });
  await wrote.promise;
  await w.leases.release('build-6');
  assert.deepEqual(await w.leases.leasedAmong([earlyDigest, lateDigest]), new Set([lateDigest]), 'the release ends the build\'s lease, not the running stage\'s');
  resume.open();
  await lateStage;
  assert.deepEqual(await fx.redis.zrange(w.keys.leases.expiries, 0, -1), [], 'the stage that outlived its build leaves no lease to expire in 24 h');
  assert.deepEqual(new Set((await w.blobGc(worker)).deleted), new Set([earlyDigest, lateDigest]));
});
