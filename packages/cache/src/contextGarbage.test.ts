// The context GC by grant age against a real registry repository and a real Redis: what goes,
// what stays (shared contents, running builds, cache layers), one collector at a time, and the
// race between a deleter and a writer that found a blob in the shared store a moment ago.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { contextGrantKeys, materializeContext, storeDirectory, type ContextStore } from '@buildyard/context';
import { redisKeys } from '@buildyard/contracts';
import { RegistryClient, sha256Digest } from '@buildyard/oci';
import { until } from '@buildyard/testkit';
import { BlobLeases, ContextBlobGuard, ContextWrites, RedisCacheIndex, TieredBlobStore, collectContextGarbage, holdContexts, openContextStore, openSharedBlobStore, pruneCache } from './index.js';
import { useRegistryFixture } from './registryFixture.test-util.js';

const fx = useRegistryFixture('context-gc', { redis: true });

const DAY = 24 * 3600_000;
const sha = (text: string) => sha256Digest(Buffer.from(text));
let n = 0;

/** One frontend: its own dir, the shared repository and Redis under a key prefix of the test's own. */
function frontend(repo: string, prefix: string): { dir: string; store: ContextStore; content: TieredBlobStore } {
  const dir = join(fx.dir, `frontend-${++n}`);
  const blobs = openSharedBlobStore({ type: 'registry', repository: `${fx.registry.host}/${repo}`, sharedDir: join(dir, 'shared/blobs'), localDir: join(dir, 'blobs') });
  const store = openContextStore({ root: join(dir, 'shared/contexts'), blobs, redis: fx.redis, keyPrefix: prefix });
  assert.ok(store.content instanceof TieredBlobStore);
  return { dir, store, content: store.content };
}

/** A test's own key prefix and repository, a frontend on them, and a GC at the 7-day age. */
function world(name: string) {
  const prefix = `gc-${name}`;
  const repo = `gc/${name}`;
  const keys = redisKeys(prefix);
  const a = frontend(repo, prefix);
  return { prefix, repo, keys, a, gc: (store: ContextStore = a.store) => collectContextGarbage({ store, redis: fx.redis, keys, maxAgeMs: 7 * DAY }) };
}

async function sync(store: ContextStore, tenant: string, files: Record<string, string>): Promise<string> {
  const src = join(fx.dir, `src-${++n}`);
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(src, path, '..'), { recursive: true });
    await writeFile(join(src, path), text);
  }
  return (await storeDirectory(store, src, { tenant })).contextId;
}

/** Makes every grant of `tenant` look `ageMs` old (as if it last synced then). */
async function age(prefix: string, tenant: string, ageMs: number): Promise<void> {
  const k = contextGrantKeys(prefix);
  for (const key of [k.contexts(tenant), k.content(tenant)]) {
    const members = await fx.redis.zrange(key, 0, -1);
    if (members.length) await fx.redis.zadd(key, 'XX', ...members.flatMap((m) => [Date.now() - ageMs, m]));
  }
}

const client = new RegistryClient();
const inRegistry = (repo: string, digest: string) => client.blobExists({ registry: fx.registry.host, repository: repo }, digest);

