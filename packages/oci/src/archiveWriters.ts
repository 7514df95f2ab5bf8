// Writers for image archives: OCI image layouts (directory or tar) and `docker load` tarballs.
// Archives are written with tar-stream; entries are in a fixed order with fixed mtimes so the
// same images give the same bytes.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import tar from 'tar-stream';
import { Digester, assertDigest, digestHex, type Digest } from './digest.js';
import { DigestMismatchError } from './FsContentStore.js';
import { MediaTypes, isIndexMediaType } from './mediaTypes.js';
import { formatReference, parseReference } from './reference.js';
import { Annotations, isImageIndex, type AnyManifest, type Descriptor, type ImageConfig, type ImageIndex } from './types.js';

/** What the writers need from a blob store (FsContentStore fits). */
export interface BlobReader {
  has(digest: string): Promise<boolean>;
  size(digest: string): Promise<number>;
  readBytes(digest: string): Promise<Buffer>;
  openRead(digest: string): Readable;
  /** When available, directory layouts copy the file instead of streaming it. */
  path?(digest: string): string;
}

export interface OciLayoutOptions {
  /** index.json's content: its manifests are the layout's entry points (tag them with ref.name). */
  index: ImageIndex;
  /** Where every referenced blob (manifests, configs, layers) is read from. */
  store: BlobReader;
}

const FIXED_MTIME = new Date(0);

/** A descriptor for index.json tagged with `org.opencontainers.image.ref.name`. */
export function ociLayoutEntry(descriptor: Descriptor, refName?: string, imageName?: string): Descriptor {
  const annotations = { ...descriptor.annotations };
  if (refName) annotations[Annotations.RefName] = refName;
  if (imageName) annotations[Annotations.ContainerdImageName] = imageName;
  const { annotations: _drop, ...rest } = descriptor;
  return Object.keys(annotations).length ? { ...rest, annotations } : rest;
}

/**
 * Every blob reachable from `roots`, parents before children, each once: indexes, manifests,
 * configs, layers. Manifests and indexes are read from the store to follow their references.
 */
export async function collectBlobs(roots: Descriptor[], store: BlobReader): Promise<Descriptor[]> {
  const seen = new Set<string>();
  const out: Descriptor[] = [];
  const visit = async (d: Descriptor, parent: string): Promise<void> => {
    if (seen.has(d.digest)) return;
    seen.add(d.digest);
    if (!(await store.has(d.digest))) {
      throw new Error(`blob ${d.digest} (${d.mediaType}) referenced by ${parent} is not in the content store; pull or build it first`);
    }
    out.push(d);
    const isIndex = isIndexMediaType(d.mediaType);
    const isManifest = d.mediaType === MediaTypes.OciManifest || d.mediaType === MediaTypes.DockerManifest;
    if (!isIndex && !isManifest) return;
    const doc = JSON.parse((await store.readBytes(d.digest)).toString('utf8')) as AnyManifest;
    if (isImageIndex(doc)) {
      for (const child of doc.manifests) await visit(child, d.digest);
    } else {
      await visit(doc.config, d.digest);
      for (const layer of doc.layers) {
        // Foreign/non-distributable layers may legitimately be absent.
        if (layer.urls?.length && !(await store.has(layer.digest))) continue;
        await visit(layer, d.digest);
      }
    }
  };
  for (const root of roots) await visit(root, 'index.json');
  return out;
}

function layoutIndexJson(index: ImageIndex): Buffer {
  const doc: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: index.manifests, ...(index.annotations ? { annotations: index.annotations } : {}) };
  return Buffer.from(JSON.stringify(doc, null, 2) + '\n');
}

const OCI_LAYOUT_FILE = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));

/**
 * Writes an OCI image layout: to a directory (created if needed) or as a tar to a writable
 * stream (the stream is ended). Blobs are verified against their digests as they are copied.
 */
export async function writeOciLayout(target: string | Writable, options: OciLayoutOptions): Promise<void> {
  const blobs = await collectBlobs(options.index.manifests, options.store);
  const indexJson = layoutIndexJson(options.index);
  if (typeof target === 'string') {
    const blobDir = join(target, 'blobs', 'sha256');
    await mkdir(blobDir, { recursive: true });
    for (const d of blobs) {
      const dest = join(blobDir, digestHex(d.digest));
      if (await exists(dest)) continue;
      const tmp = `${dest}.tmp-${process.pid}`;
      try {
        await pipeline(verifying(options.store.openRead(d.digest), d.digest), createWriteStream(tmp));
        await rename(tmp, dest);
      } catch (err) {
        await rm(tmp, { force: true });
        throw err;
      }
    }
    await writeFile(join(target, 'oci-layout'), OCI_LAYOUT_FILE);
    await writeFile(join(target, 'index.json'), indexJson);
    return;
  }
  await writeTar(target, async (pack) => {
    await addEntry(pack, 'oci-layout', OCI_LAYOUT_FILE);
    await addEntry(pack, 'index.json', indexJson);
    await addDir(pack, 'blobs/');
    await addDir(pack, 'blobs/sha256/');
    for (const d of blobs) {
      await addEntry(pack, `blobs/sha256/${digestHex(d.digest)}`, verifying(options.store.openRead(d.digest), d.digest), await options.store.size(d.digest));
    }
  });
}

