import { z } from 'zod';
import { MediaTypes, assertDigest, isDigest, sha256Digest as sha256, type Descriptor, type Digest } from '@buildyard/oci';
import type { LayerRecord, NewCacheRecord } from './CacheRecord.js';

/**
 * Media type of the cache config blob: BuildKit's (`cacheimporttypes.CacheConfigMediaTypeV0`),
 * so buildkitd, buildx and registries take a Buildyard cache for a BuildKit one.
 */
export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildkit.cacheconfig.v0';
/** The config media type of caches Buildyard wrote before it used BuildKit's format (still read). */
export const LEGACY_CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildyard.cache.config.v1+json';
/** Manifest annotation holding a platform's records in an image pushed with --cache-to type=inline. */
export const INLINE_CACHE_ANNOTATION = 'dev.buildyard.cache.v1';
/**
 * The field of a BuildKit cache record that makes it a Buildyard record. BuildKit's JSON decoder
 * ignores fields it does not know, so the config stays a valid BuildKit cache config.
 */
export const RECORD_EXTENSION = 'dev.buildyard.record';
/** What containerd and BuildKit call a layer descriptor's diffID annotation. */
const UNCOMPRESSED_ANNOTATION = 'containerd.io/uncompressed';
/** Go's zero time: BuildKit's createdAt fields are not optional, and a fixed value keeps digests stable. */
const ZERO_TIME = '0001-01-01T00:00:00Z';

/** A record as it travels in an exported cache: no usage counters, they are the importer's. */
export type ExportedCacheRecord = Pick<NewCacheRecord, 'key' | 'layer' | 'description' | 'platform'>;

/** BuildKit's cache config (cache/remotecache/v1/types: CacheConfig), with Buildyard's record extension. */
export interface CacheConfig {
  layers?: Array<{ blob: string; parent?: number; annotations?: { mediaType?: string; diffID?: string; size?: number; createdAt?: string } }>;
  records?: Array<{
    digest?: string;
    layers?: Array<{ layer: number; createdAt?: string }>;
    chains?: Array<{ layers: number[]; createdAt?: string }>;
    inputs?: Array<Array<{ selector?: string; link: number }>>;
    [RECORD_EXTENSION]?: { key: string; platform: string; description: string };
  }>;
}

/** oci's descriptor: one definition for images, caches and the registry client. */
export type CacheDescriptor = Descriptor;

export interface EncodedCacheManifest {
  config: { bytes: Buffer; descriptor: CacheDescriptor };
  /** BuildKit's default cache document: an OCI image index of the layer blobs and the config. */
  manifest: { bytes: Buffer; descriptor: CacheDescriptor };
  /** The distinct layer blobs the records reference, in index order. */
  layers: LayerRecord[];
}

const DIGEST = /^sha256:[0-9a-f]{64}$/;

/**
 * Encodes records as BuildKit's registry/local cache: an OCI image index whose entries are every
 * distinct layer blob the records reference and, last, the `cacheconfig.v0` blob (as buildkitd's
 * exporter writes with oci-mediatypes). Each Buildyard step is a root record (no inputs: its key
 * already covers them) whose result is its one layer; the key, platform and description ride in
 * the record's extension field. Records are sorted by key so that the same cache gives the same digest.
 */
