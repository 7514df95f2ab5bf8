import { createGunzip, createGzip, constants as zlibConstants } from 'node:zlib';
import { PassThrough, type Readable, type Transform } from 'node:stream';
import { CompressStream, DecompressStream } from 'zstd-napi';
import { MediaTypes } from '@buildyard/oci';

export type LayerCompression = 'gzip' | 'zstd' | 'none';

// oci's media types (one definition); these names stay for the snapshot package's callers.
export const MEDIA_TYPE_LAYER_TAR = MediaTypes.OciLayer;
export const MEDIA_TYPE_LAYER_GZIP = MediaTypes.OciLayerGzip;
export const MEDIA_TYPE_LAYER_ZSTD = MediaTypes.OciLayerZstd;

/** The OCI layer media type for a compression. */
export function layerMediaType(compression: LayerCompression): string {
  if (compression === 'gzip') return MEDIA_TYPE_LAYER_GZIP;
  if (compression === 'zstd') return MEDIA_TYPE_LAYER_ZSTD;
  return MEDIA_TYPE_LAYER_TAR;
}

/**
 * Compression named by an OCI or Docker layer media type, or undefined when the type does not
 * say (the caller then sniffs the magic bytes).
 */
export function compressionFromMediaType(mediaType: string | undefined): LayerCompression | undefined {
  if (!mediaType) return undefined;
  if (/[.+]gzip$/.test(mediaType)) return 'gzip';
  if (/[.+]zstd$/.test(mediaType)) return 'zstd';
  if (/(layer\.v1\.tar|rootfs\.diff\.tar|nondistributable\.v1\.tar)$/.test(mediaType)) return 'none';
  return undefined;
}

/** Compression recognised from the first bytes of a blob (gzip 1f8b, zstd frame 28b52ffd). */
export function sniffCompression(head: Uint8Array): LayerCompression {
  if (head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b) return 'gzip';
  if (head.length >= 4 && head[0] === 0x28 && head[1] === 0xb5 && head[2] === 0x2f && head[3] === 0xfd) return 'zstd';
  return 'none';
}

export function createDecompressor(compression: LayerCompression): Transform {
  if (compression === 'gzip') return createGunzip();
  if (compression === 'zstd') return new DecompressStream();
  return new PassThrough();
}

/** Default levels are fixed so the same tree always compresses to the same digest. */
export const DEFAULT_GZIP_LEVEL = 6;
export const DEFAULT_ZSTD_LEVEL = 3;

export function createCompressor(compression: LayerCompression, level?: number): Transform {
  if (compression === 'gzip') {
    // node:zlib writes a fixed gzip header (mtime 0, OS unix), so output depends only on input and level.
    return createGzip({ level: level ?? DEFAULT_GZIP_LEVEL, memLevel: 8, strategy: zlibConstants.Z_DEFAULT_STRATEGY });
  }
  if (compression === 'zstd') {
    // Single-threaded with a content checksum: multi-threaded zstd output depends on scheduling.
    return new CompressStream({ compressionLevel: level ?? DEFAULT_ZSTD_LEVEL, checksumFlag: true, nbWorkers: 0 });
  }
  return new PassThrough();
}

/** Reads up to `n` leading bytes of a stream without consuming them. */
export async function peekBytes(stream: Readable, n: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  while (total < n) {
    const chunk: Buffer | null = stream.read();
    if (chunk === null) {
      if (stream.readableEnded) break;
      const more = await new Promise<boolean>((resolve, reject) => {
        const onReadable = (): void => { cleanup(); resolve(true); };
        const onEnd = (): void => { cleanup(); resolve(false); };
        const onError = (err: Error): void => { cleanup(); reject(err); };
        const cleanup = (): void => {
          stream.off('readable', onReadable); stream.off('end', onEnd); stream.off('error', onError);
        };
        stream.on('readable', onReadable); stream.on('end', onEnd); stream.on('error', onError);
      });
      if (!more) break;
      continue;
    }
    const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    chunks.push(buf);
    total += buf.length;
  }
  const head = Buffer.concat(chunks);
  if (head.length > 0) stream.unshift(head);
  return head.subarray(0, n);
}
