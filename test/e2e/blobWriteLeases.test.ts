// A running build's blobs against the blob GC at no grace (closing note 6): what the build has
// stored in the shared store but nothing references yet (the base image's manifest, config and
// layers it pulled) stays while the build runs, whatever the GC's grace; once the build is over
// its leases are gone and the GC may take what nothing references.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { BlobLeases, ContextBlobGuard, RedisCacheIndex, collectBlobGarbage, openSharedBlobStore } from '@buildyard/cache';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { until } from '@buildyard/testkit';
import { startGates, type Gates } from './gate.js';
import { solve } from './grpcClient.js';
import { clusterFixture } from './security/clusterFixture.js';

let gates: Gates | undefined;
after(async () => { await gates?.stop(); });

const fx = clusterFixture(async () => {
  gates = await startGates();
  return { workers: 1 };
}, 'blob-write-leases');

test('the blob GC at no grace keeps every blob of a running build; they go once it is over', async () => {
  const { cluster } = fx;
  const redis = new Redis(cluster.redis.url);
  try {
    // The frontend's GC (Frontend.collectGarbage) over the cluster's shared blob directory.
    const store = openSharedBlobStore({ type: 'fs', sharedDir: join(cluster.stateDir, 'shared/blobs'), localDir: join(cluster.stateDir, 'unused') });
    const guard = new ContextBlobGuard(redis, DEFAULT_KEYS.prefix);
    const gc = async () => collectBlobGarbage({
      store: { list: () => store.list(), delete: guard.guarded((d) => store.delete(d)) },
      referenced: await RedisCacheIndex.referencedBlobs(redis, DEFAULT_KEYS), leases: new BlobLeases(redis, DEFAULT_KEYS), policy: { keepBytes: 0, keepDurationMs: 0 },
    });
    const listed = async () => { const out: string[] = []; for await (const b of store.list()) out.push(b.digest); return out; };

    const gate = `leases-${randomBytes(6).toString('hex')}`;
    const dir = fx.context('held', `FROM ${cluster.busybox.reference}\nRUN ${gates!.wait(gate)} && echo held > /h\n`);
    const building = solve(cluster, dir, { platforms: ['linux/amd64'] });
    building.catch(() => undefined);
    await gates!.arrived(gate, { unless: building });

    // The build stored the base image (its manifest, config, layer) in the shared store for the
    // step: nothing references it yet.
    const pulled = await listed();
    assert.ok(pulled.length > 0, 'the build stored the base image\'s blobs');
    const during = await gc();
    assert.deepEqual(during.deleted, [], 'nothing the running build stored was deleted');
    for (const d of pulled) assert.equal(await store.has(d), true, `${d} is still in the shared store`);

    gates!.open(gate);
    const outcome = await building;
    assert.equal(outcome.error, undefined, outcome.error?.message);

    // The build over, the frontend released its leases: what no cache record references goes.
    await until('the build\'s blob leases to end', async () => (await new BlobLeases(redis, DEFAULT_KEYS).leasedAmong(pulled)).size === 0);
    const afterwards = await gc();
    assert.ok(afterwards.deleted.length > 0, 'the ended build\'s unreferenced blobs are garbage now');
    const referenced = await RedisCacheIndex.referencedBlobs(redis, DEFAULT_KEYS);
    for (const d of afterwards.deleted) assert.equal(referenced.has(d), false);
  } finally {
    redis.disconnect();
  }
});
