// A build's attestations, made once after its images are assembled and shared by every output:
// the predicates of each platform, and for image outputs the attestation manifests (stored in
// the content store beside the images, so pushes and OCI layouts find them).
import type { BuildPlan } from '@buildyard/graph';
import type { StageResult } from '@buildyard/contracts';
import type { FsContentStore } from '@buildyard/oci';
import type { AssembledImage } from '@buildyard/solver';
import { unreportedStep, type ExportStep, type ParsedOutput } from './Exporter.js';
import { attestationImage, subjectDigest, type AttestationImage, type AttestationOptions, type PlatformAttestation, type Subject } from './attestations.js';
import { SLSA_PROVENANCE_V02, imagePurl, provenancePredicate, type ProvenanceBuild } from './provenance.js';
import { SPDX_DOCUMENT, imagePackages, spdxDocument } from './sbom.js';

/** What exporters receive: attestation manifests for image outputs, predicates for filesystem outputs. */
export interface BuildAttestations {
  /** One attestation manifest per image, in the images' order. */
  images: AttestationImage[];
  /** Each platform's predicates (without subjects; local/tar outputs add the files as subjects). */
  byPlatform: Map<string, PlatformAttestation[]>;
}

export interface AttestationInputs {
  options: AttestationOptions;
  /** oci-artifact (default true): attestation manifests as OCI artifacts whose subject is their image. */
  ociArtifact?: boolean;
  build: ProvenanceBuild;
  plan: BuildPlan;
  result(platform: string, stageId: string): StageResult | undefined;
  /** The image names of the build's image outputs: each gives a subject. */
  names: string[];
  blobs: FsContentStore;
  /** Reports each stored attestation manifest as BuildKit's exporter names it. */
  step?: ExportStep;
}

/**
 * Whether any output carries the attestations: image, oci and docker outputs hold them inline;
 * local and tar ones only those not inline-only. A build with neither makes none, so its
 * result stays the plain image (buildx asks for provenance on every build).
 */
export function wantsAttestations(o: AttestationOptions, outputs: ReadonlyArray<Pick<ParsedOutput, 'type'>>): boolean {
  if (o.provenance === undefined && o.sbom === undefined) return false;
  const filesToo = o.sbom !== undefined || (o.provenance !== undefined && !o.provenance.inlineOnly);
  return outputs.some((out) => (out.type === 'local' || out.type === 'tar' ? filesToo : true));
}

/** BuildKit's default subjects: one per image name, `pkg:docker/NAME@TAG?platform=..`, the manifest digest. */
export function imageSubjects(names: readonly string[], image: AssembledImage): Subject[] {
  return names.map((name) => ({ name: imagePurl(name, image.platform), digest: subjectDigest(image.manifest.descriptor.digest) }));
}

export async function makeAttestations(inputs: AttestationInputs, images: readonly AssembledImage[]): Promise<BuildAttestations> {
  const byPlatform = new Map<string, PlatformAttestation[]>();
  const out: AttestationImage[] = [];
  for (const image of images) {
    const plan = inputs.plan.platforms.find((p) => p.platform === image.platform);
    if (!plan) throw new Error(`internal error: no plan for the image of ${image.platform}`);
    const atts: PlatformAttestation[] = [];
    if (inputs.options.sbom) {
      const found = await imagePackages(inputs.blobs, image.layers);
      atts.push({ predicateType: SPDX_DOCUMENT, predicate: spdxDocument({ name: inputs.names[0] ?? 'image', platform: image.platform, digest: image.manifest.descriptor.digest }, found, inputs.build.finishedOn), filename: inputs.options.sbom.filename, inlineOnly: false });
    }
    const prov = inputs.options.provenance;
    if (prov) {
      atts.push({ predicateType: SLSA_PROVENANCE_V02, predicate: provenancePredicate(inputs.build, plan, (stageId) => inputs.result(plan.platform, stageId), prov), filename: prov.filename, inlineOnly: prov.inlineOnly });
    }
    byPlatform.set(image.platform, atts);
    const att = attestationImage(image, atts, imageSubjects(inputs.names, image), inputs.ociArtifact ?? true);
    await (inputs.step ?? unreportedStep)(`exporting attestation manifest ${att.manifest.descriptor.digest}`, async () => {
      // At once: each put waits for its fsync, which the disk's journal commits together.
      await Promise.all([...att.statements, att.config, att.manifest].map((d) => inputs.blobs.put(d.bytes, d.descriptor.digest)));
    });
    out.push(att);
  }
  return { images: out, byPlatform };
}
