// Media types of the OCI image spec and Docker's v2 schema 2 formats.
export const MediaTypes = {
  OciIndex: 'application/vnd.oci.image.index.v1+json',
  OciManifest: 'application/vnd.oci.image.manifest.v1+json',
  OciConfig: 'application/vnd.oci.image.config.v1+json',
  OciLayer: 'application/vnd.oci.image.layer.v1.tar',
  OciLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  OciLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  OciLayerNondistributable: 'application/vnd.oci.image.layer.nondistributable.v1.tar',
  OciLayerNondistributableGzip: 'application/vnd.oci.image.layer.nondistributable.v1.tar+gzip',
  OciLayerNondistributableZstd: 'application/vnd.oci.image.layer.nondistributable.v1.tar+zstd',
  OciEmpty: 'application/vnd.oci.empty.v1+json',
  DockerManifestList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  DockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  DockerConfig: 'application/vnd.docker.container.image.v1+json',
  DockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  DockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  DockerLayerZstd: 'application/vnd.docker.image.rootfs.diff.tar.zstd',
  DockerForeignLayer: 'application/vnd.docker.image.rootfs.foreign.diff.tar',
  DockerForeignLayerGzip: 'application/vnd.docker.image.rootfs.foreign.diff.tar.gzip',
  /** BuildKit's cache config media type (cache manifests are OCI indexes holding one). */
  BuildkitCacheConfig: 'application/vnd.buildkit.cacheconfig.v0',
  /** An in-toto statement (provenance, SBOM): the layer of an attestation manifest. */
  InToto: 'application/vnd.in-toto+json',
} as const;

export type MediaType = (typeof MediaTypes)[keyof typeof MediaTypes];

export function isIndexMediaType(mt: string | undefined): boolean {
  return mt === MediaTypes.OciIndex || mt === MediaTypes.DockerManifestList;
}

export function isManifestMediaType(mt: string | undefined): boolean {
  return mt === MediaTypes.OciManifest || mt === MediaTypes.DockerManifest;
}

export function isLayerMediaType(mt: string | undefined): boolean {
  return mt !== undefined && (mt.startsWith('application/vnd.oci.image.layer.') || mt.startsWith('application/vnd.docker.image.rootfs.'));
}

/** The Accept header for manifest requests: every manifest/index format we understand. */
export const MANIFEST_ACCEPT = [
  MediaTypes.OciIndex,
  MediaTypes.OciManifest,
  MediaTypes.DockerManifestList,
  MediaTypes.DockerManifest,
].join(', ');

const M = MediaTypes;
/** BuildKit's util/compression toOCILayerType and toDockerLayerType: a layer's type in either family. */
const OCI_LAYER_TYPE: Record<string, string> = {
  [M.OciLayer]: M.OciLayer, [M.DockerLayer]: M.OciLayer, [M.OciLayerGzip]: M.OciLayerGzip, [M.DockerLayerGzip]: M.OciLayerGzip,
  [M.OciLayerZstd]: M.OciLayerZstd, [M.DockerLayerZstd]: M.OciLayerZstd,
  [M.OciLayerNondistributable]: M.OciLayerNondistributable, [M.DockerForeignLayer]: M.OciLayerNondistributable,
  [M.OciLayerNondistributableGzip]: M.OciLayerNondistributableGzip, [M.DockerForeignLayerGzip]: M.OciLayerNondistributableGzip,
  [M.OciLayerNondistributableZstd]: M.OciLayerNondistributableZstd,
};
const DOCKER_LAYER_TYPE: Record<string, string> = {
  [M.OciLayer]: M.DockerLayer, [M.DockerLayer]: M.DockerLayer, [M.OciLayerGzip]: M.DockerLayerGzip, [M.DockerLayerGzip]: M.DockerLayerGzip,
  [M.OciLayerZstd]: M.DockerLayerZstd, [M.DockerLayerZstd]: M.DockerLayerZstd,
  [M.OciLayerNondistributable]: M.DockerForeignLayer, [M.DockerForeignLayer]: M.DockerForeignLayer,
  [M.OciLayerNondistributableGzip]: M.DockerForeignLayerGzip, [M.DockerForeignLayerGzip]: M.DockerForeignLayerGzip,
};

/** A layer media type in the manifest's family, as BuildKit's exporter converts them; unknown types stay. */
export function layerMediaTypeFor(mediaType: string, oci: boolean): string {
  return (oci ? OCI_LAYER_TYPE : DOCKER_LAYER_TYPE)[mediaType] ?? mediaType;
}
