// Attestations as BuildKit attaches them (docs/attestations/attestation-storage.md): each
// platform's statements (in-toto v0.1, subjects = the image manifest under each name) are the
// layers of one attestation manifest (media type application/vnd.in-toto+json, annotated with
// in-toto.io/predicate-type), listed in the image index after the images with platform
// unknown/unknown and vnd.docker.reference.{type,digest} pointing at its image. Filesystem
// outputs (local, tar) get the statements as files beside each platform's root instead
// (provenance.json, sbom.spdx.json), their subjects being the exported files.
import { Annotations, AttestationPlatform, AttestationReferenceType, MediaTypes, goEscapes, goIndentedJson, sha256Digest, type Descriptor } from '@buildyard/oci';
import type { KeyValueSpec } from '@buildyard/proto';
import { jsonBlob, type AssembledImage } from '@buildyard/solver';
import { SLSA_PROVENANCE_V02, type ProvenanceMode } from './provenance.js';
import { SPDX_DOCUMENT } from './sbom.js';

export const IN_TOTO_STATEMENT_V01 = 'https://in-toto.io/Statement/v0.1';

export interface AttestationOptions {
  provenance?: ProvenanceMode & { filename: string; inlineOnly: boolean };
  sbom?: { filename: string };
}

const bool = (v: string | undefined, what: string): boolean => {
  if (v === undefined || v === '') return false;
  if (['true', '1'].includes(v.toLowerCase())) return true;
  if (['false', '0'].includes(v.toLowerCase())) return false;
  throw new Error(`${what}: "${v.slice(0, 40)}" is not a boolean; write true or false`);
};

/**
 * The attestations a build asks for, from `attest:TYPE` frontend attributes (buildx sends
 * `type=provenance,mode=max`; buildctl `mode=max`), given here as specs of that type.
 * BuildKit's defaults: provenance mode=max; a disabled one is dropped.
 */
export function parseAttests(specs: readonly KeyValueSpec[]): AttestationOptions {
  const out: AttestationOptions = {};
  for (const spec of specs) {
    const attrs = { ...spec.attrs };
    if (attrs.type !== undefined && attrs.type !== spec.type) throw new Error(`attestation "${spec.type.slice(0, 40)}" has type=${attrs.type.slice(0, 40)}: the two must agree`);
    if (bool(attrs.disabled, `attest ${spec.type} disabled`)) continue;
    if (spec.type === 'provenance') {
      const mode = attrs.mode || 'max';
      if (mode !== 'min' && mode !== 'max') throw new Error(`attest provenance mode "${mode.slice(0, 40)}": use mode=min or mode=max`);
      if (attrs.version && attrs.version !== 'v0.2') throw new Error(`attest provenance version "${attrs.version.slice(0, 40)}": only SLSA v0.2 is produced; drop version= or write version=v0.2`);
      out.provenance = { mode, builderId: attrs['builder-id'] ?? '', filename: attrs.filename || 'provenance.json', inlineOnly: bool(attrs['inline-only'], 'attest provenance inline-only') };
    } else if (spec.type === 'sbom') {
      if (attrs.generator) throw new Error(`attest sbom generator "${attrs.generator.slice(0, 100)}": scanner images are not supported; drop generator= (the SBOM is read from the image's dpkg/apk databases)`);
      out.sbom = { filename: 'sbom.spdx.json' };
    } else {
      throw new Error(`unknown attestation type "${spec.type.slice(0, 40)}": use provenance or sbom`);
    }
  }
  return out;
}

/** Parses one `attest:TYPE` attribute value (CSV of key=value, as buildx and buildctl write it). */
export function attestSpec(type: string, value: string): KeyValueSpec {
  const attrs: Record<string, string> = {};
  for (const field of value.split(',').map((f) => f.trim()).filter(Boolean)) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw new Error(`attest:${type.slice(0, 40)} "${value.slice(0, 100)}": write key=value pairs separated by commas (e.g. mode=max)`);
    attrs[field.slice(0, eq).trim().toLowerCase()] = field.slice(eq + 1);
  }
  return { type, attrs };
}

export interface Subject {
  name: string;
  digest: { sha256: string };
}

