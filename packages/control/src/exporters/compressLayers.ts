import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { FsContentStore } from '@buildyard/oci';
import { compressionFromMediaType, recompressLayer, type LayerCompression, type LayerDescriptor } from '@buildyard/snapshot';
import { baseLayerCount, type StageResult } from '@buildyard/solver';
import type { LayerCompressionOption } from './Exporter.js';

/**
 * A target stage's result with its layers in the compression the image outputs ask for, as
 * BuildKit's exporter makes them: the layers the build made (after its base image's, which the
 * first `baseHistory` history entries describe), every layer with force-compression. A layer
 * already in that compression stays as it is unless a level is asked for.
 */
export async function compressLayers(result: StageResult, option: LayerCompressionOption, baseHistory: number, blobs: FsContentStore): Promise<StageResult> {
  const target: LayerCompression = option.type === 'uncompressed' ? 'none' : option.type;
  const baseLayers = option.force ? 0 : baseLayerCount(result, baseHistory);
  const layers = await Promise.all(result.layers.map(async (layer, i) => {
    if (i < baseLayers || (option.level === undefined && compressionFromMediaType(layer.mediaType) === target)) return layer;
    return (await convertedBefore(blobs, layer, target, option.level)) ?? remember(blobs, layer, target, option.level, await recompressLayer(blobs, layer, target, option.level));
  }));
  return { ...result, layers };
}

/**
 * Conversions are remembered beside the blobs (`converted/<digest>-<compression>-<level>`), so a
 * rebuild does not compress the same layer again; one whose blob is gone is made again.
 */
const memoPath = (blobs: FsContentStore, layer: LayerDescriptor, target: LayerCompression, level: number | undefined) =>
  join(blobs.root, 'converted', `${layer.digest.replace(/^sha256:/, '')}-${target}-${level ?? 'default'}`);

async function convertedBefore(blobs: FsContentStore, layer: LayerDescriptor, target: LayerCompression, level: number | undefined): Promise<LayerDescriptor | undefined> {
  const known = await readFile(memoPath(blobs, layer, target, level), 'utf8').then((text) => JSON.parse(text) as LayerDescriptor, () => undefined);
  return known && known.diffID === layer.diffID && await blobs.has(known.digest) ? known : undefined;
}

async function remember(blobs: FsContentStore, layer: LayerDescriptor, target: LayerCompression, level: number | undefined, converted: LayerDescriptor): Promise<LayerDescriptor> {
  const path = memoPath(blobs, layer, target, level);
  await mkdir(join(blobs.root, 'converted'), { recursive: true });
  const partial = `${path}.${randomBytes(4).toString('hex')}`;
  await writeFile(partial, JSON.stringify(converted));
  await rename(partial, path);
  return converted;
}
