import { PassThrough } from 'node:stream';
import { Annotations, formatReference, ociLayoutFiles, parseReference, writeOciLayout, type Descriptor } from '@buildyard/oci';
import type { Exporter, ParsedOutput } from './Exporter.js';
import { epochSeconds } from './filesystemExporter.js';

/**
 * The index.json entries of an archive, as BuildKit's oci exporter gives them to containerd's
 * archive writer: the image (or index) stamped with its creation time (the epoch when there is
 * one, RFC 3339 seconds), once per name, each name normalised (docker.io/library/app:latest)
 * and its tag as the OCI ref.name.
 */
function layoutEntries(top: Descriptor, names: string[], created: string, unnamedTag?: string): Descriptor[] {
  const stamped = { ...top, annotations: { ...top.annotations, [Annotations.Created]: created } };
  if (names.length === 0) return [unnamedTag ? { ...stamped, annotations: { ...stamped.annotations, [Annotations.RefName]: unnamedTag } } : stamped];
  return names.map((name) => {
    const ref = parseReference(name);
    const refName = ref.digest ? `${ref.tag ?? ''}@${ref.digest}` : ref.tag ?? 'latest';
    return { ...stamped, annotations: { ...stamped.annotations, [Annotations.ContainerdImageName]: formatReference(ref), [Annotations.RefName]: refName } };
  });
}

/**
 * The creation time BuildKit's oci/docker exporters stamp on the image's entry (and on the
 * descriptor they answer with): the output's or the build's epoch, else now, RFC 3339 seconds.
 */
export function archiveCreated(output: Pick<ParsedOutput, 'sourceDateEpoch'>, sourceDateEpoch: string | undefined): string {
  const epoch = output.sourceDateEpoch ?? epochSeconds(sourceDateEpoch);
  return new Date(epoch !== undefined ? epoch * 1000 : Date.now()).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/**
 * `type=oci` (an OCI layout tar) and `type=docker` (the same with `docker load`'s manifest.json,
 * one platform's image), streamed to the client, as BuildKit's exporters write them; with
 * `tar=false`, the layout's files for the client to add to its directory.
 */
export const archiveExporter: Exporter = {
  delivery: 'client',
  async *export(output, { images, index, blobs, sourceDateEpoch }) {
    if (output.type === 'docker' && images.length > 1) {
      throw new Error('type=docker holds one platform (docker load cannot import an index): use type=oci, or build one --platform');
    }
    const created = archiveCreated(output, sourceDateEpoch);
    // One platform's image (its descriptor says its platform); an index (platforms, attestations)
    // says none. type=docker has an index when the image has attestations: current BuildKit's
    // docker exporter keeps them, and its manifest.json names the image inside.
    const top = index ? index.descriptor : images[0].manifest.descriptor;
    if (output.layoutDir) {
      // Into the client's layout directory, as BuildKit's client store: an unnamed image is tagged latest.
      for await (const file of ociLayoutFiles({ index: { schemaVersion: 2, manifests: layoutEntries(top, output.names, created, 'latest') }, store: blobs })) {
        yield { path: file.path, mode: 0o100000 | file.mode, content: file.content };
      }
      return [];
    }
    const stream = new PassThrough();
    const writing = writeOciLayout(stream, { index: { schemaVersion: 2, manifests: layoutEntries(top, output.names, created) }, store: blobs, dockerManifest: output.type === 'docker' });
    writing.catch((err) => stream.destroy(err));
    yield { path: '', mode: 0o644, content: stream };
    return [];
  },
};