test('a context no tenant synced for the age goes with its own contents and grants; shared and younger ones stay, whoever triggers the GC', async () => {
  const { prefix, repo, a, gc } = world('a');
  const b = frontend(repo, prefix);
  // alice's old context shares one file with bob's young one; mallory's young context names a
  // file of alice's too, and is the one that runs the GC.
  const aliceOld = await sync(a.store, 'alice', { 'shared.txt': 'shared\n', 'mine.txt': 'alice only\n', 'also.txt': 'alice and mallory\n' });
  const bobYoung = await sync(a.store, 'bob', { 'shared.txt': 'shared\n', 'bob.txt': 'bob only\n' });
  await age(prefix, 'alice', 8 * DAY);
  // Another frontend holds copies of alice's context, written long ago.
  await materializeContext(b.store, aliceOld, join(b.dir, 'ctx'));
  const old = new Date(Date.now() - 8 * DAY);
  for (const d of [aliceOld, sha('shared\n'), sha('alice only\n'), sha('bob only\n')]) {
    if (await b.content.local.has(d)) await utimes(b.content.local.path(d), old, old);
  }
  const malloryYoung = await sync(a.store, 'mallory', { 'x.txt': 'alice and mallory\n' });

  const result = await gc();
  assert.equal(result.ran, true);
  assert.deepEqual(result.contexts, [aliceOld]);
  assert.deepEqual(new Set(result.deleted), new Set([aliceOld, sha('alice only\n')]));
  assert.equal(await inRegistry(repo, aliceOld), false, 'the old manifest left the registry');
  assert.equal(await inRegistry(repo, sha('alice only\n')), false, 'and its own file');
  assert.equal(await inRegistry(repo, sha('shared\n')), true, 'a file bob\'s younger context holds stays');
  assert.equal(await inRegistry(repo, sha('alice and mallory\n')), true, 'a file mallory\'s younger context holds stays');
  assert.equal(await a.content.local.has(sha('alice only\n')), false, 'the collecting frontend\'s copy went too');
  // Grants past the age are dropped: alice's content grant of the shared file too (she must
  // send it again), while bob's and mallory's stay and their contexts still materialise.
  assert.equal(await a.store.tenantHas('alice', aliceOld), false);
  assert.equal(await a.store.tenantHasContent('alice', sha('shared\n')), false);
  assert.equal(await a.store.tenantHas('bob', bobYoung), true);
  assert.equal(await a.store.tenantHas('mallory', malloryYoung), true);
  const c = frontend(repo, prefix);
  await materializeContext(c.store, bobYoung, join(c.dir, 'bob'));
  await materializeContext(c.store, malloryYoung, join(c.dir, 'mallory'));

  // The other frontend does not get the lock-free part wrong: its old copies of what went are
  // removed, those of still-granted contents stay.
  const other = await gc(b.store);
  assert.deepEqual(other.deleted, [], 'nothing old is left to delete');
  assert.equal(await b.content.local.has(aliceOld), false);
  assert.equal(await b.content.local.has(sha('alice only\n')), false);
  assert.equal(await b.content.local.has(sha('shared\n')), true, 'bob still holds the shared file');

  // Alice syncing the same context again brings it back (she uploads what went).
  await sync(a.store, 'alice', { 'shared.txt': 'shared\n', 'mine.txt': 'alice only\n', 'also.txt': 'alice and mallory\n' });
  assert.equal(await inRegistry(repo, sha('alice only\n')), true);
});

test('a context a running build leased stays with its grant whatever its age, and goes once the lease ends', async () => {
  const { prefix, repo, keys, a, gc } = world('b');
  const ctx = await sync(a.store, 'alice', { 'app.sh': 'echo building\n' });
  await age(prefix, 'alice', 30 * DAY - 60_000);
  const leases = new BlobLeases(fx.redis, keys);
  await leases.lease('build-1', [ctx], 60_000);

  const kept = await gc();
  assert.deepEqual(kept.deleted, []);
  assert.equal(await a.store.tenantHas('alice', ctx), true, 'a frontend taking the build over still finds its grant');
  const w = frontend(repo, prefix);
  await materializeContext(w.store, ctx, join(w.dir, 'ctx'));

  await leases.release('build-1');
  const gone = await gc();
  assert.deepEqual(new Set(gone.deleted), new Set([ctx, sha('echo building\n')]));
  assert.equal(await inRegistry(repo, ctx), false);
});

test('a build holds only the contexts its tenant has a grant for; naming another tenant\'s id is refused and keeps it no longer than that build', async () => {
  const { prefix, keys, a, gc } = world('f');
  const ctx = await sync(a.store, 'alice', { 'held.txt': 'held\n' });
  await age(prefix, 'alice', 8 * DAY);
  assert.deepEqual(await holdContexts({ redis: fx.redis, keys, store: a.store }, 'alice-build', 'alice', [ctx]), []);
  assert.deepEqual(await holdContexts({ redis: fx.redis, keys, store: a.store }, 'mallory-build', 'mallory', [ctx]), [ctx], 'mallory has no grant for it');
  assert.deepEqual((await gc()).deleted, []);
  // Mallory's refused build ends (its leases go): alice's running build alone keeps the context.
  const leases = new BlobLeases(fx.redis, keys);
  await leases.release('mallory-build');
  assert.deepEqual((await gc()).deleted, []);
  await leases.release('alice-build');
  assert.deepEqual(new Set((await gc()).deleted), new Set([ctx, sha('held\n')]));
  // Once the GC dropped alice's grant, a new hold is refused (she syncs again).
  assert.deepEqual(await holdContexts({ redis: fx.redis, keys, store: a.store }, 'alice-build-2', 'alice', [ctx]), [ctx]);
});

