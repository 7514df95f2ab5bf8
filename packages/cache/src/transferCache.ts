import type { Readable } from 'node:stream';
import { assertDigest, ociLayoutEntry, parseReference, Annotations, type Descriptor, type FsContentStore, type ImageIndex, type RegistryClient, type RepositoryReference } from '@buildyard/oci';
import type { CacheIndex } from './CacheRecord.js';
import type { CacheSpec } from './CacheSpec.js';
import { CACHE_CONFIG_MEDIA_TYPE, INLINE_CACHE_ANNOTATION, decodeCacheRecords, encodeCacheManifest, type ExportedCacheRecord } from './CacheManifest.js';

/** Read access to an OCI layout by path inside it (`index.json`, `blobs/sha256/<hex>`). */
export interface LayoutReader {
  /** For messages, e.g. the client's path of the directory. */
  where: string;
  /** Rejects with code ENOENT when the layout has no such file. */
  read(path: string): Promise<Buffer>;
  open(path: string): Readable;
  /** True when the layout holds the blob `digest` (under blobs/sha256/) with that content. */
  hasBlob(digest: string): Promise<boolean>;
}

export interface CacheTransferDeps {
  registry: RegistryClient;
  /** The shared blob store: layers are read from it on export and land in it on import. */
  blobs: FsContentStore;
  /** A local import's layout (the client's directory, synced to the builder). */
  layout?: LayoutReader;
  signal?: AbortSignal;
}

export interface CacheWriteResult {
  /** registry: REF@DIGEST; local: the client's dir (tag). */
  location: string;
  digest: string;
  records: number;
  layers: number;
  /** local: the layout to stream to the client: its index and every blob it holds (in the blob store). */
  layout?: { index: ImageIndex; blobs: Array<{ digest: string; size: number }> };
}


/** Runs `fn` over items with at most `limit` at a time. */
async function eachLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  }));
}

/**
 * Exports records to a registry ref or a local OCI layout (see README.md, "Cache format").
 * Every platform's records go into one manifest; their keys differ, so nothing overwrites.
 */
export async function writeCache(spec: Exclude<CacheSpec, { type: 'inline' }>, records: ExportedCacheRecord[], deps: CacheTransferDeps): Promise<CacheWriteResult> {
  const encoded = encodeCacheManifest(records);
  for (const l of encoded.layers) {
    if (!(await deps.blobs.has(l.digest))) throw new Error(`cache export to ${spec.type === 'registry' ? spec.ref : 'type=local'}: layer ${l.digest} is no longer in the shared blob store: rebuild without the cache or re-run the build`);
  }
  if (spec.type === 'registry') {
    const ref = parseReference(spec.ref);
    const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
    const call = { signal: deps.signal };
    await eachLimit(encoded.layers, 4, async (l) => {
      await deps.registry.pushBlob(repo, { digest: assertDigest(l.digest, 'cached layer digest'), size: l.size }, () => deps.blobs.openRead(l.digest), call);
    });
    await deps.registry.pushBlob(repo, encoded.config.descriptor, encoded.config.bytes, call);
    const target = ref.digest ? { ...repo, tag: ref.tag ?? 'latest' } : { ...repo, tag: ref.tag ?? 'latest' };
    const digest = await deps.registry.putManifest(target, encoded.manifest.bytes, encoded.manifest.descriptor.mediaType, call);
    return { location: `${ref.registry}/${ref.repository}:${target.tag}@${digest}`, digest, records: countRecords(encoded.config.bytes), layers: encoded.layers.length };
  }
  // The layout's documents go to the shared store like every other blob; the caller streams
  // the layout to the client (never to a path of the builder's own).
  await deps.blobs.put(encoded.config.bytes, encoded.config.descriptor.digest, encoded.config.descriptor.size);
  await deps.blobs.put(encoded.manifest.bytes, encoded.manifest.descriptor.digest, encoded.manifest.descriptor.size);
  const index: ImageIndex = { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [ociLayoutEntry(encoded.manifest.descriptor, spec.tag)] };
  const blobs = [encoded.manifest.descriptor, encoded.config.descriptor, ...encoded.layers].map((d) => ({ digest: d.digest, size: d.size }));
  return {
    location: `the client's cache dir (${spec.tag})`, digest: encoded.manifest.descriptor.digest, records: countRecords(encoded.config.bytes), layers: encoded.layers.length,
    layout: { index, blobs },
  };
}

const countRecords = (config: Buffer) => (JSON.parse(config.toString('utf8')) as { records: unknown[] }).records.length;

export interface CacheReadResult {
  location: string;
  /** Records found in the cache. */
  records: number;
  /** Records that were new to the index (the others were already there: first writer wins). */
  added: number;
  /** Layer blobs copied into the shared blob store. */
  blobsFetched: number;
  /** Layer digests the imported records reference (lease them for the build). */
  digests: string[];
}

/**
 * Imports a cache into `index`: blobs missing from the shared store are fetched first (eagerly),
 * then records are put, so a worker never sees a record whose blob is absent.
 * A registry ref may point at a cache manifest or at an image pushed with an inline cache.
 */
