import type { FsContentStore } from '@buildyard/oci';
import { compressionFromMediaType, recompressLayer, type LayerCompression } from '@buildyard/snapshot';
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
    return recompressLayer(blobs, layer, target, option.level);
  }));
  return { ...result, layers };
}
