// The build context store as the blob store's configuration implies: with a shared directory
// (`blobStore.type=fs`) contexts stay under `<sharedDir>/contexts`, grants included, as every
// process on the machine sees that directory; with a remote blob store (a registry) machines
// share nothing, so contents and manifests go through that store (this process keeping its own
// copies under `root`) and grants through Redis.
import { join } from 'node:path';
import type { Cluster, Redis } from 'ioredis';
import { ContextStore, RedisContextGrants } from '@buildyard/context';
import { FsContentStore } from '@buildyard/oci';
import { TieredBlobStore } from './TieredBlobStore.js';

export interface ContextStoreConfig {
  /** The context store's directory (`<sharedDir>/contexts`); this process's own copies when shared. */
  root: string;
  /** The shared blob store as openSharedBlobStore opened it. */
  blobs: FsContentStore;
  redis: Redis | Cluster;
  /** The deployment's Redis key prefix (`redis.keyPrefix`). */
  keyPrefix: string;
  maxContextBytes?: number;
  maxFiles?: number;
}

export function openContextStore(opts: ContextStoreConfig): ContextStore {
  const limits = { maxContextBytes: opts.maxContextBytes, maxFiles: opts.maxFiles };
  if (!(opts.blobs instanceof TieredBlobStore)) {
    // Grants stay files under the shared dir; what the context GC deletes is on record in Redis.
    return new ContextStore({ root: opts.root, ...limits, deletions: new RedisContextGrants(opts.redis, { prefix: opts.keyPrefix }) });
  }
  return new ContextStore({
    root: opts.root, ...limits,
    shared: {
      // Its contents are kept by grants, not by the build leases of blobWrites.ts.
      content: new TieredBlobStore(new FsContentStore(join(opts.root, 'content')), opts.blobs.remote, { leaseInBuilds: false }),
      grants: new RedisContextGrants(opts.redis, { prefix: opts.keyPrefix }),
    },
  });
}
