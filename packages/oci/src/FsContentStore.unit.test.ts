import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { FsContentStore, DigestMismatchError, BlobNotFoundError } from './FsContentStore.js';
import { sha256Digest } from './digest.js';

async function withStore(fn: (store: FsContentStore, root: string) => Promise<void>): Promise<void> {
  const root = await mkdtemp(join(tmpdir(), 'oci-store-'));
  try {
    await fn(new FsContentStore(root), root);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
}

async function collect(r: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of r) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

test('put a buffer, then read it back by digest', () => withStore(async (store, root) => {
  const data = Buffer.from('hello blob');
  const d = sha256Digest(data);
  assert.equal(await store.has(d), false);
  const info = await store.put(data);
  assert.deepEqual(info, { digest: d, size: data.length });
  assert.equal(await store.has(d), true);
  assert.equal(await store.size(d), data.length);
  assert.equal(store.path(d), join(root, 'blobs', 'sha256', d.slice(7)));
  assert.deepEqual(await store.readBytes(d), data);
  assert.deepEqual(await collect(store.openRead(d)), data);
}));

test('put a stream with the expected digest', () => withStore(async (store) => {
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 7);
  const d = sha256Digest(big);
  const info = await store.put(Readable.from([big.subarray(0, 1000), big.subarray(1000)]), d);
  assert.equal(info.digest, d);
  assert.equal(info.size, big.length);
  assert.deepEqual(await collect(store.openRead(d)), big);
}));

test('a mismatching digest throws and leaves nothing visible', () => withStore(async (store, root) => {
  const wrong = sha256Digest('something else');
  await assert.rejects(store.put(Buffer.from('actual'), wrong), (err: unknown) => {
    assert.ok(err instanceof DigestMismatchError);
    assert.equal(err.message, `digest mismatch: expected ${wrong}, got ${sha256Digest('actual')}`);
    return true;
  });
  assert.equal(await store.has(wrong), false);
  assert.equal(await store.has(sha256Digest('actual')), false);
  assert.deepEqual(await readdir(join(root, 'ingest')), []);
}));

test('writer: data is invisible until commit, abort discards it', () => withStore(async (store, root) => {
  const data = Buffer.from('partial then whole');
  const d = sha256Digest(data);
  const w = await store.writer(d);
  await w.write(data.subarray(0, 5));
  assert.equal(await store.has(d), false);
  assert.equal((await readdir(join(root, 'ingest'))).length, 1);
  await w.write(data.subarray(5));
  assert.equal(await store.has(d), false);
  assert.deepEqual(await w.commit(), { digest: d, size: data.length });
  assert.equal(await store.has(d), true);
  await assert.rejects(w.write(Buffer.from('x')), /already committed/);

  const w2 = await store.writer();
  await w2.write(Buffer.from('never'));
  await w2.abort();
  await w2.abort();
  assert.deepEqual(await readdir(join(root, 'ingest')), []);
  assert.equal(await store.has(sha256Digest('never')), false);
}));

test('writer checks the expected size', () => withStore(async (store) => {
  const data = Buffer.from('sized');
  const w = await store.writer({ expectedDigest: sha256Digest(data), expectedSize: 99 });
  await w.write(data);
  await assert.rejects(w.commit(), /size mismatch/);
  assert.equal(await store.has(sha256Digest(data)), false);
}));

test('missing blobs give one-line errors', () => withStore(async (store) => {
  const d = sha256Digest('missing');
  await assert.rejects(store.readBytes(d), BlobNotFoundError);
  await assert.rejects(store.size(d), /not found in content store/);
  await assert.rejects(collect(store.openRead(d)), BlobNotFoundError);
  assert.equal(await store.delete(d), false);
  assert.throws(() => store.path('sha256:nothex'), /invalid digest "sha256:nothex"/);
}));

test('list, delete and cleanupIngest', () => withStore(async (store, root) => {
  const a = await store.put(Buffer.from('a'));
  const b = await store.put(Buffer.from('bb'));
  const listed = [];
  for await (const e of store.list()) listed.push(e);
  assert.deepEqual(listed.map((e) => e.digest).sort(), [a.digest, b.digest].sort());
  assert.equal(listed.find((e) => e.digest === b.digest)?.size, 2);
  assert.ok(listed.every((e) => e.mtime instanceof Date));
  assert.equal(await store.delete(a.digest), true);
  assert.equal(await store.has(a.digest), false);

  // Leftover from a killed process.
  await writeFile(join(root, 'ingest', 'leftover'), 'junk');
  assert.equal(await store.cleanupIngest(), 1);
  assert.deepEqual(await readdir(join(root, 'ingest')), []);
}));

test('list on an empty, uninitialised store yields nothing', async () => {
  const store = new FsContentStore(join(tmpdir(), 'oci-store-does-not-exist-' + process.pid));
  const listed = [];
  for await (const e of store.list()) listed.push(e);
  assert.deepEqual(listed, []);
  assert.equal(await store.cleanupIngest(), 0);
});
