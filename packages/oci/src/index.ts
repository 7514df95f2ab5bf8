// Public API of @buildyard/oci: references, platforms (graph's rules), media types and
// descriptors, the registry client with its retry loop, credentials, OCI layout and docker archive.
export { type Digest, isDigest, assertDigest, sha256Digest, digestHex, Digester } from './digest.js';
export {
  FsContentStore, DigestMismatchError, BlobNotFoundError,
  type BlobInfo, type BlobListing, type ContentWriter, type WriterOptions,
} from './FsContentStore.js';
export {
  parseReference, formatReference, registryApiHost, withDigest, InvalidReferenceError,
  DEFAULT_REGISTRY, DEFAULT_TAG, LAYOUT_REF_PREFIX, type ImageReference, type RepositoryReference,
} from './reference.js';
export { MediaTypes, type MediaType, isIndexMediaType, isManifestMediaType, isLayerMediaType, layerMediaTypeFor, MANIFEST_ACCEPT } from './mediaTypes.js';
export {
  Annotations, isImageIndex, AttestationReferenceType, AttestationPlatform, isAttestationDescriptor,
  type Platform, type Descriptor, type ImageIndex, type ImageManifest, type ImageConfig, type ContainerConfig,
  type HistoryEntry, type AnyManifest,
} from './types.js';
export {
  normalizePlatform, parsePlatform, formatPlatform, platformMatches, compatiblePlatforms, selectManifest, hostPlatform,
  InvalidPlatformError, NoMatchingPlatformError,
} from './platform.js';
export {
  loadDockerConfig, parseDockerConfig, dockerConfigPath, normalizeRegistryHost, credentialsFor, credentialsFromLogins,
  type Credentials, type CredentialMap, type RegistryLogin,
} from './credentials.js';
export { parseWwwAuthenticate, type AuthChallenge } from './authChallenge.js';
export {
  RegistryClient, RegistryError, isLoopbackHost,
  type RegistryClientOptions, type CallOptions, type FetchedManifest, type ResolvedImage, type BlobSource,
  type PushBlobOptions, type PushBlobResult,
} from './RegistryClient.js';
export { descriptorInGoOrder, goEscapes, goIndentedJson, goString, sortedRecord } from './goJson.js';
export {
  writeOciLayout, ociLayoutFiles, ociLayoutEntry, collectBlobs,
  type BlobReader, type OciLayoutOptions,
} from './archiveWriters.js';
export { withRetries, describeError, RetriesExhaustedError, type RetryOptions, type Attempt } from './retry.js';
export { readLayerFiles, type LayerReader } from './layerFiles.js';
export { realDirChecker } from './realDirs.js';
export { ProvenBlobs, type BlobProofs } from './ProvenBlobs.js';
export { createTarExtract, paxXattrs, RAW_PAX, tarExtract, type TarEntryHandler, type TarHeader } from './paxExtract.js';
export {
  AddressRefusedError, vettedLookup, refusedLiteral, vettedFetch, addressRefusal, RegistryNetwork, TenantRegistryNetworks, type AddressPolicy,
} from './addressPolicy.js';
export {
  RepositoryPolicy, RepositoryRefusedError, type RepositoryAccess, type RepositoryGuard, type RepositoryPolicyOptions,
} from './repositoryPolicy.js';
