import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { sha256Digest } from './digest.js';
import { readLayerFiles } from './layerFiles.js';
import { MediaTypes } from './mediaTypes.js';
import type { Descriptor } from './types.js';

type Entry = { name: string; content?: string; type?: 'directory' | 'symlink'; linkname?: string };

async function layerTar(entries: Entry[]): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  pack.on('data', (c: unknown) => chunks.push(c as Buffer));
  const done = new Promise<void>((res) => pack.on('end', () => res()));
  for (const e of entries) {
    if (e.type) pack.entry({ name: e.name, type: e.type, linkname: e.linkname });
    else pack.entry({ name: e.name, type: 'file' }, e.content ?? '');
  }
  pack.finalize();
  await done;
  return Buffer.concat(chunks);
}

/** Layers (bottom first) in memory, gzip or plain; openRead serves them by digest. */
async function image(layers: Array<{ entries: Entry[]; gzip?: boolean }>) {
  const blobs = new Map<string, Buffer>();
  const descriptors: Descriptor[] = [];
  for (const l of layers) {
    const raw = await layerTar(l.entries);
    const bytes = l.gzip === false ? raw : gzipSync(raw);
    const digest = sha256Digest(bytes);
    blobs.set(digest, bytes);
    descriptors.push({ mediaType: l.gzip === false ? MediaTypes.OciLayer : MediaTypes.OciLayerGzip, digest, size: bytes.length });
  }
  return { store: { openRead: (digest: string) => Readable.from([blobs.get(digest)!]) }, layers: descriptors };
}

test('readLayerFiles: the top layer\'s copy wins; whiteouts and opaque directories hide lower files; gzip and plain layers', async () => {
  const { store, layers } = await image([
    { entries: [{ name: 'var/lib/dpkg/status', content: 'old' }, { name: 'etc/os-release', content: 'ID=debian' }, { name: 'lib/apk/db/installed', content: 'apk' }] },
    { entries: [{ name: './var/lib/dpkg/status', content: 'new' }, { name: 'etc/.wh.os-release' }], gzip: false },
    { entries: [{ name: 'lib/apk/db/.wh..wh..opq' }, { name: 'usr/lib/os-release', type: 'symlink', linkname: '/x' }] },
  ]);
  const files = await readLayerFiles(store, layers, ['/var/lib/dpkg/status', 'etc/os-release', 'lib/apk/db/installed', 'usr/lib/os-release', 'missing']);
  assert.deepEqual([...files.entries()].map(([k, v]) => [k, v.toString()]), [['var/lib/dpkg/status', 'new']]);
});

test('readLayerFiles: zstd layers are refused in one line', async () => {
  const layers: Descriptor[] = [{ mediaType: MediaTypes.OciLayerZstd, digest: sha256Digest(Buffer.from('z')), size: 1 }];
  await assert.rejects(readLayerFiles({ openRead: () => Readable.from([Buffer.from('z')]) }, layers, ['a']), /zstd-compressed/);
});
