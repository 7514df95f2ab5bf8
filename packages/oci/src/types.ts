// OCI image-spec and Docker v2 schema 2 types, written by hand: there is no maintained
// TypeScript package for them (the Go structs in opencontainers/image-spec are the reference).
import type { Digest } from './digest.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
}

export interface Descriptor {
  mediaType: string;
  digest: Digest;
  size: number;
  urls?: string[];
  annotations?: Record<string, string>;
  /** The content itself, base64 (an empty config: "e30="). */
  data?: string;
  platform?: Platform;
  artifactType?: string;
}

/** OCI image index or Docker manifest list (same shape; mediaType tells them apart). */
export interface ImageIndex {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  manifests: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

/** OCI image manifest or Docker manifest v2 schema 2. */
export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  artifactType?: string;
  config: Descriptor;
  layers: Descriptor[];
  subject?: Descriptor;
  annotations?: Record<string, string>;
}

// The image-config `config` section and history entries are the stage graph's own types, so a
// base image's config and a built stage's config are one shape.
export type { ImageConfig as ContainerConfig, HistoryEntry } from '@buildyard/graph';
import type { ImageConfig as ContainerConfig, HistoryEntry } from '@buildyard/graph';

export interface ImageConfig {
  created?: string;
  author?: string;
  architecture: string;
  os: string;
  variant?: string;
  'os.version'?: string;
  'os.features'?: string[];
  config?: ContainerConfig;
  rootfs: { type: 'layers'; diff_ids: Digest[] };
  history?: HistoryEntry[];
}

export type AnyManifest = ImageIndex | ImageManifest;

export function isImageIndex(m: AnyManifest): m is ImageIndex {
  return Array.isArray((m as ImageIndex).manifests);
}

export const Annotations = {
  RefName: 'org.opencontainers.image.ref.name',
  Created: 'org.opencontainers.image.created',
  /** containerd/docker name kept next to ref.name in OCI layouts. */
  ContainerdImageName: 'io.containerd.image.name',
  DockerReferenceType: 'vnd.docker.reference.type',
  DockerReferenceDigest: 'vnd.docker.reference.digest',
  /** On an in-toto layer: the statement's predicateType. */
  InTotoPredicateType: 'in-toto.io/predicate-type',
} as const;

/** BuildKit's attestation storage: `vnd.docker.reference.type` of an attestation manifest. */
export const AttestationReferenceType = 'attestation-manifest';

/** The platform of attestation manifests in an index, so platform selection never picks them. */
export const AttestationPlatform: Platform = { architecture: 'unknown', os: 'unknown' };

/** An index entry that is BuildKit's attestation manifest for another entry (not an image). */
export function isAttestationDescriptor(d: Descriptor): boolean {
  return d.annotations?.[Annotations.DockerReferenceType] === AttestationReferenceType;
}
