import type { LayerRecord } from '@buildyard/cache';
import type { ImageConfigFile } from '@buildyard/graph';
import { LAYOUT_REF_PREFIX, parseReference, type FetchedManifest, type FsContentStore, type ImageConfig, type ImageManifest, type RegistryClient } from '@buildyard/oci';
import type { ImageSource } from './StageSolver.js';
import { isKnownPlatform, unknownPlatformError } from './unknownPlatform.js';

type PulledImage = { layers: LayerRecord[]; config: ImageConfigFile };

/** One download that several builds wait on; it is aborted only when every one of them has gone. */
interface SharedPull { result: Promise<PulledImage>; controller: AbortController; waiters: number }

/**
 * Pulls images from their registries into the local content store, once per digest. Concurrent
 * builds share a pull; a cancelled build stops waiting at once, and the download itself stops
 * only when no build waits for it any more (so one tenant's cancel never fails another's pull).
 */
export class RegistryImageSource implements ImageSource {
  private readonly pulls = new Map<string, SharedPull>();

  constructor(private readonly client: RegistryClient, private readonly store: FsContentStore) {}

  pull(ref: string, digest: string, platform: string, signal?: AbortSignal): Promise<PulledImage> {
    signal?.throwIfAborted();
    const key = `${digest}@${platform}`;
    let shared = this.pulls.get(key);
    if (!shared) {
      const controller = new AbortController();
      const result = this.fetch(ref, digest, platform, controller.signal);
      const entry: SharedPull = { result, controller, waiters: 0 };
      // A failed or aborted pull is forgotten so the next build tries again; a finished one stays.
      result.catch(() => { if (this.pulls.get(key) === entry) this.pulls.delete(key); });
      this.pulls.set(key, entry);
      shared = entry;
    }
    const entry = shared;
    entry.waiters++;
    if (!signal) return entry.result.finally(() => { entry.waiters--; });
    return new Promise<PulledImage>((resolve, reject) => {
      const leave = () => {
        signal.removeEventListener('abort', onAbort);
        entry.waiters--;
      };
      const onAbort = () => {
        leave();
        if (entry.waiters === 0) {
          // Nobody waits any more: stop the download and let the next build start a fresh one.
          if (this.pulls.get(key) === entry) this.pulls.delete(key);
          entry.controller.abort(signal.reason);
        }
        reject(signal.reason);
      };
      signal.addEventListener('abort', onAbort, { once: true });
      entry.result.then((image) => { leave(); resolve(image); }, (err: unknown) => { leave(); reject(err); });
    });
  }

  private async fetch(ref: string, digest: string, platform: string, signal: AbortSignal): Promise<PulledImage> {
    if (ref.startsWith(LAYOUT_REF_PREFIX)) return this.fromStore(ref, digest);
    const name = parseReference(ref);
    const pinned = `${name.registry}/${name.repository}@${digest}`;
    const image = await this.client.resolve(pinned, platform, { signal });
    const layers = layerRecordsOf(image, pinned);
    await Promise.all(image.manifest.layers.map((l) => this.client.pullBlob(name, l, this.store, { signal })));
    return { layers, config: asConfigFile(image.config) };
  }

  /**
   * An image from a client's OCI layout: the frontend verified the tenant holds it and put its
   * manifest, config and layers in the blob store (see @buildyard/control's layoutImages.ts). A
   * plan is the frontend's, so such a reference never comes from a tenant's own words.
   */
  private async fromStore(ref: string, digest: string): Promise<PulledImage> {
    const read = async <T>(d: string, what: string): Promise<T> => {
      if (!(await this.store.has(d))) throw new Error(`the ${what} ${d.slice(0, 80)} of ${ref.slice(0, 200)} is not in the blob store: build again (the frontend stores it when it plans)`);
      return JSON.parse((await this.store.readBytes(d)).toString('utf8')) as T;
    };
    const manifest = await read<ImageManifest>(digest, 'manifest');
    const config = await read<ImageConfig>(manifest.config.digest, 'config');
    for (const l of manifest.layers) {
      if (!(await this.store.has(l.digest))) throw new Error(`the layer ${l.digest.slice(0, 80)} of ${ref.slice(0, 200)} is not in the blob store: build again`);
    }
    return { layers: layerRecordsOf({ manifest, config }, ref), config: asConfigFile(config) };
  }
}

/** An image's layer chain as the cache and the solver know layers: the manifest's blobs with their config's diff ids. */
function layerRecordsOf(image: Pick<Awaited<ReturnType<RegistryClient['resolve']>>, 'manifest' | 'config'>, name: string): LayerRecord[] {
  const diffIDs = image.config.rootfs?.diff_ids ?? [];
  if (diffIDs.length !== image.manifest.layers.length) throw new Error(`image ${name.slice(0, 200)} is invalid: ${image.manifest.layers.length} layers but ${diffIDs.length} diff_ids in its config`);
  return image.manifest.layers.map((l, i) => ({ digest: l.digest, diffID: diffIDs[i], size: l.size, mediaType: l.mediaType }));
}

/** The same JSON; graph's type also admits fields it does not name (an index signature). */
const asConfigFile = (config: ImageConfig): ImageConfigFile => config as ImageConfigFile;

/**
 * The planner's base-image resolver: a reference and platform to the pinned image and its config,
 * and its layer chain (from the manifest the resolution read: no blob is pulled), with which a
 * frontend answers a stage on that image from the cache without a worker.
 */
export function registryImageResolver(client: RegistryClient, signal?: AbortSignal) {
  // One lookup of each reference per plan: its platforms resolve from the same index, in one round trip.
  const tops = new Map<string, Promise<FetchedManifest>>();
  // topDigest: what the reference itself points at (the index when there is one), which provenance records as BuildKit does.
  return async (ref: string, platform: string): Promise<{ ref: string; digest: string; config: ImageConfigFile; topDigest: string; layers?: LayerRecord[] }> => {
    if (!isKnownPlatform(platform)) throw await unknownPlatformError(client, ref, platform, { signal });
    const image = await client.resolve(ref, platform, { signal }, tops);
    const pinned = `${image.reference.registry}/${image.reference.repository}@${image.manifestDigest}`;
    // An invalid image fails where its layers are pulled (a worker), as before: here it only has no chain.
    let layers: LayerRecord[] | undefined;
    try { layers = layerRecordsOf(image, pinned); } catch { layers = undefined; }
    return { ref: pinned, digest: image.manifestDigest, config: asConfigFile(image.config), topDigest: image.indexDigest ?? image.manifestDigest, ...(layers ? { layers } : {}) };
  };
}
