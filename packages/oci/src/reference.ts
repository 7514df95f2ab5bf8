// Image references with Docker's defaults, parsed by @swimlane/docker-reference (the
// distribution/reference grammar; its qualified-name RegExp replaced by a linear reader, see
// qualifiedName.ts) and normalised into a plain record.
import dockerReference from '@swimlane/docker-reference';
import { parseQualifiedName } from './qualifiedName.js';
import { isDigest, type Digest } from './digest.js';

export const DEFAULT_REGISTRY = 'docker.io';
export const DEFAULT_TAG = 'latest';
/**
 * BuildKit's oci-layout source identifiers (`oci-layout://NAME@DIGEST`): an image read from a
 * client's OCI layout, not from a registry. Never a valid reference, so a registry is never asked.
 */
export const LAYOUT_REF_PREFIX = 'oci-layout://';

export interface ImageReference {
  /** Registry host[:port] as written by users; `docker.io` for Docker Hub. */
  registry: string;
  /** Repository path, e.g. `library/busybox`. */
  repository: string;
  /** Tag; `latest` is filled in when neither tag nor digest is given. */
  tag?: string;
  digest?: Digest;
}

/** A repository without tag/digest: what blob operations address. */
export type RepositoryReference = Pick<ImageReference, 'registry' | 'repository'>;

export class InvalidReferenceError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid image reference "${input}": ${reason}; expected [registry/]repository[:tag][@sha256:digest]`);
    this.name = 'InvalidReferenceError';
  }
}

/**
 * Parses `busybox`, `docker.io/library/busybox:1.36`, `127.0.0.1:5000/x/y@sha256:...`.
 * Docker defaults apply: registry docker.io, `library/` for single-component Hub names, tag latest
 * when no tag and no digest is given.
 */
export function parseReference(input: string, options: { defaultTag?: boolean } = {}): ImageReference {
  const s = input.trim();
  if (s === '') throw new InvalidReferenceError(input, 'empty string');
  let parsed;
  try {
    parsed = dockerReference.parseFamiliarName(s, parseQualifiedName);
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^invalid reference format:?\s*/, '') || 'invalid format' : 'invalid format';
    throw new InvalidReferenceError(input, reason);
  }
  const registry = parsed.domain ?? DEFAULT_REGISTRY;
  const repository = parsed.repository;
  if (!repository) throw new InvalidReferenceError(input, 'missing repository name');
  const ref: ImageReference = { registry, repository };
  if (parsed.tag) ref.tag = parsed.tag;
  if (parsed.digest) {
    if (!isDigest(parsed.digest)) throw new InvalidReferenceError(input, `unsupported digest ${parsed.digest} (only sha256)`);
    ref.digest = parsed.digest;
  }
  if (!ref.tag && !ref.digest && options.defaultTag !== false) ref.tag = DEFAULT_TAG;
  return ref;
}

/** Fully qualified form: `docker.io/library/busybox:latest`, `host/repo@sha256:...`, or both. */
export function formatReference(ref: ImageReference, options: { familiar?: boolean } = {}): string {
  let name = `${ref.registry}/${ref.repository}`;
  if (options.familiar && ref.registry === DEFAULT_REGISTRY) {
    name = ref.repository.startsWith('library/') && ref.repository.split('/').length === 2 ? ref.repository.slice(8) : ref.repository;
  }
  return name + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** The host the registry API lives on (Docker Hub's API is not on docker.io). */
export function registryApiHost(registry: string): string {
  return registry === DEFAULT_REGISTRY || registry === 'index.docker.io' ? 'registry-1.docker.io' : registry;
}

/** Returns `ref` with its tag/digest replaced. */
export function withDigest(ref: ImageReference, digest: Digest): ImageReference {
  return { registry: ref.registry, repository: ref.repository, ...(ref.tag ? { tag: ref.tag } : {}), digest };
}
