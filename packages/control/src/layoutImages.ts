// `--build-context NAME=oci-layout://DIR[:TAG][@DIGEST]` (buildx; dockerui's oci-layout named
// context): an image in an OCI layout on the client. The client syncs DIR like a context and
// names the image by digest; here it is read from that context (this tenant's own upload: its
// files' digests are proof of holding the bytes), its blobs go into the shared blob store for the
// workers, leased for the build, and the planner gets it as it gets a pulled image. Its
// reference is BuildKit's: `oci-layout://` and the context's name pinned at the digest, which
// workers read from the blob store instead of a registry (see @buildyard/solver's
// RegistryImageSource); no registry is asked.
import type { LayerRecord } from '@buildyard/cache';
import { BlobLeases } from '@buildyard/cache';
import { isRegular, readManifest, type ContextStore } from '@buildyard/context';
import type { RedisClient as Redis, RedisKeys } from '@buildyard/contracts';
import type { ImageConfigFile } from '@buildyard/graph';
import type { NamedContextSource } from '@buildyard/dockerfile';
import {
  formatReference, isImageIndex, parseReference, selectManifest,
  LAYOUT_REF_PREFIX, type AnyManifest, type FsContentStore, type ImageConfig, type ImageManifest,
} from '@buildyard/oci';

/** What the CLI sends: the synced directory's context id and the image's digest. */
const LAYOUT_VALUE = /^oci-layout:\/\/local:(sha256:[a-f0-9]{64})@(sha256:[a-f0-9]{64})$/;

/** A layout context value's parts; undefined when `value` is not one. */
export function parseLayoutValue(value: string): { contextId: string; digest: string } | undefined {
  const m = LAYOUT_VALUE.exec(value);
  return m ? { contextId: m[1]!, digest: m[2]! } : undefined;
}

/** The named context for the planner: dockerui's dummy reference, the context's name at the digest. */
export function layoutNamedContext(name: string, layout: { contextId: string; digest: string }): Extract<NamedContextSource, { kind: 'image' }> {
  const named = parseReference(name.split('::')[0]!.toLowerCase(), { defaultTag: false });
  return { kind: 'image', ref: `${LAYOUT_REF_PREFIX}${formatReference({ registry: named.registry, repository: named.repository })}@${layout.digest}`, layout };
}

/** An image config is read whole: as from a registry, more than this is refused. */
const MAX_DOCUMENT_BYTES = 8 << 20;
/** How long a layout's blobs stay leased if the frontend dies before releasing them. */
const LEASE_TTL_MS = 24 * 3600_000;

export interface LayoutImageDeps {
  contexts: ContextStore;
  blobs: FsContentStore;
  redis: Redis;
  keys?: RedisKeys;
  buildId: string;
}

type Resolved = { ref: string; digest: string; config: ImageConfigFile; topDigest: string; layers?: LayerRecord[] };
type Resolver = (ref: string, platform: string) => Promise<Resolved>;

/**
 * The planner's resolver with the build's layout contexts: their references resolve from the
 * synced layouts, anything else through `inner` (a registry). Only references named by this
 * build's own layout contexts are read so; the same text in a FROM reaches the same layout.
 */
export function layoutAwareResolver(inner: Resolver, namedContexts: Record<string, NamedContextSource>, deps: LayoutImageDeps): Resolver {
  const layouts = new Map<string, { contextId: string; digest: string }>();
  for (const source of Object.values(namedContexts)) if (source.kind === 'image' && source.layout) layouts.set(source.ref, source.layout);
  if (layouts.size === 0) return inner;
  return (ref, platform) => {
    const layout = layouts.get(ref);
    return layout ? resolveLayoutImage(ref, layout, platform, deps) : inner(ref, platform);
  };
}

/** Reads one platform's image from the synced layout and puts its blobs where the workers read them. */
async function resolveLayoutImage(ref: string, layout: { contextId: string; digest: string }, platform: string, deps: LayoutImageDeps): Promise<Resolved> {
  const where = `the OCI layout of ${ref.slice(LAYOUT_REF_PREFIX.length).replace(/@sha256:[a-f0-9]{64}$/, '').slice(0, 200)}`;
  // A blob is the layout's when its file under blobs/sha256/ has that content.
  const held = new Set((await readManifest(deps.contexts, layout.contextId)).filter((e) => isRegular(e) && e.path === `blobs/sha256/${e.digest.slice(7)}`).map((e) => e.digest));
  const need = (digest: string, what: string) => {
    if (!held.has(digest)) throw new Error(`${where}: its ${what} ${digest.slice(0, 80)} is not in blobs/sha256 (or does not match its name): write the layout again`);
  };
  const document = async <T>(digest: string, size: number | undefined, what: string): Promise<T> => {
    need(digest, what);
    if (size !== undefined && !(size <= MAX_DOCUMENT_BYTES)) throw new Error(`${where}: its ${what} is ${size} bytes; more than ${MAX_DOCUMENT_BYTES >> 20} MiB is not read`);
    const bytes = await deps.contexts.content.readBytes(digest);
    if (bytes.length > MAX_DOCUMENT_BYTES) throw new Error(`${where}: its ${what} is over ${MAX_DOCUMENT_BYTES >> 20} MiB; not read`);
    try { return JSON.parse(bytes.toString('utf8')) as T; } catch { throw new Error(`${where}: its ${what} ${digest.slice(0, 80)} is not JSON`); }
  };
  const top = await document<AnyManifest>(layout.digest, undefined, 'image');
  let manifestDigest = layout.digest;
  let manifest: ImageManifest;
  if (isImageIndex(top)) {
    const chosen = selectManifest(top, platform, where);
    manifestDigest = chosen.digest;
    const child = await document<AnyManifest>(chosen.digest, chosen.size, 'manifest');
    if (isImageIndex(child)) throw new Error(`${where}: an index inside an index is not supported`);
    manifest = child;
  } else {
    manifest = top; // that image, whatever its platform, as BuildKit's (containerd's images.Manifest)
  }
  if (!manifest.config?.digest || !Array.isArray(manifest.layers)) throw new Error(`${where}: ${manifestDigest.slice(0, 80)} is not an image manifest`);
  const config = await document<ImageConfig>(manifest.config.digest, manifest.config.size, 'config');
  const diffIDs = config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== manifest.layers.length) throw new Error(`${where}: ${manifest.layers.length} layers but ${diffIDs.length} diff_ids in its config`);
  const blobs = [manifestDigest, manifest.config.digest, ...manifest.layers.map((l) => l.digest)];
  for (const l of manifest.layers) need(l.digest, 'layer');
  // Leased before they are stored: the blob GC never sees them unreferenced.
  await new BlobLeases(deps.redis, deps.keys).lease(deps.buildId, blobs, LEASE_TTL_MS);
  for (const digest of blobs) {
    if (!(await deps.blobs.has(digest))) await deps.blobs.put(deps.contexts.content.openRead(digest), digest);
  }
  return {
    ref: `${LAYOUT_REF_PREFIX}${ref.slice(LAYOUT_REF_PREFIX.length).replace(/@sha256:[a-f0-9]{64}$/, '')}@${manifestDigest}`,
    digest: manifestDigest,
    config: config as ImageConfigFile,
    topDigest: layout.digest,
    layers: manifest.layers.map((l, i) => ({ digest: l.digest, diffID: diffIDs[i]!, size: l.size, mediaType: l.mediaType })),
  };
}
