import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import { BlobNotFoundError, DigestMismatchError, FsContentStore, RegistryClient, RegistryError, sha256Digest } from '@buildyard/oci';
import { RegistryBlobStore } from './index.js';
import { useRegistryFixture } from './registryFixture.test-util.js';

const fx = useRegistryFixture('regblob');

const store = (host = fx.registry.host, repo = 'buildyard/blobs', client?: RegistryClient) =>
  new RegistryBlobStore({ repository: `${host}/${repo}`, client, spoolDir: fx.dir });

test('round trip: put (buffer and stream, monolithic and chunked), has, size, openRead', async () => {
  const s = store();
  const a = randomBytes(3000);
  const put = await s.put(a);
  assert.deepEqual(put, { digest: sha256Digest(a), size: a.length });
  assert.equal(await s.has(put.digest), true);
  assert.equal(await s.size(put.digest), a.length);
  assert.deepEqual(await buffer(s.openRead(put.digest)), a);

  // A stream larger than the client's chunk threshold goes up in several PATCHes.
  const chunkedStore = store(fx.registry.host, 'buildyard/blobs', new RegistryClient({ chunkedThreshold: 1024, chunkSize: 1000, dockerConfig: false }));
  const b = randomBytes(4500);
  const put2 = await chunkedStore.put(Readable.from([b.subarray(0, 10), b.subarray(10)]), sha256Digest(b), b.length);
  assert.equal(put2.digest, sha256Digest(b));
  assert.deepEqual(await buffer(s.openRead(put2.digest)), b);
  assert.deepEqual(await readdir(fx.dir), [], 'spool files are removed');
});

test('put rejects bytes that do not match the expected digest or size, and uploads nothing', async () => {
  const s = store();
  const data = randomBytes(100);
  const wrong = sha256Digest(randomBytes(10));
  await assert.rejects(s.put(data, wrong), DigestMismatchError);
  await assert.rejects(s.put(Readable.from([data]), wrong), DigestMismatchError);
  await assert.rejects(s.put(data, sha256Digest(data), 99), /size mismatch/);
  assert.equal(await s.has(wrong), false);
  assert.equal(await s.has(sha256Digest(data)), false);
  assert.deepEqual(await readdir(fx.dir), []);
});

test('pushFrom: the registry itself refuses bytes under the wrong digest', async () => {
  const s = store();
  const data = randomBytes(64);
  const claimed = sha256Digest(randomBytes(64));
  await assert.rejects(s.pushFrom({ digest: claimed, size: data.length }, () => Readable.from([data])), RegistryError);
  assert.equal(await s.has(claimed), false);
});

test('openRead fails with DigestMismatchError when the registry serves wrong bytes; a missing blob is BlobNotFoundError', async () => {
  const data = randomBytes(2048);
  const { digest } = await store().put(data);
  const viaProxy = store(fx.proxy.host);
  assert.deepEqual(await buffer(viaProxy.openRead(digest)), data);
  fx.proxy.options.corruptBlobs = true;
  try {
    await assert.rejects(buffer(viaProxy.openRead(digest)), DigestMismatchError);
  } finally {
    fx.proxy.options.corruptBlobs = false;
  }
  const missing = sha256Digest(randomBytes(8));
  await assert.rejects(buffer(viaProxy.openRead(missing)), BlobNotFoundError);
  await assert.rejects(viaProxy.size(missing), BlobNotFoundError);
});

test('delete unlinks the blob from the repository', async () => {
  const s = store(fx.registry.host, 'buildyard/deletes');
  const { digest } = await s.put(randomBytes(500));
  assert.equal(await s.has(digest), true);
  assert.equal(await s.delete(digest), true);
  assert.equal(await s.has(digest), false);
  await assert.rejects(buffer(s.openRead(digest)), BlobNotFoundError);
  assert.equal(await s.delete(digest), false);
});

test('constructor refuses a client with a content store and a repository with a tag', async () => {
  const fs = new FsContentStore(join(fx.dir, 'x'));
  assert.throws(() => store(fx.registry.host, 'a/b', new RegistryClient({ store: fs })), /without \{ store \}/);
  assert.throws(() => new RegistryBlobStore({ repository: `${fx.registry.host}/a/b:latest` }), /without one/);
});
