// A few files of an image's filesystem, read straight from its layer blobs (top layer first,
// whiteouts and opaque directories honoured), without unpacking the image: what an SBOM needs
// from the package databases.
import { posix } from 'node:path';
import type { Readable } from 'node:stream';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import type { Descriptor } from './types.js';

export interface LayerReader {
  openRead(digest: string): Readable;
}

/** Paths are image paths without the leading slash (`var/lib/dpkg/status`). */
const clean = (p: string) => posix.normalize(p.replace(/^\.?\/+/, '')).replace(/\/$/, '');

/**
 * The content of each wanted path in the image made of `layers` (bottom first), or no entry when
 * the path does not exist (never written, deleted by a whiteout, or under an opaque directory).
 * Symlinks are not followed: package databases are regular files.
 */
export async function readLayerFiles(store: LayerReader, layers: readonly Descriptor[], paths: readonly string[]): Promise<Map<string, Buffer>> {
  const pending = new Set(paths.map(clean));
  const found = new Map<string, Buffer>();
  for (let i = layers.length - 1; i >= 0 && pending.size > 0; i--) {
    const hidden = await scanLayer(store, layers[i], pending, found);
    for (const p of hidden) pending.delete(p);
  }
  return found;
}

/** Reads one layer; wanted files found move from `pending` to `found`; returns the paths this layer hides below it. */
async function scanLayer(store: LayerReader, layer: Descriptor, pending: Set<string>, found: Map<string, Buffer>): Promise<string[]> {
  const mt = layer.mediaType;
  if (mt.endsWith('+zstd') || mt.endsWith('.zstd')) throw new Error(`layer ${layer.digest} is zstd-compressed (${mt}); reading package databases needs gzip or uncompressed layers`);
  const gzip = mt.endsWith('gzip') || mt.endsWith('.gzip');
  const extract = tar.extract();
  const hidden: string[] = [];
  const source = store.openRead(layer.digest);
  const done = new Promise<void>((resolve, reject) => {
    extract.on('entry', (header, stream, next) => {
      const path = clean(header.name);
      const base = posix.basename(path);
      const dir = posix.dirname(path);
      if (base === '.wh..wh..opq') {
        for (const p of pending) if (p.startsWith(dir === '.' ? '' : `${dir}/`)) hidden.push(p);
      } else if (base.startsWith('.wh.')) {
        const gone = posix.join(dir, base.slice(4));
        for (const p of pending) if (p === gone || p.startsWith(`${gone}/`)) hidden.push(p);
      } else if (pending.has(path) && !found.has(path) && (header.type === 'file' || header.type === 'contiguous-file')) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: unknown) => chunks.push(c as Buffer));
        stream.on('end', () => { found.set(path, Buffer.concat(chunks)); hidden.push(path); next(); });
        stream.on('error', reject);
        return;
      } else if (pending.has(path)) {
        hidden.push(path); // a directory, link or device at that path shadows anything below
      }
      stream.on('end', () => next());
      stream.resume();
    });
    extract.on('finish', () => resolve());
    extract.on('error', reject);
    source.on('error', reject);
  });
  if (gzip) {
    const gunzip = createGunzip();
    gunzip.on('error', (err) => extract.destroy(err));
    source.pipe(gunzip).pipe(extract);
  } else source.pipe(extract);
  await done;
  return hidden;
}
