// Named contexts (buildx --build-context name=VALUE, BuildKit's `context:<name>` frontend
// attributes): a FROM, COPY --from or RUN --mount from= that names one reads it instead of the
// image or stage of that name, as dockerui.NamedContext resolves them. The key is the name as a
// familiar image reference without `:latest` (`docker.io/library/alpine:latest` and `alpine` are
// one key); `name::os/arch` is tried before `name`, so a context can be given per platform.
import type { ContextEntry } from '@buildyard/graph';

export type NamedContextSource =
  /** docker-image://ref[@digest]: that image instead; `layout`: an image in an OCI layout the
   *  client synced as that context (`ref` then names it for the resolver, oci-layout://NAME@DIGEST). */
  | { kind: 'image'; ref: string; layout?: { contextId: string; digest: string } }
  /** A directory stored like the build context (a local directory, a git URL): its files. */
  | { kind: 'context'; contextId: string; entries: ContextEntry[] };

/** dockerui's key for a name: the familiar reference, `:latest` trimmed; undefined when the
 *  name cannot be a reference (it then never names a context). */
export function namedContextKey(name: string): string | undefined {
  const [base, platform] = name.split('::', 2);
  if (!base || !/^[a-z0-9][a-z0-9._/:@+-]*$/.test(base)) return undefined;
  let familiar = base.replace(/^(docker\.io|index\.docker\.io|registry-1\.docker\.io)\//, '');
  const first = familiar.split('/')[0]!;
  if (!(familiar.includes('/') && (/[.:]/.test(first) || first === 'localhost'))) familiar = familiar.replace(/^library\//, '');
  familiar = familiar.replace(/:latest$/, '');
  return platform === undefined ? familiar : `${familiar}::${platform}`;
}

/** Looks `name` up for `platform` among contexts keyed by namedContextKey. */
export function findNamedContext(contexts: ReadonlyMap<string, NamedContextSource>, name: string, platform: string): NamedContextSource | undefined {
  if (contexts.size === 0) return undefined;
  const key = namedContextKey(name.toLowerCase());
  if (key === undefined) return undefined;
  return contexts.get(`${key}::${platform}`) ?? contexts.get(key);
}

/** Keys the given contexts as findNamedContext looks them up; a name that cannot be a
 *  reference is refused (BuildKit: "invalid context name"). */
export function keyNamedContexts(given: Record<string, NamedContextSource> | undefined): Map<string, NamedContextSource> {
  const out = new Map<string, NamedContextSource>();
  for (const [name, source] of Object.entries(given ?? {})) {
    const key = namedContextKey(name.toLowerCase());
    if (key === undefined) throw new Error(`invalid context name ${JSON.stringify(name.slice(0, 100))}: use a stage or image name such as "base" or "alpine:3"`);
    out.set(key, source);
  }
  return out;
}
