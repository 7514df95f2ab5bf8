// `buildyard imagetools inspect|create` over the OCI registry client.
import {
  MediaTypes, formatPlatform, sha256Digest, formatReference, isImageIndex, parseReference,
  type Descriptor, type ImageConfig, type ImageIndex, type ImageManifest, type ImageReference, type RegistryClient,
} from '@buildyard/oci';
import { ClientError, usageError } from './ClientError.js';

function ref(input: string): ImageReference {
  try {
    return parseReference(input);
  } catch (err) {
    throw usageError((err as Error).message);
  }
}

export interface InspectResult {
  /** The manifest bytes exactly as the registry serves them (for --raw). */
  raw: Buffer;
  /** buildx's human view. */
  text: string;
}

/** Fetches `reference` and describes it as `buildx imagetools inspect` does. */
export async function inspectImage(client: RegistryClient, reference: string): Promise<InspectResult> {
  const r = ref(reference);
  const top = await client.getManifest(r);
  const name = formatReference(r);
  const lines = [`Name:      ${name}`, `MediaType: ${top.mediaType}`, `Digest:    ${top.digest}`];
  if (isImageIndex(top.manifest)) {
    const index = top.manifest as ImageIndex;
    lines.push('', 'Manifests:');
    const base = formatReference({ registry: r.registry, repository: r.repository });
    index.manifests.forEach((m, i) => {
      if (i > 0) lines.push('');
      lines.push(`  Name:        ${base}@${m.digest}`, `  MediaType:   ${m.mediaType}`);
      if (m.platform) lines.push(`  Platform:    ${formatPlatform(m.platform)}`);
      for (const [k, v] of Object.entries(m.annotations ?? {})) lines.push(`  Annotation:  ${k}=${v}`);
    });
  } else {
    const manifest = top.manifest as ImageManifest;
    if (manifest.artifactType) {
      // An artifact (an attestation manifest): its config is empty, its subject the image it is about.
      lines.push(`ArtifactType: ${manifest.artifactType}`);
      if (manifest.subject) lines.push(`Subject:   ${manifest.subject.digest}`);
      lines.push(`Layers:    ${manifest.layers.length}`);
    } else if (manifest.config?.digest) {
      const config = JSON.parse((await client.fetchBlobBytes(r, manifest.config.digest)).toString('utf8')) as ImageConfig;
      lines.push(`Platform:  ${formatPlatform({ os: config.os, architecture: config.architecture, variant: config.variant })}`);
      lines.push(`Layers:    ${manifest.layers.length}`);
    }
  }
  return { raw: top.bytes, text: lines.join('\n') };
}

export interface CreateIndexOptions {
  tags: readonly string[];
  sources: readonly string[];
  annotations?: Record<string, string>;
  /** Build the index but push nothing. */
  dryRun?: boolean;
  onProgress?: (line: string) => void;
}

export interface CreateIndexResult {
  digest: string;
  index: ImageIndex;
  bytes: Buffer;
  pushed: string[];
}

/**
 * Merges the platform images and indexes named by `sources` into one OCI index and pushes it
 * under every tag: the blobs and manifests are copied into the target repository first (a
 * cross-repository mount on the same registry, otherwise a streamed copy).
 */
export async function createIndex(client: RegistryClient, o: CreateIndexOptions): Promise<CreateIndexResult> {
  if (o.tags.length === 0) throw usageError('imagetools create: no target; add -t REF');
  if (o.sources.length === 0) throw usageError('imagetools create: no source images; name at least one SRC');
  const targets = o.tags.map(ref);
  const descriptors: Descriptor[] = [];
  const origin = new Map<string, ImageReference>();
  for (const s of o.sources) {
    const sr = ref(s);
    const top = await client.getManifest(sr);
    const children: Descriptor[] = [];
    if (isImageIndex(top.manifest)) children.push(...(top.manifest as ImageIndex).manifests);
    else {
      const m = top.manifest as ImageManifest;
      if (!m.config?.digest) throw new ClientError(`imagetools create: ${s} is not a container image (no config); name an image or an index`);
      const cfg = JSON.parse((await client.fetchBlobBytes(sr, m.config.digest)).toString('utf8')) as ImageConfig;
      children.push({
        mediaType: top.mediaType, digest: top.digest, size: top.size,
        platform: { os: cfg.os, architecture: cfg.architecture, ...(cfg.variant ? { variant: cfg.variant } : {}) },
      });
    }
    for (const d of children) {
      if (origin.has(d.digest)) continue;
      origin.set(d.digest, sr);
      descriptors.push({ mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}), ...(d.annotations ? { annotations: d.annotations } : {}) });
    }
  }
  const index: ImageIndex = {
    schemaVersion: 2,
    mediaType: MediaTypes.OciIndex,
    manifests: descriptors,
    ...(o.annotations && Object.keys(o.annotations).length ? { annotations: o.annotations } : {}),
  } as ImageIndex;
  const bytes = Buffer.from(JSON.stringify(index));
  const digest = sha256Digest(bytes);
  if (o.dryRun) return { digest, index, bytes, pushed: [] };

  const pushed: string[] = [];
  for (const t of targets) {
    for (const d of descriptors) await copyManifest(client, origin.get(d.digest)!, t, d, o.onProgress);
    await client.putManifest(t, bytes, MediaTypes.OciIndex);
    const name = `${formatReference({ registry: t.registry, repository: t.repository, tag: t.tag })}@${digest}`;
    pushed.push(name);
    o.onProgress?.(`pushed ${name}`);
  }
  return { digest, index, bytes, pushed };
}

async function copyManifest(client: RegistryClient, from: ImageReference, to: ImageReference, d: Descriptor, onProgress?: (line: string) => void): Promise<void> {
  const src = { registry: from.registry, repository: from.repository };
  const dst = { registry: to.registry, repository: to.repository };
  if (src.registry === dst.registry && src.repository === dst.repository) return;
  const fetched = await client.getManifest({ ...src, digest: d.digest as ImageReference['digest'] });
  if (isImageIndex(fetched.manifest)) throw new ClientError(`imagetools create: ${formatReference(from)} nests an index inside an index, which is not supported`);
  const m = fetched.manifest as ImageManifest;
  const blobs = [m.config, ...m.layers].filter((b): b is Descriptor => !!b?.digest);
  const sameRegistry = src.registry === dst.registry;
  for (const b of blobs) {
    const res = await client.pushBlob(dst, b, () => client.fetchBlob(src, b.digest), sameRegistry ? { mountFrom: src.repository } : {});
    onProgress?.(`${res.result} ${b.digest} -> ${dst.registry}/${dst.repository}`);
  }
  await client.putManifest({ ...dst, digest: d.digest as ImageReference['digest'] }, fetched.bytes, fetched.mediaType);
}
