import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { extname, join } from 'node:path';
import { Readable } from 'node:stream';
import { applyLayer, writeLayerTar, collectLayerEntries, type LayerEntry } from '@buildyard/snapshot';
import type { ExportSource, Exporter } from './Exporter.js';
import { attestationFiles, type PlatformAttestation, type Subject } from './attestations.js';
import { ExportBudget, exportLedger } from './exportBudget.js';
import { ownExportDir } from './exportOwners.js';

/** sha256 of a regular file's content, from the bytes or the file the entry points at. */
async function contentDigest(e: LayerEntry): Promise<string> {
  const hash = createHash('sha256');
  if (e.sourcePath) for await (const chunk of createReadStream(e.sourcePath)) hash.update(chunk as Buffer);
  else hash.update(e.data ?? new Uint8Array());
  return hash.digest('hex');
}

/** BuildKit's local/tar attestation files: subjects are the root's regular files, by name; `name` gives each file's. */
async function attestationEntries(entries: LayerEntry[], atts: readonly PlatformAttestation[] | undefined, mtime: number, name: (file: string) => string): Promise<LayerEntry[]> {
  if (!atts?.some((a) => !a.inlineOnly)) return [];
  const subjects: Subject[] = [];
  const byPath = new Map(entries.map((e) => [e.path, e]));
  for (const e of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const content = e.type === 'hardlink' ? byPath.get(e.linkname ?? '') : e;
    if (content && (e.type === 'file' || e.type === 'hardlink')) subjects.push({ name: e.path, digest: { sha256: await contentDigest(content) } });
  }
  return attestationFiles(atts, subjects).map((f) => ({ path: name(f.path), type: 'file', mode: 0o600, uid: 0, gid: 0, mtime, data: f.data, size: f.data.length }));
}

/**
 * The directory exports unpack under: with ExportSource.scratchDir (a frontend's export dir) this
 * process's own directory there (exportOwners.ts), made if missing; else the system's temp dir.
 */
export async function exportScratchDir(source: Pick<ExportSource, 'scratchDir'>): Promise<string> {
  return source.scratchDir ? ownExportDir(source.scratchDir) : tmpdir();
}

/**
 * SOURCE_DATE_EPOCH in seconds, parsed as BuildKit's epoch.parseTime (a base-10 integer);
 * undefined when empty or not one (BuildKit's ParseBuildArgs then passes no epoch on).
 */
export function epochSeconds(value: string | undefined): number | undefined {
  return value && /^[+-]?\d+$/.test(value) ? Number(value) : undefined;
}

/**
 * `type=local` (the files, one by one) and `type=tar` (one tar): the target stage's filesystem,
 * one directory per platform when there are several (`platform-split`, as BuildKit's local
 * exporter: true makes one for a single platform too; false merges the platforms, and a file
 * two platforms both have is an error). `attestation-prefix` is put before attestation names.
 */
