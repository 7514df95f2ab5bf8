import { canonicalDigest } from './canonicalDigest.js';
import type { ContentDigest } from './types.js';

/** Cache key of an image base state: the platform manifest digest identifies the filesystem. */
export function imageStateKey(digest: string): string {
  return canonicalDigest({ kind: 'image', digest });
}

/** Cache key of the empty filesystem. */
export function scratchStateKey(platform: string): string {
  return canonicalDigest({ kind: 'scratch', platform });
}

/**
 * Cache key of a vertex: its definition digest, the key of the state it runs on, the keys of
 * its other inputs (in order) and the content digests of the context files it reads.
 */
export function vertexCacheKey(parts: { digest: string; parent: string; inputs: string[]; content?: ContentDigest[] }): string {
  return canonicalDigest({ digest: parts.digest, parent: parts.parent, inputs: parts.inputs, content: parts.content ?? [] });
}
