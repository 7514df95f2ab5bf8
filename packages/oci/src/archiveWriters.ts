// Writers for image archives: OCI image layouts, as a directory or as a tar that `docker load`
// also reads (with a manifest.json). Tars are written with tar-stream as containerd's archive
// exporter (BuildKit's type=oci and type=docker) writes them: entries sorted by name, fixed
// modes, mtime 0, so the same images give the same bytes.
import { createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tar from 'tar-stream';
import { Digester, digestHex } from './digest.js';
import { descriptorInGoOrder, goEscapes } from './goJson.js';
import { DigestMismatchError } from './FsContentStore.js';
import { MediaTypes, isIndexMediaType } from './mediaTypes.js';
import { formatReference, parseReference } from './reference.js';
import { Annotations, isAttestationDescriptor, isImageIndex, type AnyManifest, type Descriptor, type ImageIndex } from './types.js';

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

/** index.json as containerd writes it (compact, Go's field order). */
function layoutIndexJson(index: ImageIndex): Buffer {
  return Buffer.from(goEscapes(JSON.stringify({ schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: index.manifests.map(descriptorInGoOrder), ...(index.annotations ? { annotations: index.annotations } : {}) })));
}

const OCI_LAYOUT_FILE = Buffer.from(JSON.stringify({ imageLayoutVersion: '1.0.0' }));

/**
 * `docker load`'s manifest.json for the image manifests among `entries` (one record per manifest,
 * RepoTags from their io.containerd.image.name annotations, familiar), as containerd's exporter.
 * An entry that is an index (one platform's image with its attestations) records its image
 * manifests, attestation manifests aside, under the entry's names.
 */
async function dockerManifestJson(entries: Descriptor[], store: BlobReader): Promise<Buffer> {
  const records = new Map<string, { Config: string; RepoTags: string[] | null; Layers: string[] }>();
  const isManifest = (d: Descriptor) => d.mediaType === MediaTypes.OciManifest || d.mediaType === MediaTypes.DockerManifest;
  for (const entry of entries) {
    let images = isManifest(entry) ? [entry] : [];
    if (isIndexMediaType(entry.mediaType)) {
      const index = JSON.parse((await store.readBytes(entry.digest)).toString('utf8')) as ImageIndex;
      images = index.manifests.filter((d) => isManifest(d) && !isAttestationDescriptor(d));
    }
    for (const image of images) {
      let record = records.get(image.digest);
      if (!record) {
        const manifest = JSON.parse((await store.readBytes(image.digest)).toString('utf8')) as { config: Descriptor; layers: Descriptor[] };
        record = { Config: `blobs/sha256/${digestHex(manifest.config.digest)}`, RepoTags: null, Layers: manifest.layers.map((l) => `blobs/sha256/${digestHex(l.digest)}`) };
        records.set(image.digest, record);
      }
      const name = entry.annotations?.[Annotations.ContainerdImageName];
      if (name) (record.RepoTags ??= []).push(familiarTag(name));
    }
  }
  return Buffer.from(JSON.stringify([...records.values()]));
}

export interface OciLayoutOptions {
  /** index.json's content: its manifests are the layout's entry points (tag them with ref.name). */
  index: ImageIndex;
  /** Where every referenced blob (manifests, configs, layers) is read from. */
  store: BlobReader;
  /** Tar only: add `docker load`'s manifest.json (BuildKit's type=docker). */
  dockerManifest?: boolean;
}

/**
 * The files of an OCI image layout, as a client writes them into its directory (BuildKit's
 * `tar=false`): every blob (verified as it is read; read-only, as containerd commits them),
 * `oci-layout`, and index.json last, so that an interrupted stream never leaves an index
 * naming blobs that are not there.
 */
export async function* ociLayoutFiles(options: Omit<OciLayoutOptions, 'dockerManifest'>): AsyncGenerator<{ path: string; mode: number; content: Readable }> {
  for (const d of await collectBlobs(options.index.manifests, options.store)) {
    yield { path: `blobs/sha256/${digestHex(d.digest)}`, mode: 0o444, content: verifying(() => options.store.openRead(d.digest), d.digest) };
  }
  yield { path: 'oci-layout', mode: 0o644, content: Readable.from([OCI_LAYOUT_FILE]) };
  yield { path: 'index.json', mode: 0o644, content: Readable.from([layoutIndexJson(options.index)]) };
}

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
        await pipeline(verifying(() => options.store.openRead(d.digest), d.digest), createWriteStream(tmp));
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
  const manifestJson = options.dockerManifest ? await dockerManifestJson(options.index.manifests, options.store) : undefined;
  const sortedBlobs = [...blobs].sort((a, b) => (a.digest < b.digest ? -1 : a.digest > b.digest ? 1 : 0));
  await writeTar(target, async (pack) => {
    await addDir(pack, 'blobs/');
    await addDir(pack, 'blobs/sha256/');
    for (const d of sortedBlobs) {
      await addEntry(pack, `blobs/sha256/${digestHex(d.digest)}`, verifying(() => options.store.openRead(d.digest), d.digest), await options.store.size(d.digest), 0o444);
    }
    await addEntry(pack, 'index.json', indexJson);
    if (manifestJson) await addEntry(pack, 'manifest.json', manifestJson);
    await addEntry(pack, 'oci-layout', OCI_LAYOUT_FILE, undefined, 0o444);
  });
}

function familiarTag(name: string): string {
  const ref = parseReference(name);
  if (!ref.tag) throw new Error(`docker archive: repo tag "${name}" needs a tag (e.g. ${name}:latest)`);
  return formatReference({ registry: ref.registry, repository: ref.repository, tag: ref.tag }, { familiar: true });
}

/**
 * Passes bytes through and fails at the end when they do not hash to `digest`. The source is
 * opened at the first read: a stream dropped unread (a blob the receiver already holds) holds no file.
 */
function verifying(open: () => Readable, digest: string): Readable {
  const d = new Digester();
  async function* gen(): AsyncGenerator<Buffer> {
    for await (const c of open()) {
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

async function addEntry(pack: tar.Pack, name: string, data: Buffer | Readable, size?: number, mode = 0o644): Promise<void> {
  if (Buffer.isBuffer(data)) {
    await new Promise<void>((resolve, reject) => {
      pack.entry({ name, mode, mtime: FIXED_MTIME, size: data.length }, data, (err) => (err ? reject(err) : resolve()));
    });
    return;
  }
  let entryErr: Error | null | undefined;
  const entry = pack.entry({ name, mode, mtime: FIXED_MTIME, size }, (err) => { entryErr = err; });
  await pipeline(data, entry);
  if (entryErr) throw entryErr;
}

async function exists(p: string): Promise<boolean> {
  try { await stat(p); return true; } catch { return false; }
}
