import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { compressionFromMediaType, createCompressor, createDecompressor, layerMediaType, peekBytes, sniffCompression, type LayerCompression } from './compression.js';
import { HashingStream } from './layerBlob.js';

/** A layer blob as an image manifest and a stage result name it. */
export interface LayerDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  diffID: string;
}

/** Where blobs are read from and put (FsContentStore fits). */
export interface LayerBlobStore {
  openRead(digest: string): Readable;
  put(data: Readable): Promise<{ digest: string; size: number }>;
}

/**
 * The same layer in another compression (BuildKit's exporter `compression=`): its blob
 * decompressed, checked against its diffID and compressed again into `store`. The uncompressed
 * tar, so the diffID, is unchanged; only the blob, its digest and media type differ.
 */
export async function recompressLayer(store: LayerBlobStore, layer: LayerDescriptor, compression: LayerCompression, level?: number): Promise<LayerDescriptor> {
  const blob = store.openRead(layer.digest);
  const from = compressionFromMediaType(layer.mediaType) ?? sniffCompression(await peekBytes(blob, 4));
  const tar = new HashingStream();
  const compressed = new PassThrough();
  const [{ digest, size }] = await Promise.all([store.put(compressed), pipeline(blob, createDecompressor(from), tar, createCompressor(compression, level), compressed)]);
  const diffID = tar.digest();
  if (diffID !== layer.diffID) throw new Error(`layer ${layer.digest} does not hold the diffID its image names (${layer.diffID}, found ${diffID}): the blob store is damaged`);
  return { mediaType: layerMediaType(compression), digest, size, diffID: layer.diffID };
}