test('one collector at a time: a frontend that finds the lock held deletes nothing shared', async () => {
  const { prefix, repo, a, gc } = world('c');
  const ctx = await sync(a.store, 'alice', { 'f.txt': 'locked\n' });
  await age(prefix, 'alice', 8 * DAY);
  await fx.redis.set(contextGrantKeys(prefix).gcLock, 'another-frontend', 'PX', 60_000);
  const result = await gc();
  assert.equal(result.ran, false);
  assert.deepEqual(result.deleted, []);
  assert.equal(await inRegistry(repo, ctx), true);
  assert.equal(await fx.redis.get(contextGrantKeys(prefix).gcLock), 'another-frontend', 'the other collector\'s lock is left alone');
  await fx.redis.del(contextGrantKeys(prefix).gcLock);
  assert.equal((await gc()).ran, true);
  assert.equal(await inRegistry(repo, ctx), false);
  assert.equal(await fx.redis.exists(contextGrantKeys(prefix).gcLock), 0, 'the lock is released');
});

test('pruneCache through the guard keeps a layer blob a live context holds as a file, and deletes one none holds', async () => {
  const { prefix, repo, keys, a } = world('d');
  // A context file whose bytes equal a cached layer's (a vendored tarball, say).
  const layer = 'layer bytes that are also a context file\n';
  const ctx = await sync(a.store, 'alice', { 'vendor/layer.tgz': layer });
  const lone = await a.content.remote.put(Buffer.from('a layer no context holds\n'));
  const index = new RedisCacheIndex(fx.redis, 'bob', keys);
  const mediaType = 'application/vnd.oci.image.layer.v1.tar+gzip';
  await index.put({ key: 'k1', layer: { digest: sha(layer), diffID: sha(layer), size: layer.length, mediaType }, description: 'RUN a', platform: 'linux/amd64' });
  await index.put({ key: 'k2', layer: { digest: lone.digest, diffID: lone.digest, size: lone.size, mediaType }, description: 'RUN b', platform: 'linux/amd64' });

  const guard = new ContextBlobGuard(fx.redis, prefix);
  const pruned = await pruneCache({ index, blobs: { delete: guard.guarded((d) => a.content.remote.delete(d)) }, policy: { all: true } });
  assert.deepEqual(pruned.deletedBlobs, [lone.digest]);
  assert.equal(await inRegistry(repo, sha(layer)), true, 'the context file survived the prune');
  const w = frontend(repo, prefix);
  await materializeContext(w.store, ctx, join(w.dir, 'ctx'));
  assert.equal(await fx.redis.exists(contextGrantKeys(prefix).deleting), 0, 'no announcement is left behind');
});

test('a writer that found a blob in the shared store while a deleter removed it puts it back from its copy, or asks for a new sync without one', async () => {
  const { prefix, repo, a } = world('e');
  const k = contextGrantKeys(prefix);
  const guard = new ContextBlobGuard(fx.redis, prefix);

  /** Runs `write` while a deleter that read the grants before it is deleting `digest`. */
  const race = async (digest: string, write: () => Promise<string>, tenant: string) => {
    let writing: Promise<string> | undefined;
    const deleted = await guard.deleteUnlessReferenced([digest], async (d) => {
      writing = write();
      writing.catch(() => undefined);
      // The writer found the blob and granted it: the deleter's read came before that grant.
      await until('the writer\'s grant', async () => (await fx.redis.zscore(k.content(tenant), d)) !== null);
      return a.content.remote.delete(d);
    });
    assert.deepEqual(deleted, [digest], 'the deleter removed it');
    return writing!;
  };

  // The bytes are in the shared store (another tenant's upload that is now unreferenced); with
  // its own copy the writer pushes the blob back once the deleter is done.
  const text = 'raced\n';
  await a.content.put(Buffer.from(text), sha(text));
  const ctx = await race(sha(text), () => sync(a.store, 'alice', { 'r.txt': text }), 'alice');
  assert.equal(await inRegistry(repo, sha(text)), true, 'pushed back');
  const w = frontend(repo, prefix);
  await materializeContext(w.store, ctx, join(w.dir, 'ctx'));

  // Without one it fails the sync in one line; a new sync uploads the file.
  const other = 'raced too\n';
  await a.content.remote.put(Buffer.from(other), sha(other));
  const fresh = frontend(repo, prefix);
  await assert.rejects(race(sha(other), () => sync(fresh.store, 'bob', { 'r.txt': other }), 'bob'), /removed from the shared blob store by a garbage collection .*; sync the context again/);
  assert.equal(await inRegistry(repo, sha(other)), false);
  await sync(fresh.store, 'bob', { 'r.txt': other });
  assert.equal(await inRegistry(repo, sha(other)), true);
});

