import { FsContentStore, type RegistryClientOptions } from '@buildyard/oci';
import { RegistryBlobStore } from './RegistryBlobStore.js';
import { TieredBlobStore } from './TieredBlobStore.js';
import { LeasedFsContentStore } from './blobWrites.js';

export interface SharedBlobStoreOptions {
  /** config `blobStore.type`: `fs` = one directory every process can reach; `registry` = a registry repository. */
  type: 'fs' | 'registry';
  /** `fs`: the shared directory (`<sharedDir>/blobs`). */
  sharedDir: string;
  /** `registry`: this machine's local tier (e.g. `<stateDir>/blobs`); not shared with other machines. */
  localDir: string;
  /** `registry`: config `blobStore.repository`, e.g. `registry.example.com/buildyard/blobs`. */
  repository?: string;
  /** `registry`: credentials / insecureHosts / timeouts for the store's own RegistryClient (never a store). */
  clientOptions?: Omit<RegistryClientOptions, 'store'>;
}

/**
 * The shared blob store as config describes it. Either way the result is an FsContentStore, so
 * callers typed against FsContentStore need no change; with `registry` it is a TieredBlobStore.
 */
export function openSharedBlobStore(opts: SharedBlobStoreOptions): FsContentStore {
  // Either store leases what a build writes (holdBlobWrites): see blobWrites.ts.
  if (opts.type === 'fs') return new LeasedFsContentStore(opts.sharedDir);
  if (!opts.repository) {
    throw new Error('blobStore.type=registry needs blobStore.repository (BUILDYARD_BLOB_REPOSITORY), e.g. registry.example.com/buildyard/blobs');
  }
  return new TieredBlobStore(new FsContentStore(opts.localDir), new RegistryBlobStore({ repository: opts.repository, clientOptions: opts.clientOptions }));
}
