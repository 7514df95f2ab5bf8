import type { LayerRecord } from '@buildyard/cache';
import type { ImageConfigFile } from '@buildyard/graph';
import { parseReference, type FsContentStore, type ImageConfig, type RegistryClient } from '@buildyard/oci';
import type { ImageSource } from './StageSolver.js';

/** Pulls images from their registries into the local content store, once per digest. */
export class RegistryImageSource implements ImageSource {
  private readonly pulled = new Map<string, Promise<{ layers: LayerRecord[]; config: ImageConfigFile }>>();

  constructor(private readonly client: RegistryClient, private readonly store: FsContentStore) {}

  pull(ref: string, digest: string, platform: string, signal?: AbortSignal): Promise<{ layers: LayerRecord[]; config: ImageConfigFile }> {
    const key = `${digest}@${platform}`;
    let pending = this.pulled.get(key);
    if (!pending) {
      pending = this.fetch(ref, digest, platform, signal);
      pending.catch(() => this.pulled.delete(key));
      this.pulled.set(key, pending);
    }
    return pending;
  }

  private async fetch(ref: string, digest: string, platform: string, signal?: AbortSignal): Promise<{ layers: LayerRecord[]; config: ImageConfigFile }> {
    const name = parseReference(ref);
    const pinned = `${name.registry}/${name.repository}@${digest}`;
    const image = await this.client.resolve(pinned, platform, { signal });
    const diffIDs = image.config.rootfs?.diff_ids ?? [];
    if (diffIDs.length !== image.manifest.layers.length) throw new Error(`image ${pinned} is invalid: ${image.manifest.layers.length} layers but ${diffIDs.length} diff_ids in its config`);
    await Promise.all(image.manifest.layers.map((l) => this.client.pullBlob(name, l, this.store, { signal })));
    const layers = image.manifest.layers.map((l, i) => ({ digest: l.digest, diffID: diffIDs[i], size: l.size, mediaType: l.mediaType }));
    return { layers, config: asConfigFile(image.config) };
  }
}

/** The same JSON; graph's type also admits fields it does not name (an index signature). */
const asConfigFile = (config: ImageConfig): ImageConfigFile => config as ImageConfigFile;

/** The planner's base-image resolver: a reference and platform to the pinned image and its config. */
export function registryImageResolver(client: RegistryClient, signal?: AbortSignal) {
  return async (ref: string, platform: string): Promise<{ ref: string; digest: string; config: ImageConfigFile }> => {
    const image = await client.resolve(ref, platform, { signal });
    return { ref: `${image.reference.registry}/${image.reference.repository}@${image.manifestDigest}`, digest: image.manifestDigest, config: asConfigFile(image.config) };
  };
}
