import { assertDigest, parseReference, type RepositoryReference } from '@buildyard/oci';
import { CACHE_CONFIG_MEDIA_TYPE, INLINE_CACHE_ANNOTATION, decodeCacheRecords, type ExportedCacheRecord } from '../CacheManifest.js';
import type { CacheSpec } from '../CacheSpec.js';
import { eachLimit } from '../eachLimit.js';
import { countRecords, type CacheBackend, type CacheTransferDeps } from './CacheBackend.js';

/** `type=registry,ref=…`: a cache manifest pushed to a repository; imports also read inline caches. */
export const registryBackend: CacheBackend<Extract<CacheSpec, { type: 'registry' }>> = {
  async write(spec, encoded, deps) {
    const ref = parseReference(spec.ref);
    const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
    const call = { signal: deps.signal };
    await eachLimit(encoded.layers, 4, async (l) => {
      await deps.registry.pushBlob(repo, { digest: assertDigest(l.digest, 'cached layer digest'), size: l.size }, () => deps.blobs.openRead(l.digest), call);
    });
    await deps.registry.pushBlob(repo, encoded.config.descriptor, encoded.config.bytes, call);
    const target = { ...repo, tag: ref.tag ?? 'latest' };
    const digest = await deps.registry.putManifest(target, encoded.manifest.bytes, encoded.manifest.descriptor.mediaType, call);
    return { location: `${ref.registry}/${ref.repository}:${target.tag}@${digest}`, digest, records: countRecords(encoded.config.bytes), layers: encoded.layers.length };
  },

  async open(spec, deps) {
    const ref = parseReference(spec.ref);
    const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
    return {
      location: spec.ref,
      records: await registryRecords(spec.ref, deps),
      fetchBlob: async (l) => { await deps.registry.pullBlob(repo, { digest: assertDigest(l.digest, 'cached layer digest'), size: l.size }, deps.blobs, { signal: deps.signal }); },
      sourceHas: (l) => deps.registry.blobExists(repo, l.digest, { signal: deps.signal }),
    };
  },
};

/** The records of a cache manifest, or of an image (index) carrying inline caches. */
async function registryRecords(refText: string, deps: CacheTransferDeps): Promise<ExportedCacheRecord[]> {
  const call = { signal: deps.signal };
  const ref = parseReference(refText);
  const repo: RepositoryReference = { registry: ref.registry, repository: ref.repository };
  const top = await deps.registry.getManifest(refText, call);
  const fromManifest = async (doc: { config?: { mediaType: string; digest: string }; annotations?: Record<string, string> }, where: string): Promise<ExportedCacheRecord[] | undefined> => {
    if (doc.config?.mediaType === CACHE_CONFIG_MEDIA_TYPE) {
      return decodeCacheRecords((await deps.registry.fetchBlobBytes(repo, doc.config.digest, call)).toString('utf8'), where);
    }
    const inline = doc.annotations?.[INLINE_CACHE_ANNOTATION];
    return inline ? decodeCacheRecords(inline, where) : undefined;
  };
  const doc = top.manifest as unknown as { manifests?: Array<{ digest: string }>; config?: { mediaType: string; digest: string }; annotations?: Record<string, string> };
  const found: ExportedCacheRecord[] = [];
  let any = false;
  if (Array.isArray(doc.manifests)) {
    for (const child of doc.manifests) {
      const m = await deps.registry.getManifest({ ...repo, digest: assertDigest(child.digest, `manifest digest in ${refText}`) }, call);
      const recs = await fromManifest(m.manifest as unknown as typeof doc, `${refText}@${child.digest}`);
      if (recs) { any = true; found.push(...recs); }
    }
  } else {
    const recs = await fromManifest(doc, refText);
    if (recs) { any = true; found.push(...recs); }
  }
  if (!any) throw new Error(`--cache-from ${refText}: the image holds no buildyard cache: export one with --cache-to type=registry,ref=${refText} or type=inline`);
  return found;
}
