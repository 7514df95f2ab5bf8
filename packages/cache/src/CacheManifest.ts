import { MediaTypes, assertDigest, sha256Digest as sha256, type Descriptor } from '@buildyard/oci';
import type { LayerRecord, NewCacheRecord } from './CacheRecord.js';

/** Media type of the cache manifest's config blob, which holds the records. */
export const CACHE_CONFIG_MEDIA_TYPE = 'application/vnd.buildyard.cache.config.v1+json';
export const OCI_MANIFEST_MEDIA_TYPE = MediaTypes.OciManifest;
/** Manifest annotation holding a platform's records in an image pushed with --cache-to type=inline. */
export const INLINE_CACHE_ANNOTATION = 'dev.buildyard.cache.v1';

/** A record as it travels in an exported cache: no usage counters, they are the importer's. */
export type ExportedCacheRecord = Pick<NewCacheRecord, 'key' | 'layer' | 'description' | 'platform'>;

export interface CacheConfig {
  version: 1;
  records: ExportedCacheRecord[];
}

/** oci's descriptor: one definition for images, caches and the registry client. */
export type CacheDescriptor = Descriptor;

export interface EncodedCacheManifest {
  config: { bytes: Buffer; descriptor: CacheDescriptor };
  manifest: { bytes: Buffer; descriptor: CacheDescriptor };
  /** The distinct layer blobs the records reference, in manifest order. */
  layers: LayerRecord[];
}


/**
 * Encodes records as an OCI image manifest: the config blob holds the records, the layers are
 * every distinct blob they reference (so registries keep them and copy tools carry them).
 * Records are sorted by key so that the same cache gives the same digest.
 */
export function encodeCacheManifest(records: ExportedCacheRecord[]): EncodedCacheManifest {
  const byKey = new Map<string, ExportedCacheRecord>();
  for (const r of records) if (!byKey.has(r.key)) byKey.set(r.key, { key: r.key, layer: r.layer, description: r.description, platform: r.platform });
  const sorted = [...byKey.values()].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const configBytes = Buffer.from(JSON.stringify({ version: 1, records: sorted } satisfies CacheConfig));
  const config = { bytes: configBytes, descriptor: { mediaType: CACHE_CONFIG_MEDIA_TYPE, digest: sha256(configBytes), size: configBytes.length } };
  const layers = new Map<string, LayerRecord>();
  for (const r of sorted) if (r.layer && !layers.has(r.layer.digest)) layers.set(r.layer.digest, r.layer);
  const manifestJson = {
    schemaVersion: 2,
    mediaType: OCI_MANIFEST_MEDIA_TYPE,
    config: config.descriptor,
    layers: [...layers.values()].map((l) => ({ mediaType: l.mediaType, digest: assertDigest(l.digest, 'cached layer digest'), size: l.size })),
    annotations: { 'dev.buildyard.cache.records': String(sorted.length) },
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifestJson));
  return { config, manifest: { bytes: manifestBytes, descriptor: { mediaType: OCI_MANIFEST_MEDIA_TYPE, digest: sha256(manifestBytes), size: manifestBytes.length } }, layers: [...layers.values()] };
}

/** Parses a cache config blob (or an inline annotation value); throws one line on garbage. */
export function decodeCacheRecords(text: string, where: string): ExportedCacheRecord[] {
  let doc: unknown;
  try { doc = JSON.parse(text); } catch { throw new Error(`cache at ${where} is not valid JSON: re-export it with --cache-to`); }
  const records = (doc as Partial<CacheConfig>)?.records;
  if ((doc as Partial<CacheConfig>)?.version !== 1 || !Array.isArray(records)) throw new Error(`cache at ${where} is not a buildyard cache (version 1): re-export it with --cache-to`);
  for (const r of records) {
    const ok = typeof r?.key === 'string' && typeof r.platform === 'string' && (r.layer === null
      || (typeof r.layer?.digest === 'string' && /^sha256:[0-9a-f]{64}$/.test(r.layer.digest) && typeof r.layer.diffID === 'string' && typeof r.layer.size === 'number' && typeof r.layer.mediaType === 'string'));
    if (!ok) throw new Error(`cache at ${where} has a malformed record ${JSON.stringify(r).slice(0, 120)}: re-export it with --cache-to`);
  }
  return records.map((r) => ({ key: r.key, layer: r.layer, description: String(r.description ?? ''), platform: r.platform }));
}

/** The value of the inline-cache manifest annotation for these records. */
export function inlineCacheAnnotation(records: ExportedCacheRecord[]): string {
  return encodeCacheManifest(records).config.bytes.toString('utf8');
}
