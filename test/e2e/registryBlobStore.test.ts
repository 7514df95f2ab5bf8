// blobStore.type=registry: workers share layers through a registry repository instead of a
// shared directory (the fleet default across machines).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { startCluster, startRegistry } from '@buildyard/testkit';
import { solve } from './grpcClient.js';

test('with a registry blob store, a two-worker build moves layers through the registry and pushes', async () => {
  const registry = await startRegistry();
  after(() => registry.stop());
  const cluster = await startCluster({ workers: 2, registry, env: {
    BUILDYARD_BLOB_STORE: 'registry', BUILDYARD_BLOB_REPOSITORY: `${registry.host}/buildyard/blobs`, BUILDYARD_WORKER_CAPACITY: '1',
  } });
  after(() => cluster.stop());
  const image = `${registry.host}/e2e/registry-store:1`;
  const outcome = await solve(cluster, resolve(import.meta.dirname, '../../examples/multi-stage'), {
    platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference }, outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }],
  });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const workers = new Set(outcome.events.filter((e) => e.vertex?.workerId).map((e) => e.vertex!.workerId));
  assert.equal(workers.size, 2, 'both workers ran stages');
  const manifest = await (await fetch(`${registry.url}/v2/e2e/registry-store/manifests/1`, { headers: { accept: 'application/vnd.oci.image.manifest.v1+json' } })).json() as { layers: Array<{ digest: string }> };
  for (const layer of manifest.layers) {
    const head = await fetch(`${registry.url}/v2/buildyard/blobs/blobs/${layer.digest}`, { method: 'HEAD' });
    assert.equal(head.status, 200, `layer ${layer.digest} is in the shared blob repository`);
  }
  const sharedFs = join(cluster.stateDir, 'shared/blobs/blobs/sha256');
  assert.ok(!existsSync(sharedFs) || readdirSync(sharedFs).length === 0, 'nothing went through a shared directory');
});
