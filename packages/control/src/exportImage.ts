import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createReadStream } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { parseReference, writeDockerArchive, writeOciLayout, type FsContentStore, type RegistryClient } from '@buildyard/oci';
import { applyLayer, writeLayerTar, collectLayerEntries, type LayerEntry } from '@buildyard/snapshot';
import type { AssembledImage, JsonBlob } from '@buildyard/solver';
import type { KeyValueSpec } from '@buildyard/proto';

export type OutputType = 'image' | 'registry' | 'oci' | 'docker' | 'local' | 'tar';

export interface ParsedOutput {
  index: number;
  type: OutputType;
  /** Image names (tags) for image/registry/docker outputs. */
  names: string[];
  push: boolean;
}

const KNOWN: OutputType[] = ['image', 'registry', 'oci', 'docker', 'local', 'tar'];

/** Validates buildx-style outputs; `type=registry` is `type=image,push=true`. */
export function parseOutputs(specs: KeyValueSpec[]): ParsedOutput[] {
  return specs.map((spec, index) => {
    const type = spec.type as OutputType;
    if (!KNOWN.includes(type)) throw new Error(`unknown output type "${spec.type}": use one of ${KNOWN.join(', ')}`);
    const names = (spec.attrs.name ?? '').split(',').map((n) => n.trim()).filter(Boolean);
    for (const name of names) parseReference(name);
    const push = type === 'registry' || (type === 'image' && ['true', '1'].includes(spec.attrs.push ?? ''));
    if (push && names.length === 0) throw new Error(`output ${index + 1} (type=${type}) pushes but names no image: add name=REGISTRY/REPO:TAG or -t`);
    return { index, type, names, push };
  });
}

const asDigested = (d: { digest: string; size: number }) => ({ digest: d.digest as `sha256:${string}`, size: d.size });

/**
 * Pushes every layer and document, then each tag; returns name@digest per tag. Layers that
 * came from a base image in the same registry are mounted from its repository instead of
 * uploaded (the registry answers with an upload when it cannot mount).
 */
export async function pushImage(registry: RegistryClient, images: AssembledImage[], index: JsonBlob<unknown> | undefined, names: string[], baseImages: string[] = []): Promise<string[]> {
  const pushed: string[] = [];
  for (const name of names) {
    const ref = parseReference(name);
    const repo = { registry: ref.registry, repository: ref.repository };
    const mountFrom = baseImages.map((b) => parseReference(b)).find((b) => b.registry === ref.registry && b.repository !== ref.repository)?.repository;
    for (const image of images) {
      await Promise.all(image.layers.map((l) => registry.pushBlob(repo, asDigested(l), undefined, mountFrom ? { mountFrom } : {})));
      await registry.pushBlob(repo, asDigested(image.config.descriptor), image.config.bytes);
      if (index) await registry.putManifest({ ...repo, digest: image.manifest.descriptor.digest as `sha256:${string}` }, image.manifest.bytes, image.manifest.descriptor.mediaType);
    }
    const top = index ?? images[0].manifest;
    const digest = await registry.putManifest({ ...repo, tag: ref.tag ?? 'latest' }, top.bytes, top.descriptor.mediaType);
    pushed.push(`${ref.registry}/${ref.repository}@${digest}`);
  }
  return pushed;
}

/** One file (or chunk stream) of a local-type output. */
export interface ExportFile {
  path: string;
  mode: number;
  linkTarget?: string;
  content?: Readable;
}

/** The files a local-type output consists of, produced from the blob store. */
export async function* localOutputFiles(output: ParsedOutput, images: AssembledImage[], index: JsonBlob<unknown> | undefined, blobs: FsContentStore): AsyncGenerator<ExportFile> {
  if (output.type === 'docker' && images.length > 1) {
    throw new Error('type=docker holds one platform (docker load cannot import an index): use type=oci, or build one --platform');
  }
  if (output.type === 'oci' || output.type === 'docker') {
    const stream = new PassThrough();
    const top = index ? index.descriptor : images[0].manifest.descriptor;
    const writing = output.type === 'oci'
      ? writeOciLayout(stream, { index: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: top.mediaType, digest: top.digest as `sha256:${string}`, size: top.size, annotations: output.names[0] ? { 'org.opencontainers.image.ref.name': parseReference(output.names[0]).tag ?? 'latest', 'io.containerd.image.name': output.names[0] } : undefined }] }, store: blobs })
      : writeDockerArchive(stream, images.map((i) => ({ repoTags: output.names, config: i.config.descriptor as never, layers: i.layers as never })), blobs);
    writing.catch((err) => stream.destroy(err));
    yield { path: '', mode: 0o644, content: stream };
    return;
  }
  // local and tar: the target stage's files, one directory per platform when there are several.
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
      return;
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
  } finally {
    for (const { root } of roots) await rm(root, { recursive: true, force: true });
  }
}