export async function readCache(spec: Exclude<CacheSpec, { type: 'inline' }>, index: CacheIndex, deps: CacheTransferDeps): Promise<CacheReadResult> {
  let records: ExportedCacheRecord[];
  let fetchBlob: (layer: NonNullable<ExportedCacheRecord['layer']>) => Promise<void>;
  /** Whether the cache source itself holds a layer (its proof that the importer may use it). */
  let sourceHas: (layer: NonNullable<ExportedCacheRecord['layer']>) => Promise<boolean>;
  let location: string;
  if (spec.type === 'registry') {
    location = spec.ref;
    const ref = parseReference(spec.ref);
    const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
    records = await registryRecords(spec.ref, deps);
    fetchBlob = async (l) => { await deps.registry.pullBlob(repo, { digest: assertDigest(l.digest, 'cached layer digest'), size: l.size }, deps.blobs, { signal: deps.signal }); };
    sourceHas = (l) => deps.registry.blobExists(repo, l.digest, { signal: deps.signal });
  } else {
    const reader = deps.layout;
    if (!reader) throw new Error('--cache-from type=local: the cache directory was not synced: run the build with the buildyard client');
    location = reader.where;
    records = (await readLayout(reader, spec.tag)).records;
    fetchBlob = async (l) => {
      await deps.blobs.put(reader.open(blobPath(l.digest)), l.digest, l.size);
    };
    sourceHas = (l) => reader.hasBlob(l.digest);
  }
  const layers = new Map<string, NonNullable<ExportedCacheRecord['layer']>>();
  for (const r of records) if (r.layer) layers.set(r.layer.digest, r.layer);
  let blobsFetched = 0;
  await eachLimit([...layers.values()], 4, async (l) => {
    if (await deps.blobs.has(l.digest)) {
      // The shared store holds every tenant's layers: a cache may name one only if its source
      // holds it too, or an importer could reach another tenant's layer by its digest alone.
      if (!(await sourceHas(l).catch(() => false))) {
        throw new Error(`cache import from ${location}: layer ${l.digest} is not in the cache source: re-export the cache`);
      }
      return;
    }
    try { await fetchBlob(l); } catch (err) {
      throw new Error(`cache import from ${location}: layer ${l.digest} could not be fetched (${(err as Error).message.split('\n')[0]}): re-export the cache`);
    }
    blobsFetched++;
  });
  let added = 0;
  const started = Date.now();
  for (const r of records) {
    // An entry created before this import was already there and keeps its layer.
    if ((await index.put(r)).createdMs >= started) added++;
  }
  return { location, records: records.length, added, blobsFetched, digests: [...layers.keys()] };
}

async function registryRecords(refText: string, deps: CacheTransferDeps): Promise<ExportedCacheRecord[]> {
  const call = { signal: deps.signal };
  const ref = parseReference(refText);
  const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
  const top = await deps.registry.getManifest(refText, call);
  const fromManifest = async (doc: { config?: { mediaType: string; digest: string }; annotations?: Record<string, string> }, where: string): Promise<ExportedCacheRecord[] | undefined> => {
    if (doc.config?.mediaType === CACHE_CONFIG_MEDIA_TYPE) {
      return decodeCacheRecords((await deps.registry.fetchBlobBytes(repo, doc.config.digest, call)).toString('utf8'), where);
    }
    const inline = doc.annotations?.[INLINE_CACHE_ANNOTATION];
    return inline ? decodeCacheRecords(inline, where) : undefined;
  };
  const doc = top.manifest as unknown as { manifests?: Array<{ digest: string }>; config?: { mediaType: string; digest: string }; annotations?: Record<string, string> };
  const found: ExportedCacheRecord[] = [];
  let any = false;
  if (Array.isArray(doc.manifests)) {
    for (const child of doc.manifests) {
      const m = await deps.registry.getManifest({ ...repo, digest: assertDigest(child.digest, `manifest digest in ${refText}`) }, call);
      const recs = await fromManifest(m.manifest as unknown as typeof doc, `${refText}@${child.digest}`);
      if (recs) { any = true; found.push(...recs); }
    }
  } else {
    const recs = await fromManifest(doc, refText);
    if (recs) { any = true; found.push(...recs); }
  }
  if (!any) throw new Error(`--cache-from ${refText}: the image holds no buildyard cache: export one with --cache-to type=registry,ref=${refText} or type=inline`);
  return found;
}

const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

async function readLayout(layout: LayoutReader, tag: string): Promise<{ records: ExportedCacheRecord[] }> {
  const dir = layout.where;
  let indexJson: { manifests?: Descriptor[] };
  try { indexJson = JSON.parse((await layout.read('index.json')).toString('utf8')) as typeof indexJson; } catch (err) {
    throw new Error(`--cache-from type=local (${dir}): no OCI layout there (${(err as NodeJS.ErrnoException).code ?? 'bad index.json'}): export one with --cache-to type=local,dest=DIR`);
  }
  const manifests = indexJson.manifests ?? [];
  const entry = manifests.find((m) => m.annotations?.[Annotations.RefName] === tag) ?? (manifests.length === 1 && !manifests[0].annotations?.[Annotations.RefName] ? manifests[0] : undefined);
  if (!entry) throw new Error(`--cache-from type=local (${dir}): no cache tagged "${tag}": pass tag=NAME of one of ${manifests.map((m) => m.annotations?.[Annotations.RefName] ?? m.digest).join(', ').slice(0, 300)}`);
  const readJson = async (digest: string) => {
    try { return JSON.parse((await layout.read(blobPath(digest))).toString('utf8')) as { config?: { mediaType: string; digest: string } }; } catch (err) {
      throw new Error(`--cache-from type=local (${dir}): ${digest.slice(0, 80)} is missing or not JSON (${(err as NodeJS.ErrnoException).code ?? 'bad JSON'}): export the cache again`);
    }
  };
  const manifest = await readJson(entry.digest);
  if (manifest.config?.mediaType !== CACHE_CONFIG_MEDIA_TYPE) throw new Error(`--cache-from type=local (${dir}): ${entry.digest.slice(0, 80)} is not a buildyard cache manifest: export one with --cache-to type=local,dest=DIR`);
  return { records: decodeCacheRecords((await layout.read(blobPath(manifest.config.digest))).toString('utf8'), `${dir}/${tag}`) };
}
