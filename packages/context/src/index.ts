// Public API of @buildyard/context: the client walk and sync, and the server store.
export { type ContextEntry, S_IFMT, S_IFREG, S_IFDIR, S_IFLNK, isRegular, isDirectory, isSymlink, comparePaths, sortEntries, encodeManifest, manifestIndex } from './ContextEntry.js';
export { ContextError, type ContextErrorCode } from './ContextError.js';
export { entryXattrs, keepsContextXattr, sameXattrs, type EntryXattrs } from './contextXattrs.js';
export { walkContext, listContext, hashFile, type WalkOptions, type ContextListing } from './walkContext.js';
export { HashCache, defaultContextCacheDir } from './HashCache.js';
export { syncContext, CHUNK_SIZE, type SyncOptions, type SyncProgress, type SyncResult } from './syncContext.js';
export { ContextStore, BlobStaging, readManifest, contextBytes, type ContextStoreOptions, type SharedContent } from './ContextStore.js';
export { RedisContextGrants, contextGrantKeys, type ContextGrants, type RedisContextGrantsOptions } from './ContextGrants.js';
export { SESSION_IDLE_TIMEOUT_MS, clientIdleMessage, withinIdle } from './clientIdle.js';
export { handleSync, type HandleSyncOptions, type HandleSyncResult } from './handleSync.js';
export { materializeContext, type MaterializeOptions, type MaterializeResult } from './materializeContext.js';
export { validateEntry, validateEntrySet, describeFileType } from './validateEntries.js';
export { readDockerignore } from './readDockerignore.js';
export { storeDirectory, type StoreDirectoryOptions } from './storeDirectory.js';
