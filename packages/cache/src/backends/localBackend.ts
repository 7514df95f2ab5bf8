import { Annotations, MediaTypes, ociLayoutEntry, type Descriptor, type ImageIndex } from '@buildyard/oci';
import { cacheConfigOf, decodeCacheConfig, parseCacheDocument, type DecodedCache } from '../CacheManifest.js';
import type { CacheSpec } from '../CacheSpec.js';
import { countRecords, type CacheBackend, type LayoutReader } from './CacheBackend.js';

const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

/**
 * `type=local`: an OCI layout on the client, as BuildKit's local cache: index.json tags the
 * cache index (`tag`, default latest). The builder never touches a path of its own: an export's
 * documents go to the shared store and the layout streams back to the client; an import reads
 * the directory the client synced.
 */
export const localBackend: CacheBackend<Extract<CacheSpec, { type: 'local' }>> = {
  async write(spec, encoded, deps) {
    await deps.blobs.put(encoded.config.bytes, encoded.config.descriptor.digest, encoded.config.descriptor.size);
    await deps.blobs.put(encoded.manifest.bytes, encoded.manifest.descriptor.digest, encoded.manifest.descriptor.size);
    const index: ImageIndex = { schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [ociLayoutEntry(encoded.manifest.descriptor, spec.tag)] };
    const blobs = [encoded.manifest.descriptor, encoded.config.descriptor, ...encoded.layers].map((d) => ({ digest: d.digest, size: d.size }));
    return {
      location: `the client's cache dir (${spec.tag})`, digest: encoded.manifest.descriptor.digest, records: countRecords(encoded.config.bytes), layers: encoded.layers.length,
      layout: { index, blobs },
    };
  },

  async open(spec, deps) {
    const reader = deps.layout;
    if (!reader) throw new Error('--cache-from type=local: the cache directory was not synced: run the build with the buildyard client');
    return {
      location: reader.where,
      ...await readLayout(reader, spec.tag),
      fetchBlob: async (l) => { await deps.blobs.put(reader.open(blobPath(l.digest)), l.digest, l.size); },
      sourceHas: (l) => reader.hasBlob(l.digest),
    };
  },
};

async function readLayout(layout: LayoutReader, tag: string): Promise<DecodedCache> {
  const dir = layout.where;
  let indexJson: { manifests?: Descriptor[] };
  try { indexJson = JSON.parse((await layout.read('index.json')).toString('utf8')) as typeof indexJson; } catch (err) {
    throw new Error(`--cache-from type=local (${dir}): no OCI layout there (${(err as NodeJS.ErrnoException).code ?? 'bad index.json'}): export one with --cache-to type=local,dest=DIR`);
  }
  const manifests = indexJson.manifests ?? [];
  const entry = manifests.find((m) => m.annotations?.[Annotations.RefName] === tag) ?? (manifests.length === 1 && !manifests[0].annotations?.[Annotations.RefName] ? manifests[0] : undefined);
  if (!entry) throw new Error(`--cache-from type=local (${dir}): no cache tagged "${tag}": pass tag=NAME of one of ${manifests.map((m) => m.annotations?.[Annotations.RefName] ?? m.digest).join(', ').slice(0, 300)}`);
  const read = async (digest: string) => {
    try { return (await layout.read(blobPath(digest))).toString('utf8'); } catch (err) {
      throw new Error(`--cache-from type=local (${dir}): ${digest.slice(0, 80)} is missing (${(err as NodeJS.ErrnoException).code ?? 'unreadable'}): export the cache again`);
    }
  };
  const text = await read(entry.digest);
  let json: unknown;
  try { json = JSON.parse(text); } catch {
    throw new Error(`--cache-from type=local (${dir}): ${entry.digest.slice(0, 80)} is not JSON: export the cache again`);
  }
  const cache = cacheConfigOf(parseCacheDocument(json, `${dir}/${tag}`));
  if (!cache) throw new Error(`--cache-from type=local (${dir}): ${entry.digest.slice(0, 80)} is not a cache index or manifest: export one with --cache-to type=local,dest=DIR`);
  return decodeCacheConfig(await read(cache.config.digest), `${dir}/${tag}`, cache.descriptors);
}
