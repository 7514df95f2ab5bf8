// Small synthetic images for tests: one gzip layer holding one file, a config, a manifest.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import tar from 'tar-stream';
import { sha256Digest, type Digest } from './digest.js';
import { MediaTypes } from './mediaTypes.js';
import type { Descriptor, ImageConfig, ImageManifest } from './types.js';

export const execFileP = promisify(execFile);

export async function tarOf(files: Record<string, string | Buffer>): Promise<Buffer> {
  const pack = tar.pack();
  for (const [name, data] of Object.entries(files)) {
    pack.entry({ name, mode: 0o644, mtime: new Date(0) }, typeof data === 'string' ? Buffer.from(data) : data);
  }
  pack.finalize();
  const parts: Buffer[] = [];
  for await (const c of pack) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

export interface TestImage {
  layer: Buffer;
  layerDesc: Descriptor;
  diffId: Digest;
  config: Buffer;
  configDesc: Descriptor;
  manifest: Buffer;
  manifestDesc: Descriptor;
}

export async function makeImage(arch: 'amd64' | 'arm64', files: Record<string, string | Buffer>): Promise<TestImage> {
  const raw = await tarOf(files);
  const layer = gzipSync(raw);
  const diffId = sha256Digest(raw);
  const layerDesc: Descriptor = { mediaType: MediaTypes.OciLayerGzip, digest: sha256Digest(layer), size: layer.length };
  const cfg: ImageConfig = {
    architecture: arch,
    os: 'linux',
    ...(arch === 'arm64' ? { variant: 'v8' } : {}),
    config: { Env: ['PATH=/bin'], Cmd: ['/bin/sh'] },
    rootfs: { type: 'layers', diff_ids: [diffId] },
    history: [{ created_by: 'test', created: '2024-01-01T00:00:00Z' }],
  };
  const config = Buffer.from(JSON.stringify(cfg));
  const configDesc: Descriptor = { mediaType: MediaTypes.OciConfig, digest: sha256Digest(config), size: config.length };
  const m: ImageManifest = { schemaVersion: 2, mediaType: MediaTypes.OciManifest, config: configDesc, layers: [layerDesc] };
  const manifest = Buffer.from(JSON.stringify(m));
  const manifestDesc: Descriptor = {
    mediaType: MediaTypes.OciManifest, digest: sha256Digest(manifest), size: manifest.length,
    platform: { os: 'linux', architecture: arch, ...(arch === 'arm64' ? { variant: 'v8' } : {}) },
  };
  return { layer, layerDesc, diffId, config, configDesc, manifest, manifestDesc };
}
