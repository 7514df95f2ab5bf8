import { PassThrough } from 'node:stream';
import { MediaTypes, parseReference, writeDockerArchive, writeOciLayout } from '@buildyard/oci';
import type { Exporter } from './Exporter.js';

/** `type=oci` (an OCI layout tar) and `type=docker` (a `docker load` archive), streamed to the client. */
export const archiveExporter: Exporter = {
  delivery: 'client',
  async *export(output, { images, index, blobs }) {
    if (output.type === 'docker' && images.length > 1) {
      throw new Error('type=docker holds one platform (docker load cannot import an index): use type=oci, or build one --platform');
    }
    const stream = new PassThrough();
    const top = index ? index.descriptor : images[0].manifest.descriptor;
    const name = output.names[0];
    const writing = output.type === 'oci'
      ? writeOciLayout(stream, {
        index: { schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: name ? { 'org.opencontainers.image.ref.name': parseReference(name).tag ?? 'latest', 'io.containerd.image.name': name } : undefined }] },
        store: blobs,
      })
      : writeDockerArchive(stream, images.map((i) => ({ repoTags: output.names, config: i.config.descriptor, layers: i.layers })), blobs);
    writing.catch((err) => stream.destroy(err));
    yield { path: '', mode: 0o644, content: stream };
    return [];
  },
};
