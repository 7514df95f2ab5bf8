// Bytes-pulled accounting against a real registry (docker-registry seeded with busybox).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FsContentStore } from '@buildyard/oci';
import { RegistryImageSource } from '@buildyard/solver';
import { seededRegistryFixture } from '@buildyard/testkit';
import { CountingRegistryClient } from './CountingRegistryClient.js';

const fx = seededRegistryFixture('fleet');

test('layers fetched from the registry are counted once; blobs already in the store are not', async () => {
  const store = new FsContentStore(join(fx.dir, 'blobs'));
  await store.init();
  let pulled = 0;
  const client = new CountingRegistryClient((n) => { pulled += n; }, { store, insecureHosts: [fx.registry.host], dockerConfig: false });
  const image = await new RegistryImageSource(client, store).pull(fx.busybox.reference, fx.busybox.manifests['linux/arm64'], 'linux/arm64');
  const layerBytes = image.layers.reduce((n, l) => n + l.size, 0);
  assert.ok(layerBytes > 100_000, 'busybox layer is big enough to notice');
  // The layer plus the image config blob (resolve fetches it through pullBlob too).
  assert.ok(pulled > layerBytes && pulled < layerBytes + 10_000, `pulled ${pulled} = layers ${layerBytes} + config`);
  const first = pulled;

  // A new source (no memo) over the same store: the blobs are local, nothing is pulled.
  await new RegistryImageSource(client, store).pull(fx.busybox.reference, fx.busybox.manifests['linux/arm64'], 'linux/arm64');
  assert.equal(pulled, first);
});
