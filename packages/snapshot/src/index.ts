// Public API of @buildyard/snapshot: the Snapshotter interface and its overlayfs
// implementation, layer unpack, deterministic layer tars, snapshot GC, scratch dirs.
export { applyLayer, type ApplyLayerOptions, type ApplyLayerResult, type LayerLimits } from './applyLayer.js';
export { ownedSnapshotName, snapshotChainNames, type SnapshotLayerRef } from './chainID.js';
export {
  compressionFromMediaType, layerMediaType, sniffCompression,
  MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD, type LayerCompression,
} from './compression.js';
export { writeLayerBlob, type LayerBlob, type LayerBlobOptions } from './layerBlob.js';
export { recompressLayer, type LayerBlobStore, type LayerDescriptor } from './recompressLayer.js';
export {
  OverlaySnapshotter, type ActiveSnapshot, type ChainLayer, type PrepareOptions, type SnapshotInfo,
  type SnapshotKind, type SnapshotUsage,
} from './OverlaySnapshotter.js';
export type { Snapshotter } from './Snapshotter.js';
export { collectLayerEntries, diffUpper, tarDirectory, type TarDirectoryOptions } from './tarDirectory.js';
export { writeLayerTar, type LayerEntry, type LayerEntryType, type WriteLayerTarOptions } from './writeLayerTar.js';
export { pruneSnapshots, type PruneSnapshotsResult } from './pruneSnapshots.js';
export { bindMountDescriptor, isMountPoint, listMountPoints, unmount } from './mounts.js';
export { ownScratchDir, reclaimScratch } from './scratch.js';
export { processStart } from './processStart.js';
export { diskUsage, removeTree } from './diskTree.js';
export { copyXattrs, readXattrs, restoreXattrs, setXattrs, type Xattrs } from './xattrs.js';
