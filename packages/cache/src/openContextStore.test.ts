// Contexts between machines that share no directory: a frontend's store and a worker's store,
// each with its own root, meet only in a real registry repository and a real Redis.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { join, relative } from 'node:path';
import { materializeContext, storeDirectory, type ContextStore } from '@buildyard/context';
import { FsContentStore, RegistryClient, sha256Digest } from '@buildyard/oci';
import { openContextStore, openSharedBlobStore, TieredBlobStore } from './index.js';
import { useRegistryFixture } from './registryFixture.test-util.js';

const fx = useRegistryFixture('context-store', { redis: true });

let n = 0;
/** One machine: its own dir, the shared repository behind its blob store, the shared Redis. */
function machine(repo: string): { dir: string; store: ContextStore; content: TieredBlobStore } {
  const dir = join(fx.dir, `machine-${++n}`);
  const blobs = openSharedBlobStore({ type: 'registry', repository: `${fx.registry.host}/${repo}`, sharedDir: join(dir, 'shared/blobs'), localDir: join(dir, 'blobs') });
  const store = openContextStore({ root: join(dir, 'shared/contexts'), blobs, redis: fx.redis, keyPrefix: 'ctx-test' });
  assert.ok(store.content instanceof TieredBlobStore);
  return { dir, store, content: store.content };
}

async function tree(dir: string): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (d: string) => {
    for (const e of await readdir(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) await walk(p);
      else out[relative(dir, p)] = await readFile(p, 'utf8');
    }
  };
  await walk(dir);
  return out;
}

async function writeContext(dir: string, files: Record<string, string>): Promise<void> {
  for (const [path, text] of Object.entries(files)) {
    await mkdir(join(dir, path, '..'), { recursive: true });
    await writeFile(join(dir, path), text);
  }
}

test('a context stored on one machine materialises on another through the registry; a one-file change moves one file', async () => {
  const frontend = machine('ctx/a');
  const worker = machine('ctx/a');
  const src = join(fx.dir, 'src-a');
  const files = { 'Dockerfile': 'FROM scratch\n', 'app/main.sh': 'echo hi\n', 'app/same-1.txt': 'same\n', 'app/same-2.txt': 'same\n', 'big.bin': 'x'.repeat(300_000) };
  await writeContext(src, files);
  const first = await storeDirectory(frontend.store, src, { tenant: 'alice' });
  // Four distinct contents (two files share one) and the manifest, each pushed once.
  assert.equal(frontend.content.stats.pushed, 5);
  const repo = { registry: fx.registry.host, repository: 'ctx/a' };
  const client = new RegistryClient();
  assert.equal(await client.blobExists(repo, first.contextId), true, 'the manifest is in the shared repository');

  assert.equal(await worker.store.tenantHas('alice', first.contextId), true, 'the grant is visible from the other machine');
  assert.equal(await worker.store.tenantHas('bob', first.contextId), false, 'and only for its tenant');
  const dest1 = join(worker.dir, 'contexts', first.contextId.slice(7));
  await materializeContext(worker.store, first.contextId, dest1);
  assert.deepEqual(await tree(dest1), files);
  assert.equal(worker.content.stats.fetched, 5, 'the manifest and the four contents were fetched once each');
  assert.ok((await stat(join(worker.dir, 'shared/contexts/content/blobs/sha256', sha256Digest(Buffer.from('same\n')).slice(7)))).isFile(), 'into the worker\'s own dir');

  // One file changes: one new content and a new manifest go up, and the worker fetches just those,
  // starting from the tree it has.
  await writeFile(join(src, 'app/main.sh'), 'echo changed\n');
  const second = await storeDirectory(frontend.store, src, { tenant: 'alice' });
  assert.equal(frontend.content.stats.pushed, 7);
  const dest2 = join(worker.dir, 'contexts', second.contextId.slice(7));
  const result = await materializeContext(worker.store, second.contextId, dest2, { reuseSiblings: true });
  assert.equal(result.reusedFrom, first.contextId);
  assert.equal(worker.content.stats.fetched, 7);
  assert.deepEqual(await tree(dest2), { ...files, 'app/main.sh': 'echo changed\n' });
});