test('with the fs blob store, contexts under the shared dir go by the age of their grant files; contents a younger or running build\'s context holds stay', async () => {
  const prefix = 'gc-g';
  const keys = redisKeys(prefix);
  const dir = join(fx.dir, 'fs-gc');
  const store = openContextStore({ root: join(dir, 'contexts'), blobs: openSharedBlobStore({ type: 'fs', sharedDir: join(dir, 'blobs'), localDir: join(dir, 'local') }), redis: fx.redis, keyPrefix: prefix });
  assert.ok(store.fsGrants, 'grants are files under the shared dir');
  const aliceOld = await sync(store, 'alice', { 'shared.txt': 'fs shared\n', 'mine.txt': 'fs alice only\n' });
  const carolRunning = await sync(store, 'carol', { 'run.txt': 'fs carol running\n' });
  // Everything was written eight days ago; then bob synced a context sharing one file.
  const old = new Date(Date.now() - 8 * DAY);
  for await (const b of store.content.list()) await utimes(store.content.path(b.digest), old, old);
  for (const [tenant, id] of [['alice', aliceOld], ['carol', carolRunning]] as const) await utimes(join(dir, 'contexts/tenants', tenant, id.slice(7)), old, old);
  const bobYoung = await sync(store, 'bob', { 'shared.txt': 'fs shared\n', 'bob.txt': 'fs bob\n' });
  await new BlobLeases(fx.redis, keys).lease('carol-build', [carolRunning], 60_000);

  const result = await collectContextGarbage({ store, redis: fx.redis, keys, maxAgeMs: 7 * DAY });
  assert.equal(result.ran, true);
  assert.deepEqual(result.contexts, [aliceOld]);
  assert.deepEqual(new Set(result.deleted), new Set([aliceOld, sha('fs alice only\n')]));
  assert.equal(await store.content.has(sha('fs shared\n')), true, 'bob\'s younger context holds it');
  assert.equal(await store.tenantHas('alice', aliceOld), false, 'the old grant file went');
  assert.equal(await store.tenantHasContent('alice', sha('fs alice only\n')), false);
  assert.equal(await store.tenantHas('carol', carolRunning), true, 'a running build\'s context keeps its grant');
  assert.equal(await store.tenantHas('bob', bobYoung), true);
  await materializeContext(store, carolRunning, join(dir, 'carol'));
  await materializeContext(store, bobYoung, join(dir, 'bob'));

  // Alice syncs it again: the deleted file is sent once more and the context is whole.
  const again = await sync(store, 'alice', { 'shared.txt': 'fs shared\n', 'mine.txt': 'fs alice only\n' });
  await materializeContext(store, again, join(dir, 'alice'));
});

test('a sync that found a content hours before granting it learns of its deletion however long ago that was, and puts it back', async () => {
  const { prefix, repo, a, gc } = world('f');
  const b = frontend(repo, prefix);
  const writes = new ContextWrites(fx.redis, prefix);
  const k = contextGrantKeys(prefix);
  const text = 'found long before the grant\n';
  const old = await sync(a.store, 'alice', { 'f.txt': text });
  const entries = await a.store.manifest(old);
  await age(prefix, 'alice', 8 * DAY);

  // Alice syncs again: the sync finds the file (her grant, the store's copy) and so does not send it.
  let found!: () => void;
  const foundIt = new Promise<void>((r) => { found = r; });
  let grant!: () => void;
  const granting = new Promise<void>((r) => { grant = r; });
  const writing = writes.during(async () => {
    assert.equal(await a.store.tenantHasContent('alice', sha(text)), true);
    found();
    await granting;
    return a.store.putManifest(entries, 'alice');
  });
  await foundIt;
  // Another frontend's context GC takes the old context, the file with it.
  const collected = await gc(b.store);
  assert.ok(collected.deleted.includes(sha(text)));
  assert.equal(await inRegistry(repo, sha(text)), false);
  // Hours go by (the sync uploads the rest of a big context): the records say so. Then any
  // other deletion trims what is on record.
  const hours = (h: number) => Date.now() - h * 3600_000;
  await fx.redis.zadd(k.deleted, 'XX', hours(2), sha(text), hours(2), old);
  const [writeId] = await fx.redis.zrange(writes.keys.started, 0, 0);
  await fx.redis.zadd(writes.keys.started, 'XX', hours(3), writeId!);
  const unrelated = sha('an unrelated blob');
  assert.deepEqual(await new ContextBlobGuard(fx.redis, prefix).deleteUnlessReferenced([unrelated], async () => true), [unrelated]);

  grant();
  assert.equal(await writing, old);
  assert.equal(await inRegistry(repo, sha(text)), true, 'the sync pushed the file back from its copy');
  const w = frontend(repo, prefix);
  await materializeContext(w.store, old, join(w.dir, 'ctx'));
  assert.deepEqual(await fx.redis.zrange(writes.keys.started, 0, -1), [], 'the write is off record once it ends');
});
