import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FsContentStore } from '@buildyard/oci';
import { LocalCacheIndex, pruneCache, collectBlobGarbage } from './index.js';

/** Resolves once Date.now() has moved past its value at the call: the next timestamp is later. */
async function clockMovedOn(): Promise<void> {
  const t = Date.now();
  while (Date.now() <= t) await new Promise((r) => setImmediate(r));
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-gc-'));
  try { await fn(dir); } finally { await rm(dir, { recursive: true, force: true }); }
}

const fixedLeases = (digests: string[]) => ({ leased: async () => new Set(digests) });

test('pruneCache removes LRU records and their blobs, but keeps leased ones', () => withDir(async (dir) => {
  const store = new FsContentStore(join(dir, 'blobs'));
  const index = new LocalCacheIndex(join(dir, 'index'));
  const blobs = [];
  for (const text of ['one', 'two', 'three']) blobs.push(await store.put(Buffer.from(text.repeat(100))));
  for (const [i, b] of blobs.entries()) {
    await index.put({ key: `k${i}`, layer: { digest: b.digest, diffID: b.digest, size: b.size, mediaType: 'x' }, description: `step ${i}`, platform: 'linux/amd64' });
    await clockMovedOn(); // records sort by last use: each must be strictly later
  }
  const result = await pruneCache({ index, blobs: store, leases: fixedLeases([blobs[0].digest]), policy: { all: true } });
  assert.deepEqual(result.removed.map((r) => r.key), ['k1', 'k2']);
  assert.deepEqual(result.deletedBlobs.sort(), [blobs[1].digest, blobs[2].digest].sort());
  assert.equal(await store.has(blobs[0].digest), true, 'the leased blob survives');
  assert.equal(await store.has(blobs[1].digest), false);
  assert.deepEqual((await index.list()).map((r) => r.key), ['k0']);
}));

test('pruneCache never deletes a blob that became leased while pruning', () => withDir(async (dir) => {
  const store = new FsContentStore(join(dir, 'blobs'));
  const index = new LocalCacheIndex(join(dir, 'index'));
  const b = await store.put(Buffer.from('late lease'));
  await index.put({ key: 'k', layer: { digest: b.digest, diffID: b.digest, size: b.size, mediaType: 'x' }, description: 'k', platform: 'linux/amd64' });
  let calls = 0;
  const leases = { leased: async () => new Set(calls++ === 0 ? [] : [b.digest]) };
  const result = await pruneCache({ index, blobs: store, leases, policy: { all: true } });
  assert.deepEqual(result.removed.map((r) => r.key), ['k']);
  assert.deepEqual(result.deletedBlobs, []);
  assert.equal(await store.has(b.digest), true);
}));

test('collectBlobGarbage sweeps unreferenced blobs by age, then oldest-first to fit keepBytes', () => withDir(async (dir) => {
  const store = new FsContentStore(join(dir, 'blobs'));
  const now = Date.now();
  const put = async (text: string, ageMs: number) => {
    const b = await store.put(Buffer.from(text));
    const t = new Date(now - ageMs);
    await utimes(store.path(b.digest), t, t);
    return b;
  };
  const ancient = await put('a'.repeat(100), 10 * 3600_000);
  const referencedOld = await put('r'.repeat(100), 10 * 3600_000);
  const leasedOld = await put('l'.repeat(100), 10 * 3600_000);
  const older = await put('o'.repeat(100), 600_000);
  const newer = await put('n'.repeat(100), 60_000);
  // Default policy: only the one-hour grace.
  const first = await collectBlobGarbage({ store, referenced: new Set([referencedOld.digest]), leases: fixedLeases([leasedOld.digest]), policy: {}, now });
  assert.deepEqual(first.deleted, [ancient.digest]);
  assert.equal(first.reclaimedBytes, 100);
  // keepBytes: 300 bytes allowed of 400 left; the oldest unreferenced young blob goes.
  const second = await collectBlobGarbage({ store, referenced: new Set([referencedOld.digest]), leases: fixedLeases([leasedOld.digest]), policy: { keepBytes: 300 }, now });
  assert.deepEqual(second.deleted, [older.digest]);
  assert.equal(second.keptBytes, 300);
  for (const b of [referencedOld, leasedOld, newer]) assert.equal(await store.has(b.digest), true);
}));
