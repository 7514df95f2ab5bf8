import type { Readable } from 'node:stream';
import type { FsContentStore, ImageIndex, RegistryClient } from '@buildyard/oci';
import type { EncodedCacheManifest, ExportedCacheRecord } from '../CacheManifest.js';
import type { CacheSpec } from '../CacheSpec.js';

/** Read access to an OCI layout by path inside it (`index.json`, `blobs/sha256/<hex>`). */
export interface LayoutReader {
  /** For messages, e.g. the client's path of the directory. */
  where: string;
  /** Rejects with code ENOENT when the layout has no such file. */
  read(path: string): Promise<Buffer>;
  open(path: string): Readable;
  /** True when the layout holds the blob `digest` (under blobs/sha256/) with that content. */
  hasBlob(digest: string): Promise<boolean>;
}

export interface CacheTransferDeps {
  registry: RegistryClient;
  /** The shared blob store: layers are read from it on export and land in it on import. */
  blobs: FsContentStore;
  /** A local import's layout (the client's directory, synced to the builder). */
  layout?: LayoutReader;
  signal?: AbortSignal;
  /** Runs one write of an export as a named phase ("writing layer sha256:…", BuildKit's status lines); absent: unreported. */
  step?: <T>(name: string, fn: () => Promise<T>) => Promise<T>;
}

export interface CacheWriteResult {
  /** registry: REF@DIGEST; local: the client's dir (tag). */
  location: string;
  digest: string;
  records: number;
  layers: number;
  /** local: the layout to stream to the client: its index and every blob it holds (in the blob store). */
  layout?: { index: ImageIndex; blobs: Array<{ digest: string; size: number }> };
}

export type CacheLayer = NonNullable<ExportedCacheRecord['layer']>;

/** An opened cache to import from. */
export interface CacheSource {
  location: string;
  records: ExportedCacheRecord[];
  /** Records written by another BuildKit implementation: their keys are not Buildyard's (never matched). */
  foreign: number;
  /** Copies a layer the shared store lacks into it. */
  fetchBlob(layer: CacheLayer): Promise<void>;
  /** Whether the source itself holds a layer (its proof that the importer may use it). */
  sourceHas(layer: CacheLayer): Promise<boolean>;
}

/**
 * One place caches live (`--cache-to` / `--cache-from` type), as BuildKit's remote cache
 * exporters and importers: each is a sibling module behind this interface. (type=inline has no
 * backend of its own: its records ride in the image's manifest annotations and are read back
 * through the registry backend.)
 */
export interface CacheBackend<S extends CacheSpec = CacheSpec> {
  /** Writes an encoded cache whose layers are all in the shared blob store. */
  write(spec: S, encoded: EncodedCacheManifest, deps: CacheTransferDeps): Promise<CacheWriteResult>;
  /** Opens a cache for import. */
  open(spec: S, deps: CacheTransferDeps): Promise<CacheSource>;
}

export const countRecords = (config: Buffer) => (JSON.parse(config.toString('utf8')) as { records: unknown[] }).records.length;
