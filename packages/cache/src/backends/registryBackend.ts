import { MediaTypes, assertDigest, parseReference, type RepositoryReference } from '@buildyard/oci';
import { INLINE_CACHE_ANNOTATION, cacheConfigOf, decodeCacheConfig, parseCacheDocument, type CacheDocument, type DecodedCache } from '../CacheManifest.js';
import type { CacheSpec } from '../CacheSpec.js';
import { eachLimit } from '../eachLimit.js';
import { countRecords, type CacheBackend, type CacheTransferDeps } from './CacheBackend.js';

/**
 * `type=registry,ref=…`: BuildKit's cache document (an OCI index of the layers and the
 * cacheconfig.v0 blob) pushed to a repository; imports also read inline caches.
 */
export const registryBackend: CacheBackend<Extract<CacheSpec, { type: 'registry' }>> = {
  async write(spec, encoded, deps) {
    const ref = parseReference(spec.ref);
    const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
    const call = { signal: deps.signal };
    const step = deps.step ?? ((_name, fn) => fn());
    await eachLimit(encoded.layers, 4, async (l) => {
      await step(`writing layer ${l.digest}`, () => deps.registry.pushBlob(repo, { digest: assertDigest(l.digest, 'cached layer digest'), size: l.size }, () => deps.blobs.openRead(l.digest), call));
    });
    await step(`writing config ${encoded.config.descriptor.digest}`, () => deps.registry.pushBlob(repo, encoded.config.descriptor, encoded.config.bytes, call));
    const target = { ...repo, tag: ref.tag ?? 'latest' };
    // BuildKit's words (remotecache/export.go): "cache image manifest" for image-manifest=true.
    const manifestKind = spec.imageManifest ? 'cache image manifest' : 'cache manifest';
    const digest = await step(`writing ${manifestKind} ${encoded.manifest.descriptor.digest}`, () => deps.registry.putManifest(target, encoded.manifest.bytes, encoded.manifest.descriptor.mediaType, call));
    return { location: `${ref.registry}/${ref.repository}:${target.tag}@${digest}`, digest, records: countRecords(encoded.config.bytes), layers: encoded.layers.length };
  },

  async open(spec, deps) {
    const ref = parseReference(spec.ref);
    const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
    return {
      location: spec.ref,
      ...await registryRecords(spec.ref, deps),
      fetchBlob: async (l) => { await deps.registry.pullBlob(repo, { digest: assertDigest(l.digest, 'cached layer digest'), size: l.size }, deps.blobs, { signal: deps.signal }); },
      // Its bytes, not a HEAD: a registry of the importer's may answer 200 to any digest.
      sourceHas: (l) => deps.registry.servesBlob(repo, l.digest, deps.blobs, { signal: deps.signal }),
    };
  },
};

/** The records of a cache document, or of an image (index) carrying inline caches. */
async function registryRecords(refText: string, deps: CacheTransferDeps): Promise<DecodedCache> {
  const call = { signal: deps.signal };
  const ref = parseReference(refText);
  const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
  const top = parseCacheDocument((await deps.registry.getManifest(refText, call)).manifest, refText);
  const cache = cacheConfigOf(top);
  if (cache) {
    return decodeCacheConfig((await deps.registry.fetchBlobBytes(repo, cache.config.digest, call)).toString('utf8'), refText, cache.descriptors);
  }
  const inline = (doc: CacheDocument, where: string) => {
    const value = doc.annotations?.[INLINE_CACHE_ANNOTATION];
    return value === undefined ? undefined : decodeCacheConfig(value, where);
  };
  const found: DecodedCache = { records: [], foreign: 0 };
  let any = false;
  const children = Array.isArray(top.manifests) ? top.manifests.filter((m) => m.mediaType !== MediaTypes.OciIndex) : undefined;
  for (const [doc, where] of children
    ? await Promise.all(children.map(async (c) => {
      const where = `${refText}@${c.digest}`;
      return [parseCacheDocument((await deps.registry.getManifest({ ...repo, digest: c.digest }, call)).manifest, where), where] as const;
    }))
    : [[top, refText] as const]) {
    const decoded = inline(doc, where);
    if (decoded) { any = true; found.records.push(...decoded.records); found.foreign += decoded.foreign; }
  }
  if (!any) throw new Error(`--cache-from ${refText}: the image holds no cache: export one with --cache-to type=registry,ref=${refText} or type=inline`);
  return found;
}
