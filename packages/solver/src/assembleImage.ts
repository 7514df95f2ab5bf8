import { createHash } from 'node:crypto';
import type { ImageConfigFile } from '@buildyard/graph';
import type { StageResult } from './StageResult.js';

export const MEDIA_TYPE_MANIFEST = 'application/vnd.oci.image.manifest.v1+json';
export const MEDIA_TYPE_INDEX = 'application/vnd.oci.image.index.v1+json';
export const MEDIA_TYPE_CONFIG = 'application/vnd.oci.image.config.v1+json';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string; variant?: string };
  annotations?: Record<string, string>;
}

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

function jsonBlob<T>(json: T, mediaType: string, extra: Partial<Descriptor> = {}): JsonBlob<T> {
  const bytes = Buffer.from(JSON.stringify(json));
  return { json, bytes, descriptor: { mediaType, digest: 'sha256:' + createHash('sha256').update(bytes).digest('hex'), size: bytes.length, ...extra } };
}

export function platformObject(platform: string): { architecture: string; os: string; variant?: string } {
  const [os, architecture, variant] = platform.split('/');
  return variant ? { architecture, os, variant } : { architecture, os };
}

/**
 * The image config and manifest of one platform's target stage. `created` is fixed by
 * SOURCE_DATE_EPOCH when given so that rebuilds give identical digests.
 */
export function assembleImage(result: StageResult, options: { created?: string; labels?: Record<string, string>; annotations?: Record<string, string> } = {}): AssembledImage {
  const created = options.created ?? new Date().toISOString();
  const stageConfig = { ...result.config };
  if (options.labels && Object.keys(options.labels).length > 0) stageConfig.Labels = { ...stageConfig.Labels, ...options.labels };
  const config = jsonBlob<ImageConfigFile>({
    created,
    ...platformObject(result.platform),
    config: stageConfig,
    rootfs: { type: 'layers', diff_ids: result.layers.map((l) => l.diffID) },
    history: result.history.map((h) => ({ created: h.created ?? created, ...h })),
  }, MEDIA_TYPE_CONFIG);
  const layers = result.layers.map((l) => ({ mediaType: l.mediaType, digest: l.digest, size: l.size }));
  const manifest = jsonBlob({
    schemaVersion: 2 as const,
    mediaType: MEDIA_TYPE_MANIFEST,
    config: config.descriptor,
    layers,
    ...(options.annotations ? { annotations: options.annotations } : {}),
  }, MEDIA_TYPE_MANIFEST, { platform: platformObject(result.platform) });
  return { platform: result.platform, config, manifest, layers };
}

/** An OCI image index over several platforms' manifests (room left for attestation manifests). */
export function assembleIndex(images: AssembledImage[], annotations?: Record<string, string>): JsonBlob<{ schemaVersion: 2; mediaType: string; manifests: Descriptor[]; annotations?: Record<string, string> }> {
  return jsonBlob({
    schemaVersion: 2 as const,
    mediaType: MEDIA_TYPE_INDEX,
    manifests: images.map((i) => i.manifest.descriptor),
    ...(annotations ? { annotations } : {}),
  }, MEDIA_TYPE_INDEX);
}