export function encodeCacheManifest(records: ExportedCacheRecord[], opts: { imageManifest?: boolean } = {}): EncodedCacheManifest {
  const byKey = new Map<string, ExportedCacheRecord>();
  for (const r of records) if (!byKey.has(r.key)) byKey.set(r.key, r);
  const sorted = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const layers = new Map<string, { index: number; layer: LayerRecord }>();
  for (const r of sorted) if (r.layer && !layers.has(r.layer.digest)) layers.set(r.layer.digest, { index: layers.size, layer: r.layer });
  const config: CacheConfig = {
    layers: [...layers.values()].map(({ layer: l }) => ({
      blob: assertDigest(l.digest, 'cached layer digest'), parent: -1,
      annotations: { mediaType: l.mediaType, diffID: l.diffID, size: l.size, createdAt: ZERO_TIME },
    })),
    records: sorted.map((r) => ({
      // BuildKit keys records by digest: a key that is not one (tests, old keys) is hashed.
      digest: DIGEST.test(r.key) ? r.key : sha256(r.key),
      ...(r.layer ? { layers: [{ layer: layers.get(r.layer.digest)!.index, createdAt: ZERO_TIME }] } : {}),
      [RECORD_EXTENSION]: { key: r.key, platform: r.platform, description: r.description },
    })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const configDescriptor = { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: sha256(configBytes), size: configBytes.length };
  const entries = [...layers.values()].map(({ layer: l }) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size, annotations: { [UNCOMPRESSED_ANNOTATION]: l.diffID } }));
  // image-manifest=true (BuildKit >= 0.12): the config is the manifest's config, the blobs its layers.
  const mediaType = opts.imageManifest ? MediaTypes.OciManifest : MediaTypes.OciIndex;
  const doc = opts.imageManifest
    ? { schemaVersion: 2, mediaType, config: configDescriptor, layers: entries }
    : { schemaVersion: 2, mediaType, manifests: [...entries, configDescriptor] };
  const docBytes = Buffer.from(JSON.stringify(doc));
  return {
    config: { bytes: configBytes, descriptor: configDescriptor },
    manifest: { bytes: docBytes, descriptor: { mediaType, digest: sha256(docBytes), size: docBytes.length } },
    layers: [...layers.values()].map((l) => l.layer),
  };
}

export interface DecodedCache {
  /** Buildyard's records: their keys are Buildyard cache keys. */
  records: ExportedCacheRecord[];
  /**
   * Records another BuildKit implementation wrote (buildkitd, buildx's builders). Their digests
   * are BuildKit's cache keys (digests of its LLB operations and content selectors), which no
   * Buildyard step has: they are counted, never matched.
   */
  foreign: number;
}

/** Layer fields an index entry adds to a config's layer (BuildKit writes them on the entries only). */
export type LayerDescriptors = ReadonlyMap<string, Pick<Descriptor, 'mediaType' | 'size' | 'annotations'>>;

/**
 * Parses a cache config blob or an inline annotation value: BuildKit's cache config (Buildyard's
 * records are those with the extension field) or Buildyard's earlier `{version: 1, records}`.
 * `descriptors` are the cache document's layer entries. Throws one line on garbage.
 */
export function decodeCacheConfig(text: string, where: string, descriptors: LayerDescriptors = new Map()): DecodedCache {
  let doc: unknown;
  try { doc = JSON.parse(text); } catch { throw new Error(`cache at ${where} is not valid JSON: re-export it with --cache-to`); }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) throw new Error(`cache at ${where} is not a cache config: re-export it with --cache-to`);
  if ('version' in doc) return { records: decodeLegacy(doc as { version?: unknown; records?: unknown }, where), foreign: 0 };
  const config = doc as CacheConfig;
  if ((config.layers !== undefined && !Array.isArray(config.layers)) || (config.records !== undefined && !Array.isArray(config.records))) {
    throw new Error(`cache at ${where} is not a BuildKit cache config (layers and records must be lists): re-export it with --cache-to`);
  }
  const malformed = (what: unknown) => new Error(`cache at ${where} has a malformed record ${JSON.stringify(what).slice(0, 120)}: re-export it with --cache-to`);
  const layerAt = (index: number): LayerRecord => {
    const l = config.layers?.[index];
    const entry = l && descriptors.get(l.blob);
    const layer = {
      digest: l?.blob, diffID: l?.annotations?.diffID ?? entry?.annotations?.[UNCOMPRESSED_ANNOTATION],
      size: l?.annotations?.size ?? entry?.size, mediaType: l?.annotations?.mediaType ?? entry?.mediaType,
    };
    const ok = typeof layer.digest === 'string' && DIGEST.test(layer.digest) && typeof layer.diffID === 'string' && DIGEST.test(layer.diffID)
      && typeof layer.size === 'number' && typeof layer.mediaType === 'string';
    if (!ok) throw malformed(l ?? { layer: index });
    return layer as LayerRecord;
  };
  const records: ExportedCacheRecord[] = [];
  let foreign = 0;
  for (const r of config.records ?? []) {
    const ext = r?.[RECORD_EXTENSION];
    if (!ext) { foreign++; continue; }
    if (typeof ext.key !== 'string' || typeof ext.platform !== 'string' || (r.layers !== undefined && (!Array.isArray(r.layers) || r.layers.length !== 1))) throw malformed(r);
    // A Buildyard record's one result is its step's own layer, never a chain.
    const at = r.layers?.[0]?.layer;
    if (at !== undefined && (typeof at !== 'number' || config.layers?.[at]?.parent !== -1)) throw malformed(r);
    records.push({ key: ext.key, layer: at === undefined ? null : layerAt(at), description: String(ext.description ?? ''), platform: ext.platform });
  }
  return { records, foreign };
}