test('grants cross machines per tenant: another tenant\'s digest or context id proves nothing', async () => {
  const a = machine('ctx/b');
  const b = machine('ctx/b');
  const src = join(fx.dir, 'src-b');
  await writeContext(src, { 'secret.txt': 'alice only\n' });
  const { contextId } = await storeDirectory(a.store, src, { tenant: 'alice' });
  const digest = sha256Digest(Buffer.from('alice only\n'));
  assert.equal(await b.store.tenantHasContent('alice', digest), true);
  assert.equal(await b.store.tenantHasContent('bob', digest), false, 'bob must send the bytes himself');
  assert.equal(await b.store.tenantHas('bob', contextId), false);
  // A small batch of uploads (putBlobs) reaches the other machine too.
  const data = Buffer.from('batched\n');
  await a.store.putBlobs([{ digest: sha256Digest(data), data }]);
  assert.deepEqual(await b.store.content.readBytes(sha256Digest(data)), data);
});

test('a content the shared store lost fails materialisation with a one-line request to upload again', async () => {
  const a = machine('ctx/c');
  const b = machine('ctx/c');
  const src = join(fx.dir, 'src-c');
  await writeContext(src, { 'gone.txt': 'soon gone\n' });
  const { contextId } = await storeDirectory(a.store, src, { tenant: 'alice' });
  await a.content.remote.delete(sha256Digest(Buffer.from('soon gone\n')));
  await assert.rejects(materializeContext(b.store, contextId, join(b.dir, 'out')), /missing from the shared blob store; upload the context again/);
});

test('local copies are a cache: trimmed oldest first, fetched again when needed; an unshared store trims nothing', async () => {
  const a = machine('ctx/d');
  const b = machine('ctx/d');
  const src = join(fx.dir, 'src-d');
  await writeContext(src, { 'one.txt': '1'.repeat(1000), 'two.txt': '2'.repeat(2000) });
  const { contextId } = await storeDirectory(a.store, src, { tenant: 'alice' });
  await materializeContext(b.store, contextId, join(b.dir, 'first'));
  const fetched = b.content.stats.fetched;
  // Fresh copies are kept (a writer may be about to push them) unless the grace is zero.
  assert.equal((await b.store.trimLocalCopies(0)).freedBytes, 0);
  const trimmed = await b.store.trimLocalCopies(0, 0);
  assert.ok(trimmed.freedBytes >= 3000, `freed ${trimmed.freedBytes} bytes`);
  assert.equal(trimmed.keptBytes, 0);
  await materializeContext(b.store, contextId, join(b.dir, 'second'));
  assert.deepEqual(await tree(join(b.dir, 'second')), { 'one.txt': '1'.repeat(1000), 'two.txt': '2'.repeat(2000) });
  assert.equal(b.content.stats.fetched, fetched + 3, 'the manifest and both files were fetched again');

  const fsDir = join(fx.dir, 'fs-trim');
  const fsStore = openContextStore({ root: join(fsDir, 'contexts'), blobs: openSharedBlobStore({ type: 'fs', sharedDir: join(fsDir, 'blobs'), localDir: join(fsDir, 'local') }), redis: fx.redis, keyPrefix: 'ctx-test' });
  const fsCtx = await storeDirectory(fsStore, src, { tenant: 'alice' });
  assert.deepEqual(await fsStore.trimLocalCopies(0, 0), { freedBytes: 0, keptBytes: 0 });
  assert.equal(await fsStore.content.has(fsCtx.contextId), true);
});

test('with a shared directory (fs blob store) the context store stays under it, grants included', async () => {
  const dir = join(fx.dir, 'fs-machine');
  const blobs = openSharedBlobStore({ type: 'fs', sharedDir: join(dir, 'shared/blobs'), localDir: join(dir, 'blobs') });
  const store = openContextStore({ root: join(dir, 'shared/contexts'), blobs, redis: fx.redis, keyPrefix: 'ctx-test' });
  assert.ok(!(store.content instanceof TieredBlobStore));
  assert.ok(store.content instanceof FsContentStore);
  const src = join(fx.dir, 'src-fs');
  await writeContext(src, { 'a.txt': 'fs\n' });
  const { contextId } = await storeDirectory(store, src, { tenant: 'carol' });
  assert.ok((await stat(join(dir, 'shared/contexts/tenants/carol', contextId.slice(7)))).isFile());
  assert.ok((await stat(join(dir, 'shared/contexts/content/blobs/sha256', contextId.slice(7)))).isFile());
  assert.equal(await fx.redis.exists('ctx-test:contexts:grants:carol:ids'), 0, 'no grant went to Redis');
});
