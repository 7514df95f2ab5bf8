import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { BlobNotFoundError, DigestMismatchError, FsContentStore, RegistryClient, RegistryError, sha256Digest } from '@buildyard/oci';
import { startRegistry, type RegistryService, startRegistryProxy, type RegistryProxy } from '@buildyard/testkit';
import { RegistryBlobStore } from './index.js';

let registry: RegistryService;
let proxy: RegistryProxy;
let spool: string;
before(async () => {
  registry = await startRegistry();
  proxy = await startRegistryProxy({ upstream: registry.host, mode: 'plain' });
  spool = await mkdtemp(join(tmpdir(), 'buildyard-regblob-'));
});
after(async () => {
  await Promise.allSettled([proxy?.stop(), registry?.stop()]);
  if (spool) await rm(spool, { recursive: true, force: true });
});

async function readAll(s: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of s) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

const store = (host = registry.host, repo = 'buildyard/blobs', client?: RegistryClient) =>
  new RegistryBlobStore({ repository: `${host}/${repo}`, client, spoolDir: spool });

test('round trip: put (buffer and stream, monolithic and chunked), has, size, openRead', async () => {
  const s = store();
  const a = randomBytes(3000);
  const put = await s.put(a);
  assert.deepEqual(put, { digest: sha256Digest(a), size: a.length });
  assert.equal(await s.has(put.digest), true);
  assert.equal(await s.size(put.digest), a.length);
  assert.deepEqual(await readAll(s.openRead(put.digest)), a);

  // A stream larger than the client's chunk threshold goes up in several PATCHes.
  const chunkedStore = store(registry.host, 'buildyard/blobs', new RegistryClient({ chunkedThreshold: 1024, chunkSize: 1000, dockerConfig: false }));
  const b = randomBytes(4500);
  const put2 = await chunkedStore.put(Readable.from([b.subarray(0, 10), b.subarray(10)]), sha256Digest(b), b.length);
  assert.equal(put2.digest, sha256Digest(b));
  assert.deepEqual(await readAll(s.openRead(put2.digest)), b);
  assert.deepEqual(await readdir(spool), [], 'spool files are removed');
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
  assert.deepEqual(await readdir(spool), []);
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
  const viaProxy = store(proxy.host);
  assert.deepEqual(await readAll(viaProxy.openRead(digest)), data);
  proxy.options.corruptBlobs = true;
  try {
    await assert.rejects(readAll(viaProxy.openRead(digest)), DigestMismatchError);
  } finally {
    proxy.options.corruptBlobs = false;
  }
  const missing = sha256Digest(randomBytes(8));
  await assert.rejects(readAll(viaProxy.openRead(missing)), BlobNotFoundError);
  await assert.rejects(viaProxy.size(missing), BlobNotFoundError);
});

test('delete unlinks the blob from the repository', async () => {
  const s = store(registry.host, 'buildyard/deletes');
  const { digest } = await s.put(randomBytes(500));
  assert.equal(await s.has(digest), true);
  assert.equal(await s.delete(digest), true);
  assert.equal(await s.has(digest), false);
  await assert.rejects(readAll(s.openRead(digest)), BlobNotFoundError);
  assert.equal(await s.delete(digest), false);
});

test('constructor refuses a client with a content store and a repository with a tag', async () => {
  const fs = new FsContentStore(join(spool, 'x'));
  assert.throws(() => store(registry.host, 'a/b', new RegistryClient({ store: fs })), /without \{ store \}/);
  assert.throws(() => new RegistryBlobStore({ repository: `${registry.host}/a/b:latest` }), /without one/);
});
