import type { HistoryEntry, ImageConfigFile } from '@buildyard/graph';
import { MediaTypes, assertDigest, descriptorInGoOrder, goIndentedJson, layerMediaTypeFor, normalizePlatform, sha256Digest, sortedRecord, type Descriptor, type Platform } from '@buildyard/oci';
import { imageConfigJson } from './imageConfigJson.js';
import type { StageResult } from './StageResult.js';

// Media types and descriptors are oci's (one definition for the solver, exporters and registry client).
export type { Descriptor } from '@buildyard/oci';
export const MEDIA_TYPE_MANIFEST = MediaTypes.OciManifest;
export const MEDIA_TYPE_INDEX = MediaTypes.OciIndex;
export const MEDIA_TYPE_CONFIG = MediaTypes.OciConfig;

/** A JSON document with the exact bytes it is addressed by. */
export interface JsonBlob<T> {
  json: T;
  bytes: Buffer;
  descriptor: Descriptor;
}

export interface AssembledImage {
  platform: string;
  config: JsonBlob<ImageConfigFile>;
  manifest: JsonBlob<{ schemaVersion: 2; mediaType: string; config: Descriptor; layers: Descriptor[]; annotations?: Record<string, string> }>;
  layers: Descriptor[];
}

/** A document with its digest: `bytes` default to compact JSON; BuildKit's manifests are indented (goIndentedJson). */
export function jsonBlob<T>(json: T, mediaType: string, extra: Partial<Descriptor> = {}, bytes: Buffer = Buffer.from(JSON.stringify(json))): JsonBlob<T> {
  return { json, bytes, descriptor: { mediaType, digest: sha256Digest(bytes), size: bytes.length, ...extra } };
}

/** The OCI platform record of a normalised platform string (`linux/arm/v7`). */
export function platformObject(platform: string): Platform {
  const { os, architecture, variant } = normalizePlatform(platform);
  return variant ? { architecture, os, variant } : { architecture, os };
}

/**
 * BuildKit's normalizeLayersAndHistory: history entries without a time (metadata steps, empty
 * diffs) take the first new layer's time, later ones the layer before them; the image is as old
 * as its last entry. Layer times come from the cache, so a rebuild that changes nothing gives
 * the same config, hence the same digests.
 */
function fillHistoryTimes(history: HistoryEntry[]): { history: HistoryEntry[]; created?: string } {
  let created: string | undefined;
  let missing = false;
  for (const h of history) {
    if (h.created !== undefined) {
      created = h.created;
      if (missing) break;
    } else missing = true;
  }
  missing = false;
  const out = history.map((h) => {
    if (h.created !== undefined) {
      if (missing) created = h.created;
      return h;
    }
    missing = true;
    return created === undefined ? h : { created, ...h };
  });
  return { history: out, created: out.length > 0 ? out[out.length - 1].created : undefined };
}

/** How many of a stage's layers are its base image's: those of the first `baseHistory` history entries. */
export function baseLayerCount(result: Pick<StageResult, 'history'>, baseHistory: number): number {
  return result.history.slice(0, baseHistory).filter((h) => !h.empty_layer).length;
}

/**
 * The image config and manifest of one platform's target stage. Times come from the layers (see
 * fillHistoryTimes); `created` (SOURCE_DATE_EPOCH) clamps them, as BuildKit (dockerfile2llb dates
 * each new entry by it, patchImageConfig clamps the rest): an entry later than it or without a
 * time says it, an older one keeps its own, and so do the first `baseHistory` entries, the base
 * image's (current BuildKit, moby/buildkit#4614), up to the first without a time; the image is
 * as old as its last entry.
 *
 * `targetPlatform`: the platform the build was asked for, when it was asked for one. As
 * BuildKit's dockerfile2llb, the image then says that platform even where its final stage was
 * pinned to another (`FROM --platform=linux/arm64 ...` in an amd64 build); without it the image
 * says its final stage's platform.
 */
