import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { rm } from 'node:fs/promises';
import { buffer } from 'node:stream/consumers';
import { FsContentStore } from '@buildyard/oci';
import { writeLayerTar } from '@buildyard/snapshot';
import type { StageResult } from '@buildyard/solver';
import { testWorkDir } from '@buildyard/testkit';
import { compressLayers } from './compressLayers.js';

const sha = (b: Buffer) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

test('compression= converts the build\'s own layers, the base image\'s only when forced, and remembers a conversion so a rebuild does not compress again', async () => {
  const blobs = new FsContentStore(testWorkDir('buildyard-compress-'));
  const layer = async (name: string) => {
    const tar = await buffer(writeLayerTar([{ path: name, type: 'file', mode: 0o644, uid: 0, gid: 0, mtime: 0, data: Buffer.from(name.repeat(100)), size: name.length * 100 }]));
    const { digest, size } = await blobs.put(tar);
    return { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size, diffID: sha(tar) };
  };
  const result: StageResult = {
    stageId: 's', platform: 'linux/amd64', config: {}, cacheKey: 'k', verticesTotal: 1, verticesCached: 0,
    layers: [await layer('base'), await layer('own')], history: [{ created_by: 'base' }, { created_by: 'COPY own' }],
  };
  const zstd = await compressLayers(result, { type: 'zstd', force: false }, 1, blobs);
  assert.deepEqual(zstd.layers.map((l) => l.mediaType), ['application/vnd.oci.image.layer.v1.tar', 'application/vnd.oci.image.layer.v1.tar+zstd']);
  assert.equal(zstd.layers[1].diffID, result.layers[1].diffID);
  const forced = await compressLayers(result, { type: 'zstd', force: true }, 1, blobs);
  assert.deepEqual(forced.layers.map((l) => l.mediaType.endsWith('+zstd')), [true, true]);
  // Remembered: with the source blob gone the conversion is still answered, from the store.
  await blobs.delete(result.layers[1].digest);
  assert.deepEqual((await compressLayers(result, { type: 'zstd', force: false }, 1, blobs)).layers[1], zstd.layers[1]);
  // A remembered blob that is gone is made again (here it cannot be: the source is gone too).
  await blobs.delete(zstd.layers[1].digest);
  await assert.rejects(compressLayers(result, { type: 'zstd', force: false }, 1, blobs));
  await rm(blobs.root, { recursive: true, force: true });
});
