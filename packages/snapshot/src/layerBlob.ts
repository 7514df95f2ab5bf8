import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createCompressor, layerMediaType, type LayerCompression } from './compression.js';

/** A compressed layer written to disk, described the way a manifest and image config need it. */
export interface LayerBlob {
  /** sha256 of the uncompressed tar (goes into the image config's rootfs.diff_ids). */
  diffID: string;
  /** sha256 of the compressed blob (the manifest's layer digest). */
  digest: string;
  /** Compressed size in bytes. */
  size: number;
  uncompressedSize: number;
  mediaType: string;
  compression: LayerCompression;
  /** Where the blob was written. */
  blobPath: string;
}

export interface LayerBlobOptions {
  compression: LayerCompression;
  /** Compression level; defaults are fixed (gzip 6, zstd 3) so digests are stable. */
  level?: number;
  /** File to write the blob to; default: a new file in the OS temp dir. Written atomically. */
  blobPath?: string;
  signal?: AbortSignal;
}

/** Passes bytes through while hashing and counting them: one pass, no re-read. */
export class HashingStream extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    done(null, chunk);
  }
  digest(): string {
    return `sha256:${this.hash.digest('hex')}`;
  }
}

/** Compresses a tar stream into a blob file, computing diffID and digest in the same pass. */
export async function writeLayerBlob(tar: Readable, options: LayerBlobOptions): Promise<LayerBlob> {
  const blobPath = options.blobPath ?? join(tmpdir(), `buildyard-layer-${randomBytes(8).toString('hex')}`);
  // Written under a temporary name and renamed, so a half-written blob is never visible.
  const partial = join(dirname(blobPath), `.partial-${randomBytes(6).toString('hex')}`);
  const uncompressed = new HashingStream();
  const compressed = new HashingStream();
  try {
    await pipeline(tar, uncompressed, createCompressor(options.compression, options.level), compressed,
      createWriteStream(partial), ...(options.signal ? [{ signal: options.signal }] : []));
    await rename(partial, blobPath);
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
  return {
    diffID: uncompressed.digest(),
    digest: compressed.digest(),
    size: compressed.bytes,
    uncompressedSize: uncompressed.bytes,
    mediaType: layerMediaType(options.compression),
    compression: options.compression,
    blobPath,
  };
}
