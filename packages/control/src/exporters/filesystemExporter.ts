import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, writeLayerTar, collectLayerEntries, type LayerEntry } from '@buildyard/snapshot';
import type { Exporter } from './Exporter.js';

/**
 * `type=local` (the files, one by one) and `type=tar` (one tar): the target stage's filesystem,
 * one directory per platform when there are several.
 */
export const filesystemExporter: Exporter = {
  delivery: 'client',
  async *export(output, { images, blobs }) {
    const roots: Array<{ root: string; prefix: string }> = [];
    try {
      for (const image of images) {
        const root = await mkdtemp(join(tmpdir(), 'buildyard-export-'));
        roots.push({ root, prefix: images.length > 1 ? image.platform.replace(/\//g, '_') + '/' : '' });
        for (const layer of image.layers) await applyLayer(root, blobs.openRead(layer.digest), { mediaType: layer.mediaType, whiteouts: 'apply' });
      }
      const prefixed: LayerEntry[] = [];
      for (const { root, prefix } of roots) {
        if (prefix) prefixed.push({ path: prefix.slice(0, -1), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 } as LayerEntry);
        for (const e of await collectLayerEntries(root, { overlay: false })) {
          prefixed.push({ ...e, path: prefix + e.path, ...(e.type === 'hardlink' && e.linkname ? { linkname: prefix + e.linkname } : {}) });
        }
      }
      if (output.type === 'tar') {
        yield { path: '', mode: 0o100644, content: writeLayerTar(prefixed, {}) };
        return [];
      }
      for (const e of prefixed) {
        if (e.type === 'dir') yield { path: e.path, mode: 0o040000 | e.mode };
        else if (e.type === 'symlink') yield { path: e.path, mode: 0o120777, linkTarget: e.linkname };
        else if (e.type === 'file' || e.type === 'hardlink') {
          const source = e.type === 'hardlink' ? prefixed.find((x) => x.path === e.linkname) : e;
          yield { path: e.path, mode: 0o100000 | e.mode, content: source?.sourcePath ? createReadStream(source.sourcePath) : Readable.from(Buffer.from(source?.data ?? new Uint8Array())) };
        }
        // Devices and fifos cannot be written by an unprivileged client; buildx skips them too.
      }
      return [];
    } finally {
      for (const { root } of roots) await rm(root, { recursive: true, force: true });
    }
  },
};
