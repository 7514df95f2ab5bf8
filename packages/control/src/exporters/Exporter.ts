import type { Readable } from 'node:stream';
import type { FsContentStore, RegistryClient } from '@buildyard/oci';
import type { AssembledImage, JsonBlob } from '@buildyard/solver';
import type { BuildAttestations } from './buildAttestations.js';

export type OutputType = 'image' | 'registry' | 'oci' | 'docker' | 'local' | 'tar';

/** One `--output` of a build, validated (see parseOutputs). */
export interface ParsedOutput {
  index: number;
  type: OutputType;
  /** Image names (tags) for image/registry/docker outputs. */
  names: string[];
  push: boolean;
  /** `push-by-digest=true`: pushed under the image's digest only, no tag (names must be tagless). */
  pushByDigest?: boolean;
  /** `rewrite-timestamp=true`: new layers' mtimes are clamped to SOURCE_DATE_EPOCH (image outputs). */
  rewriteTimestamp: boolean;
  /** `source-date-epoch=N` (BuildKit's exporter attr): overrides the build's SOURCE_DATE_EPOCH (local/tar read it). */
  sourceDateEpoch?: number;
  /** `oci-mediatypes=false`: Docker's media types (BuildKit's default, as current BuildKit's, is OCI's). */
  ociMediaTypes?: boolean;
  /** `oci-artifact=false`: attestation manifests in the older image form (default: OCI artifacts). */
  ociArtifact?: boolean;
  /** type=local/tar `platform-split`: a directory per platform (default: when there are several). */
  platformSplit?: boolean;
  /** type=local/tar `attestation-prefix`: put before attestation files' names. */
  attestationPrefix?: string;
  /** type=oci/docker `tar=false`: an OCI layout directory the client adds to (default: an archive). */
  layoutDir?: boolean;
  /** Image outputs' `compression=`, `compression-level=`, `force-compression=`, when any is given. */
  compression?: LayerCompressionOption;
}

/** How an image output's layers are compressed: the build's own layers, every layer with `force`. */
export interface LayerCompressionOption {
  type: 'gzip' | 'zstd' | 'uncompressed';
  level?: number;
  force: boolean;
}

/** One file (or chunk stream) an exporter hands to the client. */
export interface ExportFile {
  path: string;
  mode: number;
  linkTarget?: string;
  content?: Readable;
  /** The file on this machine `content` reads, there until the export ends: a receiver may link it rather than copy it. */
  sourcePath?: string;
  /** Modification time in nanoseconds since the epoch (type=local entries), for the client to set. */
  mtimeNs?: bigint;
  /** type=local, when the source asks for `hardlinks`: another name of the regular file yielded earlier at this path (no content). */
  hardlinkTo?: string;
}

/** What every exporter exports: the assembled images, their index and the blobs they live in. */
export interface ExportSource {
  images: AssembledImage[];
  index?: JsonBlob<unknown>;
  blobs: FsContentStore;
  /** The build's registry client (with its logins), for exporters that push. */
  registry?: RegistryClient;
  /** References of the base images, so a push can mount their layers instead of uploading. */
  baseImages?: string[];
  /** Reports a named phase of the export (BuildKit's "pushing layers", ...) while it runs. */
  step?: ExportStep;
  /** Provenance/SBOM of the images: their attestation manifests are in `index` and `blobs`. */
  attestations?: BuildAttestations;
  /** The build's SOURCE_DATE_EPOCH build arg as given: local/tar outputs give every entry that time, as BuildKit's. */
  sourceDateEpoch?: string;
  /** type=local: the receiver links hardlinks (ExportFile.hardlinkTo); without, each name comes with its content. */
  hardlinks?: boolean;
  /**
   * Where type=local/tar unpack the image (a frontend's export dir: each process in a directory of
   * its own there, see exportOwners.ts), within a budget the exports running there share: 90% of
   * its disk's free space, and limits.maxExportBytes each (exportBudget.ts). Default: the system's temp dir.
   */
  scratchDir?: string;
}

/** Runs one named phase of an export; a front door that shows phases (the BuildKit endpoint) times it. */
export type ExportStep = <T>(name: string, fn: () => Promise<T>) => Promise<T>;

/** Runs the phase without reporting it. */
export const unreportedStep: ExportStep = (_name, fn) => fn();

/**
 * One kind of output, as BuildKit's exporters: `image`/`registry` push from the build,
 * `oci`/`docker` stream an archive and `local`/`tar` a filesystem back to the client.
 * `export` yields the files the client writes and returns the references it pushed.
 */
export interface Exporter {
  /** 'build': runs inside the build, before its result; 'client': streamed to the client after it. */
  readonly delivery: 'build' | 'client';
  export(output: ParsedOutput, source: ExportSource): AsyncGenerator<ExportFile, string[]>;
}