function decodeLegacy(doc: { version?: unknown; records?: unknown }, where: string): ExportedCacheRecord[] {
  const records = doc.records;
  if (doc.version !== 1 || !Array.isArray(records)) throw new Error(`cache at ${where} is not a buildyard cache (version 1): re-export it with --cache-to`);
  for (const r of records as Array<Partial<ExportedCacheRecord> & { layer?: Partial<LayerRecord> | null }>) {
    const ok = typeof r?.key === 'string' && typeof r.platform === 'string' && (r.layer === null
      || (typeof r.layer?.digest === 'string' && DIGEST.test(r.layer.digest) && typeof r.layer.diffID === 'string' && typeof r.layer.size === 'number' && typeof r.layer.mediaType === 'string'));
    if (!ok) throw new Error(`cache at ${where} has a malformed record ${JSON.stringify(r).slice(0, 120)}: re-export it with --cache-to`);
  }
  return (records as ExportedCacheRecord[]).map((r) => ({ key: r.key, layer: r.layer, description: String(r.description ?? ''), platform: r.platform }));
}

/** The value of the inline-cache manifest annotation for these records: the cache config itself. */
export function inlineCacheAnnotation(records: ExportedCacheRecord[]): string {
  return encodeCacheManifest(records).config.bytes.toString('utf8');
}

/** A cache document (index or manifest) as read from a registry or a layout. */
export interface CacheDocument {
  mediaType?: string;
  manifests?: Descriptor[];
  config?: Descriptor;
  layers?: Descriptor[];
  annotations?: Record<string, string>;
}

// Loose objects: an image manifest or index read for its inline cache carries fields (schemaVersion,
// platform, urls…) this code does not use but must not reject.
const descriptorSchema = z.looseObject({
  mediaType: z.string(),
  digest: z.custom<Digest>((d) => typeof d === 'string' && isDigest(d), 'expected sha256:<64 hex chars>'),
  size: z.number().int().nonnegative(),
  annotations: z.record(z.string(), z.string()).optional(),
});

/** What a CacheDocument read from the network must look like before cacheConfigOf trusts it. */
export const cacheDocumentSchema = z.looseObject({
  mediaType: z.string().optional(),
  manifests: z.array(descriptorSchema).optional(),
  config: descriptorSchema.optional(),
  layers: z.array(descriptorSchema).optional(),
  annotations: z.record(z.string(), z.string()).optional(),
}) satisfies z.ZodType<CacheDocument>;

/** Validates a cache document fetched from `where`; one line naming `where` and the first bad field. */
export function parseCacheDocument(value: unknown, where: string): CacheDocument {
  const result = cacheDocumentSchema.safeParse(value);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue.path.length ? issue.path.join('.') : 'document';
  throw new Error(`cache at ${where.slice(0, 300)} is malformed (${field}: ${issue.message.slice(0, 120)}): re-export it with --cache-to`);
}

/**
 * Where a cache document keeps its config and layer entries: BuildKit's index form (the config is
 * an entry of the index), its image-manifest form (`image-manifest=true`: the manifest's config) or
 * Buildyard's earlier manifest. Undefined for anything else (an image, an index of images).
 */
export function cacheConfigOf(doc: CacheDocument): { config: Descriptor; descriptors: LayerDescriptors } | undefined {
  const byDigest = (ds: Descriptor[]) => new Map(ds.map((d) => [d.digest, d]));
  if (Array.isArray(doc.manifests)) {
    const config = doc.manifests.find((m) => m.mediaType === CACHE_CONFIG_MEDIA_TYPE);
    return config && { config, descriptors: byDigest(doc.manifests.filter((m) => m !== config)) };
  }
  const mt = doc.config?.mediaType;
  if (doc.config && (mt === CACHE_CONFIG_MEDIA_TYPE || mt === LEGACY_CACHE_CONFIG_MEDIA_TYPE)) return { config: doc.config, descriptors: byDigest(Array.isArray(doc.layers) ? doc.layers : []) };
  return undefined;
}
