// Public API of @buildyard/cache: the cache index (Redis/local) and its records, blob stores
// (fs, registry, tiered), cache backends (backends/: registry, local) for import/export, leases
// and garbage collection.
export type { CacheIndex, CacheRecord, NewCacheRecord, LayerRecord, PrunePolicy } from './CacheRecord.js';
export { selectForPrune } from './CacheRecord.js';
export { RedisCacheIndex } from './RedisCacheIndex.js';
export { LocalCacheIndex } from './LocalCacheIndex.js';
export type { BlobStore } from './BlobStore.js';
export { parseCacheSpecs, type CacheSpec, type CacheSpecInput } from './CacheSpec.js';
export {
  encodeCacheManifest, decodeCacheConfig, cacheConfigOf, inlineCacheAnnotation,
  CACHE_CONFIG_MEDIA_TYPE, LEGACY_CACHE_CONFIG_MEDIA_TYPE, INLINE_CACHE_ANNOTATION, RECORD_EXTENSION,
  type ExportedCacheRecord, type CacheConfig, type CacheDocument, type DecodedCache, type EncodedCacheManifest,
} from './CacheManifest.js';
export {
  writeCache, readCache, cacheBackendFor,
  type CacheBackend, type CacheSource, type CacheTransferDeps, type CacheWriteResult, type CacheReadResult, type LayoutReader,
} from './transferCache.js';
export { BlobLeases } from './BlobLeases.js';
export { holdBlobWrites, leaseBlobWrite, blobWritesHeld, LeasedFsContentStore, type BlobWriteHold } from './blobWrites.js';
export {
  pruneCache, collectBlobGarbage, DEFAULT_BLOB_GRACE_MS,
  type LeaseView, type PruneCacheOptions, type PruneCacheResult, type BlobGcPolicy, type GcBlobStore, type CollectBlobGarbageOptions, type BlobGcResult,
} from './collectGarbage.js';
export { RegistryBlobStore, type RegistryBlobStoreOptions } from './RegistryBlobStore.js';
export { TieredBlobStore, type TieredBlobStoreOptions, type TieredBlobStats } from './TieredBlobStore.js';
export { openSharedBlobStore, type SharedBlobStoreOptions } from './openSharedBlobStore.js';
export { openContextStore, type ContextStoreConfig } from './openContextStore.js';
export { askWorkersDisk, pruneWorkers, serveWorkerDisk, type WorkerPruneScope, type WorkerDiskRequest, type WorkerDiskReport, type WorkerDiskPart } from './workerDisk.js';
export {
  collectContextGarbage, holdContexts, readContextGrantAges, ContextBlobGuard, ContextWrites, DEFAULT_CONTEXT_MAX_AGE_MS,
  type ContextGcOptions, type ContextGcResult, type ContextGrantAges,
} from './contextGarbage.js';
