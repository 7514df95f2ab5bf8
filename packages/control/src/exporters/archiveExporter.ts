import { PassThrough } from 'node:stream';
import { Annotations, formatReference, parseReference, writeOciLayout, type Descriptor } from '@buildyard/oci';
import type { Exporter } from './Exporter.js';
import { epochSeconds } from './filesystemExporter.js';

/**
 * The index.json entries of an archive, as BuildKit's oci exporter gives them to containerd's
 * archive writer: the image (or index) stamped with its creation time (the epoch when there is
 * one, RFC 3339 seconds), once per name, each name normalised (docker.io/library/app:latest)
 * and its tag as the OCI ref.name.
 */
function layoutEntries(top: Descriptor, names: string[], created: string): Descriptor[] {
  const stamped = { ...top, annotations: { ...top.annotations, [Annotations.Created]: created } };
  if (names.length === 0) return [stamped];
  return names.map((name) => {
    const ref = parseReference(name);
    const refName = ref.digest ? `${ref.tag ?? ''}@${ref.digest}` : ref.tag ?? 'latest';
    return { ...stamped, annotations: { ...stamped.annotations, [Annotations.ContainerdImageName]: formatReference(ref), [Annotations.RefName]: refName } };
  });
}

/**
 * `type=oci` (an OCI layout tar) and `type=docker` (the same with `docker load`'s manifest.json,
 * one platform's image), streamed to the client, as BuildKit's exporters write them.
 */
export const archiveExporter: Exporter = {
  delivery: 'client',
  async *export(output, { images, index, blobs, sourceDateEpoch }) {
    if (output.type === 'docker' && images.length > 1) {
      throw new Error('type=docker holds one platform (docker load cannot import an index): use type=oci, or build one --platform');
    }
    const epoch = output.sourceDateEpoch ?? epochSeconds(sourceDateEpoch);
    const created = new Date(epoch !== undefined ? epoch * 1000 : Date.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
    // One platform's image (its descriptor says its platform); an index (platforms, attestations) says none.
    const top = output.type === 'oci' && index ? index.descriptor : images[0].manifest.descriptor;
    const stream = new PassThrough();
    const writing = writeOciLayout(stream, { index: { schemaVersion: 2, manifests: layoutEntries(top, output.names, created) }, store: blobs, dockerManifest: output.type === 'docker' });
    writing.catch((err) => stream.destroy(err));
    yield { path: '', mode: 0o644, content: stream };
    return [];
  },
};
