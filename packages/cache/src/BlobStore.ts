import type { Readable } from 'node:stream';

/**
 * Content-addressed blob storage shared by every worker. `FsContentStore` from @buildyard/oci
 * (a local directory) satisfies it; `RegistryBlobStore` (a registry repository) is the distributed
 * backend, normally used behind a `TieredBlobStore` (local directory in front).
 */
export interface BlobStore {
  has(digest: string): Promise<boolean>;
  size(digest: string): Promise<number>;
  openRead(digest: string): Readable;
  put(data: Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>, expectedDigest?: string, expectedSize?: number): Promise<{ digest: string; size: number }>;
  delete(digest: string): Promise<boolean>;
}
