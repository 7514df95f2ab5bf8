import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { BlobNotFoundError, DigestMismatchError, FsContentStore, RegistryClient, sha256Digest } from '@buildyard/oci';
import { RegistryBlobStore, TieredBlobStore } from './index.js';
import type { RegistryProxy } from '@buildyard/testkit';
import { useRegistryFixture } from './registryFixture.test-util.js';

/** Blob downloads the proxy forwarded. */
const blobGets = (p: RegistryProxy) => p.requests.filter((r) => r.method === 'GET' && /\/blobs\/sha256:/.test(r.path)).length;

const fx = useRegistryFixture('tiered');

let n = 0;
/** A worker's store: its own local dir, the shared registry repository (optionally via the proxy). */
function worker(host = fx.registry.host): TieredBlobStore {
  const local = new FsContentStore(join(fx.dir, `worker-${++n}`));
  return new TieredBlobStore(local, new RegistryBlobStore({ repository: `${host}/buildyard/shared`, spoolDir: fx.dir }));
}

test('worker A writes through; worker B reads it (fetched once, then served locally)', async () => {
  const a = worker();
  const b = worker(fx.proxy.host);
  const data = randomBytes(5000);
  const { digest, size } = await a.put(Readable.from([data]), sha256Digest(data), data.length);
  assert.equal(a.stats.pushed, 1);
  assert.equal(await a.remote.has(digest), true, 'put resolves only after the remote has the blob');

  assert.equal(await b.local.has(digest), false);
  assert.equal(await b.has(digest), true, 'has() sees the remote tier');
  assert.equal(await b.size(digest), size);
  const gets = blobGets(fx.proxy);
  const [r1, r2] = await Promise.all([buffer(b.openRead(digest)), b.readBytes(digest)]);
  assert.deepEqual(r1, data);
  assert.deepEqual(r2, data);
  assert.equal(b.stats.fetched, 1);
  assert.equal(blobGets(fx.proxy) - gets, 1, 'concurrent readers share one download');
  assert.equal(await b.local.has(digest), true);
  assert.deepEqual(await buffer(b.openRead(digest)), data);
  assert.equal(blobGets(fx.proxy) - gets, 1, 'later reads are local');
  assert.deepEqual(await readFile(await b.ensureLocal(digest)), data);
});

test('writer() commits locally and pushes; a missing blob is BlobNotFoundError', async () => {
  const a = worker();
  const data = randomBytes(300);
  const w = await a.writer({ expectedDigest: sha256Digest(data) });
  await w.write(data);
  const info = await w.commit();
  assert.equal(await worker().has(info.digest), true);
  const missing = sha256Digest(randomBytes(4));
  assert.equal(await a.has(missing), false);
  await assert.rejects(buffer(a.openRead(missing)), BlobNotFoundError);
  await assert.rejects(a.ensureLocal(missing), BlobNotFoundError);
});

test('a corrupt local copy is not served: openRead fails and drops it, readBytes re-fetches', async () => {
  const a = worker();
  const data = randomBytes(4000);
  const { digest } = await a.put(data);
  const corrupt = Buffer.from(data);
  corrupt[100] ^= 0x01;
  await writeFile(a.path(digest), corrupt);
  await assert.rejects(buffer(a.openRead(digest)), DigestMismatchError);
  assert.equal(await a.local.has(digest), false, 'the bad copy is dropped');
  assert.deepEqual(await buffer(a.openRead(digest)), data, 'the next read fetches a good copy');

  await writeFile(a.path(digest), corrupt);
  assert.deepEqual(await a.readBytes(digest), data);
  assert.equal(a.stats.corruptDropped, 2);
  assert.equal(a.stats.fetched, 2);
});

test('wrong bytes from the remote never land in the local store', async () => {
  const a = worker();
  const b = worker(fx.proxy.host);
  const data = randomBytes(1000);
  const { digest } = await a.put(data);
  fx.proxy.options.corruptBlobs = true;
  try {
    await assert.rejects(b.readBytes(digest), DigestMismatchError);
    await assert.rejects(buffer(b.openRead(digest)), DigestMismatchError);
  } finally {
    fx.proxy.options.corruptBlobs = false;
  }
  assert.equal(await b.local.has(digest), false);
  assert.equal(b.stats.fetched, 0);
});

test('drops in as a RegistryClient store: a push reads a remote-only blob through it', async () => {
  const a = worker();
  const b = worker();
  const data = randomBytes(700);
  const { digest, size } = await a.put(data);
  const client = new RegistryClient({ store: b, dockerConfig: false });
  const res = await client.pushBlob(`${fx.registry.host}/other/image`, { digest, size });
  assert.equal(res.result, 'uploaded');
  assert.deepEqual(await client.fetchBlobBytes(`${fx.registry.host}/other/image`, digest), data);
  assert.equal(b.stats.fetched, 1);
});

test('delete removes the blob from both tiers; evictLocal only from the local one', async () => {
  const a = worker();
  const b = worker();
  const { digest } = await a.put(randomBytes(200));
  await b.ensureLocal(digest);
  assert.equal(await b.evictLocal(digest), true);
  assert.equal(await b.has(digest), true);
  assert.equal(await a.delete(digest), true);
  assert.equal(await a.has(digest), false);
  assert.equal(await b.has(digest), false);
  const listed: string[] = [];
  for await (const x of a.list()) listed.push(x.digest);
  assert.equal(listed.includes(digest), false);
});
