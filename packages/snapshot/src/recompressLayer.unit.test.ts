import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { FsContentStore } from '@buildyard/oci';
import { recompressLayer } from './recompressLayer.js';
import { writeLayerBlob } from './layerBlob.js';
import { rawTar, streamOf, tempDir } from './testHelpers.test-util.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => { tmp = await tempDir('recompress'); });
after(async () => { await tmp.cleanup(); });

test('a layer recompressed keeps its tar (diffID), gets the compression\'s media type, and goes back the same way', async () => {
  const store = new FsContentStore(join(tmp.path, 'store'));
  const tar = await rawTar([{ name: 'f', data: 'x'.repeat(10_000) }]);
  const blob = await writeLayerBlob(streamOf(tar), { compression: 'gzip', blobPath: join(tmp.path, 'layer.gz') });
  await store.put(await readFile(blob.blobPath), blob.digest);
  const gzip = { mediaType: blob.mediaType, digest: blob.digest, size: blob.size, diffID: blob.diffID };
  const zstd = await recompressLayer(store, gzip, 'zstd', 19);
  assert.equal(zstd.mediaType, 'application/vnd.oci.image.layer.v1.tar+zstd');
  assert.equal(zstd.diffID, gzip.diffID);
  assert.deepEqual([...(await store.readBytes(zstd.digest)).subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  const plain = await recompressLayer(store, zstd, 'none');
  assert.deepEqual({ ...plain }, { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: gzip.diffID, size: tar.length, diffID: gzip.diffID }, 'uncompressed: the blob is the tar, its digest the diffID');
  assert.deepEqual(await recompressLayer(store, plain, 'gzip'), gzip, 'the same level gives the same gzip blob back');
});

test('a blob that does not hold its diffID fails naming both', async () => {
  const store = new FsContentStore(join(tmp.path, 'damaged'));
  const other = await rawTar([{ name: 'f', data: 'other' }]);
  const { digest, size } = await store.put(other);
  const claimed = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest, size, diffID: `sha256:${'0'.repeat(64)}` };
  await assert.rejects(recompressLayer(store, claimed, 'gzip'), new RegExp(`^Error: layer ${digest} does not hold the diffID its image names \\(sha256:0{64}, found ${digest}\\): the blob store is damaged$`));
});
