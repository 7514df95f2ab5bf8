// `--export-cache type=local,dest=DIR` / `--import-cache type=local,src=DIR` through the endpoint:
// as buildkitd, the cache moves through the client's content store over the session; the
// builder never touches a path. The cache is BuildKit's document (see @buildyard/cache).
import { RedisCacheIndex, readCache, type LayoutReader } from '@buildyard/cache';
import type { StartedBuild } from '@buildyard/control';
import type { RedisKeys } from '@buildyard/contracts';
import { Annotations, MediaTypes, RegistryClient, type FsContentStore } from '@buildyard/oci';
import type { RedisClient as Redis } from '@buildyard/contracts';
import type { ClientSession } from './SessionManager.js';
import { clientContentStore as storeOf } from './sessionContent.js';
import type { SessionCacheExport, SessionCacheImport } from './solveRequest.js';

export interface SessionCacheDeps {
  redis: Redis;
  keys: RedisKeys;
  blobs: FsContentStore;
  /** Runs `fn` as a vertex named `name`; returns its digest to `fn` for the vertex's logs. */
  step<T>(name: string, fn: (log: (line: string) => void) => Promise<T>): Promise<T>;
}

/**
 * Imports a local cache into the tenant's index as BuildKit's "importing cache manifest from"
 * vertex: the client resolved the tag to a digest; the documents and the layers the shared
 * store lacks are read over the session. A cache that cannot be read fails its vertex only:
 * the build goes on without it, as in BuildKit.
 */
export async function importSessionCache(im: SessionCacheImport, session: ClientSession, tenant: string, deps: SessionCacheDeps, signal: AbortSignal): Promise<void> {
  try {
    await deps.step(`importing cache manifest from ${im.store}`, async (log) => {
      const store = storeOf(session, im.store, signal);
      const blob = (path: string) => {
        const m = /^blobs\/sha256\/([a-f0-9]{64})$/.exec(path);
        if (!m) throw Object.assign(new Error(`${path} is not a blob path`), { code: 'ENOENT' });
        return `sha256:${m[1]}`;
      };
      const layout: LayoutReader = {
        where: `${im.src.slice(0, 200)} on the client`,
        // The client's index.json stays on the client: it sent the digest its tag names.
        read: async (path) => (path === 'index.json'
          ? Buffer.from(JSON.stringify({ schemaVersion: 2, manifests: [{ mediaType: MediaTypes.OciIndex, digest: im.digest, size: 0, annotations: { [Annotations.RefName]: im.tag } }] }))
          : store.read(blob(path))),
        open: (path) => store.open(blob(path)),
        // Read and hashed: a blob another tenant put in the shared store is usable only if this client has its bytes.
        hasBlob: (digest) => store.holds(digest),
      };
      const result = await readCache({ type: 'local', tag: im.tag, mode: 'min' }, new RedisCacheIndex(deps.redis, tenant, deps.keys), { registry: new RegistryClient(), blobs: deps.blobs, layout, signal });
      if (result.foreign > 0) log(`${result.records} Buildyard records; ${result.foreign} records of another BuildKit skipped: their cache keys are that builder's own`);
    });
  } catch {
    // Shown on its vertex; a cache is an optimisation.
  }
}

/**
 * Sends each local cache export the build wrote (its blobs are in the shared store) to the
 * client's store, layers before the documents that name them; returns BuildKit's
 * `cache.manifest` exporter response (the cache index's descriptor), from which the client
 * tags the index in DIR/index.json.
 */
export async function sendSessionCaches(exports: SessionCacheExport[], started: StartedBuild, session: ClientSession, deps: SessionCacheDeps, signal: AbortSignal): Promise<string | undefined> {
  if (exports.length === 0) return undefined;
  const finished = await started.finished;
  let manifest: string | undefined;
  for (const e of exports) {
    const local = finished?.localCaches?.find((c) => c.index === e.index);
    if (!local) throw new Error(`the build wrote no cache for --export-cache type=local,dest=${e.dest.slice(0, 200)}`);
    await deps.step('sending cache export', async () => {
      const store = storeOf(session, e.store, signal);
      for (const b of [...local.layout.blobs].reverse()) await store.write(b.digest, b.size, () => deps.blobs.openRead(b.digest));
    });
    const top = local.layout.index.manifests[0];
    manifest = JSON.stringify({ mediaType: top.mediaType, digest: top.digest, size: top.size });
  }
  return manifest;
}