/** One predicate of one platform, before it has subjects. */
export interface PlatformAttestation {
  predicateType: string;
  predicate: Record<string, unknown>;
  /** The file it becomes in local/tar outputs. */
  filename: string;
  /** Only image outputs carry it (attest provenance inline-only=true, buildx's default). */
  inlineOnly: boolean;
}

export function inTotoStatement(att: PlatformAttestation, subject: Subject[]): Record<string, unknown> {
  return { _type: IN_TOTO_STATEMENT_V01, predicateType: att.predicateType, subject, predicate: att.predicate };
}

export const subjectDigest = (digest: string): { sha256: string } => ({ sha256: digest.replace(/^sha256:/, '') });


/** An attestation manifest and the statement blobs it holds; `layers` are the statements. */
export interface AttestationImage extends AssembledImage {
  statements: Array<{ descriptor: Descriptor; bytes: Buffer }>;
}

/** The artifact type of an attestation manifest in its OCI artifact form. */
export const ATTESTATION_ARTIFACT_TYPE = 'application/vnd.docker.attestation.manifest.v1+json';

/**
 * The attestation manifest of one image: SBOM first, then provenance (the order BuildKit's
 * frontend result and solver give), each statement one layer. As current BuildKit writes it
 * (its exporter's oci-artifact default): an OCI artifact whose config is the empty descriptor
 * and whose subject is the image, so registries list it among the image's referrers; with
 * `ociArtifact` false (oci-artifact=false) an image config naming the statements, as before.
 */
export function attestationImage(image: AssembledImage, atts: readonly PlatformAttestation[], subjects: Subject[], ociArtifact = true): AttestationImage {
  const ordered = [...atts].sort((a, b) => rank(a) - rank(b));
  const statements = ordered.map((att) => {
    const bytes = Buffer.from(goEscapes(JSON.stringify(inTotoStatement(att, subjects))));
    const descriptor: Descriptor = { mediaType: MediaTypes.InToto, digest: sha256Digest(bytes), size: bytes.length, annotations: { [Annotations.InTotoPredicateType]: att.predicateType } };
    return { descriptor, bytes };
  });
  const config = ociArtifact
    ? jsonBlob({}, MediaTypes.OciEmpty, { data: EMPTY_JSON.toString('base64') }, EMPTY_JSON)
    : jsonBlob({ architecture: 'unknown', os: 'unknown', config: {}, rootfs: { type: 'layers', diff_ids: statements.map((s) => s.descriptor.digest) } }, MediaTypes.OciConfig);
  const layers = statements.map((s) => s.descriptor);
  const { mediaType, digest, size } = image.manifest.descriptor;
  const manifestJson = {
    schemaVersion: 2 as const, mediaType: MediaTypes.OciManifest, ...(ociArtifact ? { artifactType: ATTESTATION_ARTIFACT_TYPE } : {}),
    config: config.descriptor, layers, ...(ociArtifact ? { subject: { mediaType, digest, size } } : {}),
  };
  const manifest = jsonBlob(manifestJson, MediaTypes.OciManifest, {
    annotations: { [Annotations.DockerReferenceDigest]: image.manifest.descriptor.digest, [Annotations.DockerReferenceType]: AttestationReferenceType },
    platform: { ...AttestationPlatform },
  }, goIndentedJson(manifestJson));
  return { platform: 'unknown/unknown', config: config as unknown as AssembledImage['config'], manifest, layers, statements };
}

const EMPTY_JSON = Buffer.from('{}');

const rank = (a: PlatformAttestation) => (a.predicateType === SPDX_DOCUMENT ? 0 : a.predicateType === SLSA_PROVENANCE_V02 ? 1 : 2);

/** The statements of a filesystem output's platform root, as the files BuildKit writes there (indented JSON). */
export function attestationFiles(atts: readonly PlatformAttestation[], subjects: Subject[]): Array<{ path: string; data: Buffer }> {
  return atts.filter((a) => !a.inlineOnly).map((att) => ({ path: att.filename, data: Buffer.from(JSON.stringify(inTotoStatement(att, subjects), null, 2)) }));
}
