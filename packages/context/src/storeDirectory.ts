// A directory on the server (a fetched git checkout) becomes a context in the store, exactly as
// if a client had synced it: the same walk (.dockerignore, file types, sorted entries), the
// same limits, contents written through the verifying writer and granted to the tenant, and a
// manifest whose digest is the context id. Workers then materialize it like any other context.
import { createReadStream } from 'node:fs';
import { ContextError } from './ContextError.js';
import { isRegular } from './ContextEntry.js';
import { contextBytes, type ContextStore } from './ContextStore.js';
import { walkContext } from './walkContext.js';

export interface StoreDirectoryOptions {
  tenant: string;
  /** .dockerignore patterns applied to the walk. */
  dockerignore?: readonly string[];
  /** Top-level names left out (a checkout's `.git`). */
  omit?: readonly string[];
}

/** Stores `dir` as a context of `tenant`; answers its context id and size. */
export async function storeDirectory(store: ContextStore, dir: string, opts: StoreDirectoryOptions): Promise<{ contextId: string; bytes: number; files: number }> {
  const omit = new Set(opts.omit ?? []);
  const entries = (await walkContext(dir, { dockerignore: opts.dockerignore ?? [], cacheDir: false }))
    .filter((e) => !omit.has(e.path.split('/')[0]!));
  if (entries.length > store.maxFiles) throw new ContextError(`the context has more than ${store.maxFiles} entries (limits.maxContextFiles): use a subdirectory or a .dockerignore`);
  const bytes = contextBytes(entries);
  if (bytes > store.maxContextBytes) throw new ContextError(`the context is larger than ${store.maxContextBytes} bytes (limits.maxContextBytes): use a subdirectory or a .dockerignore`);
  const digests = new Set<string>();
  for (const e of entries) {
    if (!isRegular(e) || digests.has(e.digest)) continue;
    digests.add(e.digest);
    if (await store.content.has(e.digest)) continue;
    await store.content.put(createReadStream(`${dir}/${e.path}`), e.digest, e.size);
  }
  await store.grantContent(opts.tenant, digests);
  return { contextId: await store.putManifest(entries, opts.tenant), bytes, files: entries.length };
}
