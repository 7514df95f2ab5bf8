// Public API of @buildyard/graph: stage-graph types, canonical digests, cache keys, platforms.
export type * from './types.js';
export { canonicalJson, canonicalDigest, sha256Digest } from './canonicalDigest.js';
export { imageStateKey, scratchStateKey, vertexCacheKey } from './cacheKey.js';
export { normalizePlatform, formatPlatform, parsePlatform, normalizeArch, normalizeOS, isKnownOS, hostArch, InvalidPlatformError, type Platform } from './platform.js';
export { targetStage } from './targetStage.js';