export interface DockerArchiveImage {
  /** Names like `busybox:latest` or `127.0.0.1:5000/x/y:tag` (Docker Hub names are shortened). */
  repoTags: string[];
  /** The image config blob. */
  config: Digest | Descriptor;
  /** Layer descriptors in order (compressed or not); gzip layers are stored decompressed. */
  layers: Descriptor[];
}

/**
 * Writes a `docker load` tarball (the `docker save` format): manifest.json, `<config>.json`,
 * `<diffid>/layer.tar` per layer and the legacy `repositories` file. The stream is ended.
 */
export async function writeDockerArchive(target: Writable, images: DockerArchiveImage[], store: BlobReader): Promise<void> {
  const manifest: { Config: string; RepoTags: string[]; Layers: string[] }[] = [];
  const repositories: Record<string, Record<string, string>> = {};
  const written = new Set<string>();
  await writeTar(target, async (pack) => {
    for (const image of images) {
      const configDigest = assertDigest(typeof image.config === 'string' ? image.config : image.config.digest);
      const configBytes = await store.readBytes(configDigest);
      const config = JSON.parse(configBytes.toString('utf8')) as ImageConfig;
      const diffIds = config.rootfs?.diff_ids ?? [];
      if (diffIds.length !== image.layers.length) {
        throw new Error(`docker archive: config ${configDigest} lists ${diffIds.length} diff_ids but ${image.layers.length} layers were given; pass the layers of that image`);
      }
      const configName = `${digestHex(configDigest)}.json`;
      if (!written.has(configName)) {
        await addEntry(pack, configName, configBytes);
        written.add(configName);
      }
      const layerNames: string[] = [];
      for (let i = 0; i < image.layers.length; i++) {
        const layer = image.layers[i];
        const diffId = assertDigest(diffIds[i], `diff_id ${i} of ${configDigest}`);
        const dir = digestHex(diffId);
        const name = `${dir}/layer.tar`;
        layerNames.push(name);
        if (written.has(name)) continue;
        written.add(name);
        await addDir(pack, `${dir}/`);
        await addEntry(pack, `${dir}/VERSION`, Buffer.from('1.0'));
        if (isGzipLayer(layer.mediaType)) {
          // Two passes: the tar header needs the uncompressed size before the data.
          const size = await measureUncompressed(store, layer.digest, diffId);
          await addEntry(pack, name, verifying(store.openRead(layer.digest).pipe(createGunzip()), diffId), size);
        } else {
          await addEntry(pack, name, verifying(store.openRead(layer.digest), layer.digest), await store.size(layer.digest));
        }
      }
      const tags = image.repoTags.map(familiarTag);
      manifest.push({ Config: configName, RepoTags: tags, Layers: layerNames });
      const top = layerNames.length ? layerNames[layerNames.length - 1].split('/')[0] : digestHex(configDigest);
      for (const t of tags) {
        const at = t.lastIndexOf(':');
        (repositories[t.slice(0, at)] ??= {})[t.slice(at + 1)] = top;
      }
    }
    await addEntry(pack, 'manifest.json', Buffer.from(JSON.stringify(manifest)));
    await addEntry(pack, 'repositories', Buffer.from(JSON.stringify(repositories)));
  });
}

function familiarTag(name: string): string {
  const ref = parseReference(name);
  if (!ref.tag) throw new Error(`docker archive: repo tag "${name}" needs a tag (e.g. ${name}:latest)`);
  return formatReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag }, { familiar: true });
}

function isGzipLayer(mt: string): boolean {
  return mt === MediaTypes.OciLayerGzip || mt === MediaTypes.DockerLayerGzip || mt === MediaTypes.DockerForeignLayerGzip || mt === MediaTypes.OciLayerNondistributableGzip;
}

async function measureUncompressed(store: BlobReader, digest: string, diffId: Digest): Promise<number> {
  const d = new Digester();
  await pipeline(store.openRead(digest), createGunzip(), new Writable({ write(c: Buffer, _e, cb) { d.update(c); cb(); } }));
  const got = d.digest();
  if (got !== diffId) throw new DigestMismatchError(diffId, got);
  return d.size;
}

/** Passes bytes through and fails at the end when they do not hash to `digest`. */
function verifying(src: Readable, digest: string): Readable {
  const d = new Digester();
  async function* gen(): AsyncGenerator<Buffer> {
    for await (const c of src) {
      d.update(c as Buffer);
      yield c as Buffer;
    }
    const got = d.digest();
    if (got !== digest) throw new DigestMismatchError(digest, got);
  }
  return Readable.from(gen());
}

async function writeTar(target: Writable, fill: (pack: tar.Pack) => Promise<void>): Promise<void> {
  const pack = tar.pack();
  const done = pipeline(pack, target);
  try {
    await fill(pack);
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  await done;
}

async function addDir(pack: tar.Pack, name: string): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    pack.entry({ name, type: 'directory', mode: 0o755, mtime: FIXED_MTIME }, (err) => (err ? reject(err) : resolve()));
  });
}

async function addEntry(pack: tar.Pack, name: string, data: Buffer | Readable, size?: number): Promise<void> {
  if (Buffer.isBuffer(data)) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name, mode: 0o644, mtime: FIXED_MTIME, size: data.length }, data, (err) => (err ? reject(err) : resolve()));
    });
    return;
  }
  let entryErr: Error | null | undefined;
  const entry = pack.entry({ name, mode: 0o644, mtime: FIXED_MTIME, size }, (err) => { entryErr = err; });
  await pipeline(data, entry);
  if (entryErr) throw entryErr;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}
