import { parseReference } from '@buildyard/oci';
import type { AssembledImage, JsonBlob } from '@buildyard/solver';
import type { RegistryClient } from '@buildyard/oci';
import { unreportedStep, type Exporter, type ExportStep } from './Exporter.js';

/**
 * Pushes every layer and document, then each tag; returns name@digest per tag. Layers that
 * came from a base image in the same registry are mounted from its repository instead of
 * uploaded (the registry answers with an upload when it cannot mount).
 */
export async function pushImage(registry: RegistryClient, built: AssembledImage[], index: JsonBlob<unknown> | undefined, names: string[], baseImages: string[] = [], step: ExportStep = unreportedStep, attestations: AssembledImage[] = [], byDigest = false): Promise<string[]> {
  const pushed: string[] = [];
  // Attestation manifests are pushed like images (their statements are their layers); the index lists them.
  const images = [...built, ...attestations];
  for (const name of names) {
    const ref = parseReference(name);
    const repo = { registry: ref.registry, repository: ref.repository };
    const mountFrom = baseImages.map((b) => parseReference(b)).find((b) => b.registry === ref.registry && b.repository !== ref.repository)?.repository;
    const top = index ?? built[0].manifest;
    // push-by-digest: the image goes under its digest only, no tag moves (BuildKit's util/push).
    const tag = ref.tag ?? 'latest';
    const target = byDigest ? { ...repo, digest: top.descriptor.digest } : { ...repo, tag };
    const shown = byDigest ? `${ref.registry}/${ref.repository}` : `${ref.registry}/${ref.repository}:${tag}`;
    // A no-change rebuild: the tag already names this exact manifest, and a registry accepts a
    // manifest only once its blobs and children are there, so one HEAD answers the whole push.
    const existing = await registry.headManifest(target).catch(() => undefined);
    if (existing?.digest === top.descriptor.digest) {
      pushed.push(`${ref.registry}/${ref.repository}@${existing.digest}`);
      continue;
    }
    // Phases as BuildKit's push reports them: blobs, then the manifests (the children first).
    // Within a phase everything goes at once, as containerd's push handler sends it (each is a
    // round trip to the registry, most blobs only a HEAD). A blob several images share goes once.
    await step('pushing layers', async () => {
      const layers = new Map(images.flatMap((image) => image.layers.map((l) => [l.digest, l] as const)));
      const configs = new Map(images.map((image) => [image.config.descriptor.digest, image.config] as const));
      await Promise.all([
        ...[...layers.values()].map((l) => registry.pushBlob(repo, l, undefined, mountFrom ? { mountFrom } : {})),
        ...[...configs.values()].map((c) => registry.pushBlob(repo, c.descriptor, c.bytes)),
      ]);
    });
    const digest = await step(`pushing manifest for ${shown}@${top.descriptor.digest}`, async () => {
      if (index) await Promise.all(images.map((image) => registry.putManifest({ ...repo, digest: image.manifest.descriptor.digest }, image.manifest.bytes, image.manifest.descriptor.mediaType)));
      return registry.putManifest(target, top.bytes, top.descriptor.mediaType);
    });
    pushed.push(`${ref.registry}/${ref.repository}@${digest}`);
  }
  return pushed;
}

/** `type=image` (kept in the builder's store, pushed with push=true) and `type=registry`. */
export const imageExporter: Exporter = {
  delivery: 'build',
  async *export(output, source) {
    if (!output.push) return [];
    if (!source.registry) throw new Error(`internal error: output ${output.index + 1} pushes but the export has no registry client`);
    return pushImage(source.registry, source.images, source.index, output.names, source.baseImages, source.step, source.attestations?.images, output.pushByDigest);
  },
};