export const filesystemExporter: Exporter = {
  delivery: 'client',
  async *export(output, { images, blobs, attestations, sourceDateEpoch, hardlinks, scratchDir }) {
    // As BuildKit's exporter/local/fs.go: the output's source-date-epoch, else the build's.
    const epoch = output.sourceDateEpoch ?? epochSeconds(sourceDateEpoch);
    // Attestation files have no time of their own: BuildKit gives them the export's (whole seconds).
    const now = Math.floor(Date.now() / 1000);
    const roots: Array<{ root: string; prefix: string; platform: string }> = [];
    const several = images.length > 1;
    const split = output.platformSplit ?? several;
    // exporter/local/fs.go: merged platforms' attestation files say their platform (provenance.linux_amd64.json).
    const attestationName = (platform: string) => (file: string) => {
      const name = (output.attestationPrefix ?? '') + file;
      if (!several || split) return name;
      const ext = extname(name);
      return `${name.slice(0, name.length - ext.length)}.${platform.replace(/\//g, '_')}${ext}`;
    };
    let budget: ExportBudget | undefined;
    try {
      const base = await exportScratchDir({ scratchDir });
      // One budget for all its platforms and layers, shared with the exports running beside it
      // (exportBudget.ts): a layer of GiBs of zeros (a few KiB of zstd) fails at its header
      // instead of filling the disk the frontend's state and other tenants share.
      const limits = budget = await ExportBudget.start(exportLedger(scratchDir ?? base), base);
      for (const image of images) {
        const root = await mkdtemp(join(base, 'buildyard-export-'));
        roots.push({ root, prefix: split ? image.platform.replace(/\//g, '_') + '/' : '', platform: image.platform });
        for (const [i, layer] of image.layers.entries()) {
          await applyLayer(root, blobs.openRead(layer.digest), { mediaType: layer.mediaType, whiteouts: 'apply', limits }).catch((err: unknown) => {
            throw limits.error(`layer ${i + 1} of ${image.layers.length} of ${image.platform}`) ?? err;
          });
        }
      }
      const prefixed: LayerEntry[] = [];
      // Without the split: which platform gave each path (a directory once, a file only once).
      const merged = new Map<string, string>();
      for (const { root, prefix, platform } of roots) {
        if (prefix) prefixed.push({ path: prefix.slice(0, -1), type: 'dir', mode: 0o755, uid: 0, gid: 0, mtime: 0 } as LayerEntry);
        const entries = await collectLayerEntries(root, { overlay: false });
        entries.push(...await attestationEntries(entries, attestations?.byPlatform.get(platform), now, attestationName(platform)));
        for (const e of entries) {
          if (!split && several) {
            const first = merged.get(e.path);
            if (first !== undefined && e.type === 'dir') continue;
            if (first !== undefined) throw new Error(`cannot overwrite ${e.path} from ${first} with ${platform} when split option is disabled: name the platforms' files apart (e.g. with TARGETARCH) or drop platform-split=false`);
            merged.set(e.path, platform);
          }
          prefixed.push({ ...e, path: prefix + e.path, ...(e.type === 'hardlink' && e.linkname ? { linkname: prefix + e.linkname } : {}) });
        }
      }
      // With an epoch every entry has its time, platform folders and attestations included (fs.go's
      // filter Map and statement Stat); without one the platform folders have 0, as BuildKit's.
      if (epoch !== undefined) for (const e of prefixed) e.mtime = epoch;
      if (output.type === 'tar') {
        yield { path: '', mode: 0o100644, content: writeLayerTar(prefixed, {}) };
        return [];
      }
      const byPath = new Map(prefixed.map((e) => [e.path, e]));
      for (const e of prefixed) {
        const mtimeNs = BigInt(Math.floor(e.mtime)) * 1_000_000_000n; // layers keep whole seconds
        if (e.type === 'dir') yield { path: e.path, mode: 0o040000 | e.mode, mtimeNs };
        else if (e.type === 'symlink') yield { path: e.path, mode: 0o120777, linkTarget: e.linkname, mtimeNs };
        // A name of a file yielded before it (the walk meets a file's first name first), as
        // BuildKit's local exporter sends a hardlink: fsutil's Stat.linkname, no content.
        else if (e.type === 'hardlink' && hardlinks && byPath.get(e.linkname ?? '')?.type === 'file') yield { path: e.path, mode: 0o100000 | e.mode, mtimeNs, hardlinkTo: e.linkname };
        else if (e.type === 'file' || e.type === 'hardlink') {
          const source = e.type === 'hardlink' ? byPath.get(e.linkname ?? '') : e;
          yield { path: e.path, mode: 0o100000 | e.mode, mtimeNs, ...(source?.sourcePath
            ? { content: createReadStream(source.sourcePath), sourcePath: source.sourcePath }
            : { content: Readable.from(Buffer.from(source?.data ?? new Uint8Array())) }) };
        }
        // Devices and fifos cannot be written by an unprivileged client; buildx skips them too.
      }
      return [];
    } finally {
      // What it unpacked is on the disk until removed, and then (removed or not) out of the ledger:
      // a directory left behind shows in the free space the next export measures.
      try {
        for (const { root } of roots) await rm(root, { recursive: true, force: true });
      } finally {
        budget?.end();
      }
    }
  },
};
