export type { CacheIndex, CacheRecord, NewCacheRecord, LayerRecord, PrunePolicy } from './CacheRecord.js';
export { selectForPrune } from './CacheRecord.js';
export { RedisCacheIndex } from './RedisCacheIndex.js';
export { LocalCacheIndex } from './LocalCacheIndex.js';
export type { BlobStore } from './BlobStore.js';
