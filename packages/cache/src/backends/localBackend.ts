import { Annotations, MediaTypes, ociLayoutEntry, type Descriptor, type ImageIndex } from '@buildyard/oci';
import { CACHE_CONFIG_MEDIA_TYPE, decodeCacheRecords, type ExportedCacheRecord } from '../CacheManifest.js';
import type { CacheSpec } from '../CacheSpec.js';
import { countRecords, type CacheBackend, type LayoutReader } from './CacheBackend.js';

const blobPath = (digest: string) => `blobs/sha256/${digest.slice('sha256:'.length)}`;

/**
 * `type=local`: an OCI layout on the client. The builder never touches a path of its own: an
 * export's documents go to the shared store and the layout streams back to the client; an
 * import reads the directory the client synced.
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
      records: await readLayout(reader, spec.tag),
      fetchBlob: async (l) => { await deps.blobs.put(reader.open(blobPath(l.digest)), l.digest, l.size); },
      sourceHas: (l) => reader.hasBlob(l.digest),
    };
  },
};

async function readLayout(layout: LayoutReader, tag: string): Promise<ExportedCacheRecord[]> {
  const dir = layout.where;
  let indexJson: { manifests?: Descriptor[] };
  try { indexJson = JSON.parse((await layout.read('index.json')).toString('utf8')) as typeof indexJson; } catch (err) {
    throw new Error(`--cache-from type=local (${dir}): no OCI layout there (${(err as NodeJS.ErrnoException).code ?? 'bad index.json'}): export one with --cache-to type=local,dest=DIR`);
  }
  const manifests = indexJson.manifests ?? [];
  const entry = manifests.find((m) => m.annotations?.[Annotations.RefName] === tag) ?? (manifests.length === 1 && !manifests[0].annotations?.[Annotations.RefName] ? manifests[0] : undefined);
  if (!entry) throw new Error(`--cache-from type=local (${dir}): no cache tagged "${tag}": pass tag=NAME of one of ${manifests.map((m) => m.annotations?.[Annotations.RefName] ?? m.digest).join(', ').slice(0, 300)}`);
  const readJson = async (digest: string) => {
    try { return JSON.parse((await layout.read(blobPath(digest))).toString('utf8')) as { config?: { mediaType: string; digest: string } }; } catch (err) {
      throw new Error(`--cache-from type=local (${dir}): ${digest.slice(0, 80)} is missing or not JSON (${(err as NodeJS.ErrnoException).code ?? 'bad JSON'}): export the cache again`);
    }
  };
  const manifest = await readJson(entry.digest);
  if (manifest.config?.mediaType !== CACHE_CONFIG_MEDIA_TYPE) throw new Error(`--cache-from type=local (${dir}): ${entry.digest.slice(0, 80)} is not a buildyard cache manifest: export one with --cache-to type=local,dest=DIR`);
  return decodeCacheRecords((await layout.read(blobPath(manifest.config.digest))).toString('utf8'), `${dir}/${tag}`);
}
