// An image whose one layer holds exactly the tar entries a test names, names unchecked (absolute,
// "..", links anywhere): what a registry may serve, which no builder of ours would write.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';

export interface CraftedEntry {
  name: string;
  type?: 'file' | 'directory' | 'symlink' | 'link';
  data?: string;
  linkname?: string;
  /** Permission bits (default 0755 for a directory, 0644 for the rest). */
  mode?: number;
  /** Extended attributes, as SCHILY.xattr.* PAX records (text; keep binary values to bytes below 0x80). */
  xattrs?: Record<string, string>;
}

const manifestType = 'application/vnd.oci.image.manifest.v1+json';
const sha256 = (bytes: Buffer) => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;

/**
 * Pushes a linux/amd64 image to `ref` (plain HTTP), via an OCI layout and skopeo: one gzip layer
 * holding `entries`, or one layer per list given.
 */
export async function pushCraftedImage(ref: string, entries: CraftedEntry[] | CraftedEntry[][]): Promise<void> {
  const layers: CraftedEntry[][] = entries.length > 0 && Array.isArray(entries[0]) ? entries as CraftedEntry[][] : [entries as CraftedEntry[]];
  const raws: Buffer[] = [];
  for (const layerEntries of layers) {
    const tar = pack();
    for (const e of layerEntries) {
      const pax = e.xattrs && Object.fromEntries(Object.entries(e.xattrs).map(([key, value]) => [`SCHILY.xattr.${key}`, value]));
      tar.entry({ name: e.name, type: e.type ?? 'file', linkname: e.linkname, mode: e.mode ?? (e.type === 'directory' ? 0o755 : 0o644), mtime: new Date(1_000_000_000_000), pax }, e.data ?? '');
    }
    tar.finalize();
    const chunks: Buffer[] = [];
    for await (const chunk of tar) chunks.push(chunk as Buffer);
    raws.push(Buffer.concat(chunks));
  }
  const blobs = raws.map((raw) => gzipSync(raw));
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: raws.map(sha256) }, history: raws.map(() => ({ created: '2001-09-09T01:46:40Z', created_by: 'crafted' })) }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2, mediaType: manifestType,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: blobs.map((layer) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: sha256(layer), size: layer.length })),
  }));
  const layout = mkdtempSync(join(tmpdir(), 'buildyard-crafted-'));
  try {
    mkdirSync(join(layout, 'blobs/sha256'), { recursive: true });
    for (const blob of [...blobs, config, manifest]) writeFileSync(join(layout, 'blobs/sha256', sha256(blob).slice(7)), blob);
    writeFileSync(join(layout, 'oci-layout'), '{"imageLayoutVersion":"1.0.0"}');
    writeFileSync(join(layout, 'index.json'), JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: manifestType, digest: sha256(manifest), size: manifest.length, annotations: { 'org.opencontainers.image.ref.name': 'latest' } }] }));
    execFileSync('skopeo', ['copy', '--quiet', '--dest-tls-verify=false', `oci:${layout}:latest`, `docker://${ref}`], { stdio: ['ignore', 'ignore', 'pipe'] });
  } finally {
    rmSync(layout, { recursive: true, force: true });
  }
}