export function assembleImage(result: StageResult, options: { created?: string; baseHistory?: number; labels?: Record<string, string>; annotations?: Record<string, string>; targetPlatform?: string; ociTypes?: boolean; rewrittenTimestamp?: number } = {}): AssembledImage {
  const oci = options.ociTypes ?? true;
  // rewrite-timestamp: current BuildKit marks each layer it rewrote (all but the base image's); Docker's types carry no annotations.
  const rewritten = options.rewrittenTimestamp !== undefined && oci ? { from: baseLayerCount(result, options.baseHistory ?? 0), annotations: { 'buildkit/rewritten-timestamp': String(options.rewrittenTimestamp) } } : undefined;
  const platform = options.targetPlatform ?? result.platform;
  const epoch = options.created;
  const filled = epoch === undefined ? fillHistoryTimes(result.history) : undefined;
  // BuildKit fills a base entry's missing time before comparing the history with the base's, so
  // the base's prefix ends at its first entry without a time: it and all after it are clamped.
  const untimed = result.history.findIndex((h) => h.created === undefined);
  const keptBase = Math.min(options.baseHistory ?? 0, untimed === -1 ? Infinity : untimed);
  const history = filled?.history
    ?? result.history.map((h, i) => (i >= keptBase && (h.created === undefined || Date.parse(h.created) > Date.parse(epoch!)) ? { ...h, created: epoch } : h));
  const created = filled ? filled.created ?? new Date().toISOString() : history.at(-1)?.created ?? epoch!;
  const stageConfig = { ...result.config };
  if (options.labels && Object.keys(options.labels).length > 0) stageConfig.Labels = { ...stageConfig.Labels, ...options.labels };
  const configFile: ImageConfigFile = {
    created,
    ...(result.author !== undefined ? { author: result.author } : {}),
    ...platformObject(platform),
    config: stageConfig,
    rootfs: { type: 'layers', diff_ids: result.layers.map((l) => l.diffID) },
    history: history.map(({ created: own, ...entry }) => ({ created: own ?? created, ...entry })),
  };
  const config = jsonBlob(configFile, oci ? MEDIA_TYPE_CONFIG : MediaTypes.DockerConfig, {}, imageConfigJson(configFile));
  // Every layer in the manifest's family, a base image's Docker-typed ones too (BuildKit's ConvertAllLayerMediaTypes).
  const layers: Descriptor[] = result.layers.map((l, i) => ({
    mediaType: layerMediaTypeFor(l.mediaType, oci), digest: assertDigest(l.digest, `layer digest of stage ${result.stageId}`), size: l.size,
    ...(rewritten && i >= rewritten.from ? { annotations: rewritten.annotations } : {}),
  }));
  // As BuildKit writes it: ocispec.Manifest's field order, indented (json.MarshalIndent).
  const manifestType = oci ? MEDIA_TYPE_MANIFEST : MediaTypes.DockerManifest;
  const manifestJson = {
    schemaVersion: 2 as const,
    mediaType: manifestType,
    config: config.descriptor,
    layers,
    ...(options.annotations ? { annotations: sortedRecord(options.annotations) } : {}),
  };
  const manifest = jsonBlob(manifestJson, manifestType, { platform: platformObject(platform) }, goIndentedJson(manifestJson));
  return { platform, config, manifest, layers };
}

/** An OCI image index over several platforms' manifests (room left for attestation manifests). */
export function assembleIndex(images: AssembledImage[], annotations?: Record<string, string>, ociTypes = true): JsonBlob<{ schemaVersion: 2; mediaType: string; manifests: Descriptor[]; annotations?: Record<string, string> }> {
  const mediaType = ociTypes ? MEDIA_TYPE_INDEX : MediaTypes.DockerManifestList;
  const index = {
    schemaVersion: 2 as const,
    mediaType,
    manifests: images.map((i) => i.manifest.descriptor),
    ...(annotations ? { annotations: sortedRecord(annotations) } : {}),
  };
  return jsonBlob(index, mediaType, {}, goIndentedJson({ ...index, manifests: index.manifests.map(descriptorInGoOrder) }));
}
