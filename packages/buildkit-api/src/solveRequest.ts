import { attestSpec } from '@buildyard/control';
import { SolveRequest, type KeyValueSpec, type buildkit } from '@buildyard/proto';
import { checkSyntax, parseGitRef } from '@buildyard/dockerfile';

/** A request the endpoint does not serve: refused at once with this one line. */
export class UnsupportedRequest extends Error {}

/** The frontend attributes buildctl and buildx send that a Dockerfile build understands. */
export interface DockerfileAttrs {
  filename: string;
  dockerfileLocal: string;
  contextLocal: string;
  platforms: string[];
  target: string;
  buildArgs: Record<string, string>;
  labels: Record<string, string>;
  noCache: boolean;
  noCacheFilter: string[];
  network: string;
  /** A git or http(s) URL given as the context (buildx's remote contexts, `--opt context=`): fetched by the server. */
  contextUrl: string;
  /** `contextUrl` is an http(s) download (a tarball, or a lone Dockerfile), not a git repository. */
  contextIsHttp: boolean;
  /** `dockerfilekey` was given: the Dockerfile comes from that local even with a git context. */
  forceLocalDockerfile: boolean;
  /** `context:NAME` attributes (buildx --build-context): NAME (with an optional `::os/arch`) ->
   *  `local:LOCAL` (a session local), `docker-image://REF` or a git URL. */
  namedContexts: Record<string, string>;
  /** `add-hosts`: `name=ip` entries (buildx turns --add-host name:ip into them). */
  addHosts: string[];
  /** `shm-size`: bytes (buildx --shm-size); 0: the default. */
  shmSize: number;
  /** `ulimit`: `name=soft:hard` entries (buildx --ulimit). */
  ulimits: string[];
}

const KNOWN_ATTRS = new Set(['filename', 'dockerfilekey', 'contextkey', 'context', 'platform', 'target', 'no-cache', 'force-network-mode', 'image-resolve-mode', 'multi-platform', 'hostname', 'add-hosts', 'shm-size', 'ulimit', 'requestid', 'frontend.caps']);

/** Checks that the request is a dockerfile.v0 solve and reads its attributes. */
export function dockerfileAttrs(req: buildkit.SolveRequest): DockerfileAttrs {
  if (!req.Frontend) {
    if (req.Definition?.def.length) throw new UnsupportedRequest('raw LLB definitions are not supported: build a Dockerfile with --frontend dockerfile.v0 (buildctl) or docker buildx build');
    throw new UnsupportedRequest('a Solve without a frontend is not supported: use --frontend dockerfile.v0');
  }
  if (req.Frontend !== 'dockerfile.v0') {
    throw new UnsupportedRequest(`frontend "${req.Frontend.slice(0, 100)}" is not supported: only the built-in dockerfile.v0 frontend (no gateway.v0 frontend images)`);
  }
  if (Object.keys(req.FrontendInputs).length > 0) {
    throw new UnsupportedRequest(`frontend inputs (${Object.keys(req.FrontendInputs).slice(0, 5).join(', ')}) are not supported: pass build contexts as --local directories`);
  }
  const attrs = req.FrontendAttrs;
  for (const key of Object.keys(attrs)) {
    if (key === 'cmdline' || key === 'source') throw new UnsupportedRequest(`frontend attribute "${key}" (a frontend image) is not supported: drop it to use the built-in Dockerfile frontend`);
    if (key.startsWith('context:')) {
      const value = attrs[key] ?? '';
      if (!/^(local:|docker-image:\/\/|oci-layout:\/\/|https?:\/\/)/i.test(value) && !parseGitRefQuiet(value)) {
        throw new UnsupportedRequest(`named context ${key.slice(8, 108)}=${value.slice(0, 200)} is not supported: use a local directory, docker-image://REF, oci-layout://DIR, a git URL or an http(s) URL`);
      }
    }
  }
  // dockerui: the value under the context's local name is a git URL, an http(s) URL, or a local.
  const contextValue = attrs[attrs.contextkey || 'context'] ?? '';
  let contextUrl = '';
  let git;
  try { git = parseGitRef(contextValue); } catch (err) { throw new UnsupportedRequest((err as Error).message); }
  // Not a git URL but http(s): a tarball (or a lone Dockerfile) the frontend downloads.
  const httpContext = !git && /^https?:\/\//i.test(contextValue);
  if (git || httpContext) contextUrl = contextValue;
  const pick = (prefix: string) => Object.fromEntries(Object.entries(attrs).filter(([k]) => k.startsWith(prefix)).map(([k, v]) => [k.slice(prefix.length), v]));
  const noCache = 'no-cache' in attrs;
  // dockerui: plain integers (bytes), and comma lists whose entries hold no commas.
  const shmSize = attrs['shm-size'] ? Number(attrs['shm-size']) : 0;
  if (!Number.isSafeInteger(shmSize) || shmSize < 0) throw new UnsupportedRequest(`shm-size ${attrs['shm-size']!.slice(0, 40)}: give a number of bytes`);
  const list = (key: string) => (attrs[key] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  return {
    filename: attrs.filename || 'Dockerfile',
    dockerfileLocal: attrs.dockerfilekey || 'dockerfile',
    contextLocal: attrs.contextkey || 'context',
    platforms: (attrs.platform ?? '').split(',').map((p) => p.trim()).filter(Boolean),
    target: attrs.target ?? '',
    // dockerui: the `multi-platform` and `hostname` attributes, unless their build args say otherwise.
    buildArgs: {
      ...(attrs['multi-platform'] !== undefined ? { BUILDKIT_MULTI_PLATFORM: attrs['multi-platform'] } : {}),
      ...(attrs.hostname ? { BUILDKIT_SANDBOX_HOSTNAME: attrs.hostname } : {}),
      ...pick('build-arg:'),
    },
    labels: pick('label:'),
    // An empty value means every stage; else a comma list of stage names.
    noCache: noCache && !attrs['no-cache'],
    noCacheFilter: noCache && attrs['no-cache'] ? attrs['no-cache'].split(',').map((s) => s.trim()).filter(Boolean) : [],
    network: attrs['force-network-mode'] === 'sandbox' ? 'default' : (attrs['force-network-mode'] ?? ''),
    contextUrl,
    contextIsHttp: httpContext,
    forceLocalDockerfile: 'dockerfilekey' in attrs,
    namedContexts: pick('context:'),
    addHosts: list('add-hosts'),
    shmSize,
    ulimits: list('ulimit'),
  };
}

function parseGitRefQuiet(value: string): boolean {
  try { return parseGitRef(value) !== undefined; } catch { return false; }
}

/** Unknown frontend attributes, reported as a warning (BuildKit ignores them too). */
export function unknownAttrs(req: buildkit.SolveRequest): string[] {
  return Object.keys(req.FrontendAttrs).filter((k) => !KNOWN_ATTRS.has(k) && !k.startsWith('build-arg:') && !k.startsWith('label:') && !k.startsWith('attest:') && !k.startsWith('context:'));
}

/** The exporters of a request: `Exporters` (BuildKit >= 0.13 clients) or Exporter/ExporterAttrs. */
export function outputsOf(req: buildkit.SolveRequest): KeyValueSpec[] {
  const list = req.Exporters.length > 0 ? req.Exporters.map((e) => ({ type: e.Type, attrs: e.Attrs })) : req.Exporter ? [{ type: req.Exporter, attrs: req.ExporterAttrs }] : [];
  for (const o of list) {
    if (!['image', 'local', 'tar', 'oci', 'docker'].includes(o.type)) throw new UnsupportedRequest(`exporter "${o.type.slice(0, 50)}" is not supported: use type=image (name=..., push=true), local, tar, oci or docker`);
  }
  return list.map((o) => ({ type: o.type, attrs: { ...o.attrs } }));
}

/**
 * `attest:TYPE` attributes (buildctl --opt attest:provenance=mode=max; buildx sends
 * type=provenance,mode=min,inline-only=true) as the request's attestations; the frontend checks them.
 */
export function attestsOf(attrs: Record<string, string>): KeyValueSpec[] {
  return Object.entries(attrs).filter(([k]) => k.startsWith('attest:')).map(([k, v]) => {
    try { return attestSpec(k.slice('attest:'.length), v); } catch (err) { throw new UnsupportedRequest((err as Error).message); }
  });
}

/** A local cache exported through the client's content store over the session (BuildKit's session/content). */
export interface SessionCacheExport {
  /** Position in the request's cache exports (the frontend's local cache results carry it). */
  index: number;
  /** The client's store id: "local:" + dest, as buildctl/buildx attach it. */
  store: string;
  dest: string;
}

/** A local cache imported from the client's content store: the client resolved its tag to `digest`. */
export interface SessionCacheImport {
  store: string;
  src: string;
  digest: string;
  tag: string;
}

const localAttrs = (attrs: Record<string, string>) => Object.fromEntries(Object.entries(attrs).filter(([k]) => k === 'tag' || k === 'mode' || k === 'image-manifest'));

/**
 * Cache exports for the frontend: a local one keeps only tag and mode (its files go to the
 * client's content store, not to a path the builder could write). Local imports are read over
 * the session by the endpoint itself (sessionCaches), so the frontend never sees them.
 */
const cacheSpecs = (entries: buildkit.CacheOptionsEntry[], direction: 'to' | 'from'): KeyValueSpec[] => entries.flatMap((e) => {
  if (e.Type !== 'local') return [{ type: e.Type, attrs: { ...e.Attrs } }];
  return direction === 'to' ? [{ type: 'local', attrs: localAttrs(e.Attrs) }] : [];
});

/** The request's local caches, moved through the client's content stores. */
export function sessionCaches(req: buildkit.SolveRequest): { exports: SessionCacheExport[]; imports: SessionCacheImport[] } {
  const exports = (req.Cache?.Exports ?? []).flatMap((e, index) => (e.Type === 'local' ? [{ index, dest: e.Attrs.dest ?? '', store: `local:${e.Attrs.dest ?? ''}` }] : []));
  for (const e of exports) if (!e.dest) throw new UnsupportedRequest('--export-cache type=local needs dest=DIR');
  const imports = (req.Cache?.Imports ?? []).flatMap((e) => {
    if (e.Type !== 'local') return [];
    const src = e.Attrs.src ?? '';
    // The client drops a local import it cannot resolve (with a warning of its own); one that gets here has a digest.
    const digest = e.Attrs.digest ?? '';
    if (!src || !/^sha256:[a-f0-9]{64}$/.test(digest)) throw new UnsupportedRequest(`--import-cache type=local (src=${src.slice(0, 100)}): no cache digest: the client resolves src's index.json tag to one; export a cache there with --export-cache type=local,dest=DIR`);
    return [{ store: `local:${src}`, src, digest, tag: e.Attrs.tag || 'latest' }];
  });
  return { exports, imports };
}

/** Buildyard's own SolveRequest for a dockerfile.v0 solve, whose context is already stored. */
export function toBuildyardRequest(req: buildkit.SolveRequest, attrs: DockerfileAttrs, contextId: string, dockerfile: Buffer, dockerignore: Buffer | undefined): SolveRequest {
  return SolveRequest.fromPartial({
    contextId, dockerfile, dockerfileName: attrs.filename, buildArgs: attrs.buildArgs, target: attrs.target, platforms: attrs.platforms,
    cacheFrom: cacheSpecs(req.Cache?.Imports ?? [], 'from'), cacheTo: cacheSpecs(req.Cache?.Exports ?? [], 'to'), outputs: outputsOf(req),
    labels: attrs.labels, noCache: attrs.noCache, noCacheFilter: attrs.noCacheFilter, network: attrs.network, dockerignore: dockerignore ?? Buffer.alloc(0),
    addHosts: attrs.addHosts, shmSize: attrs.shmSize, ulimits: attrs.ulimits,
    // buildctl/buildx --allow: checked against the tenant's auth.entitlements like `buildyard build --allow`.
    entitlements: req.Entitlements,
    attests: attestsOf(req.FrontendAttrs),
  });
}

/** The request's Dockerfile asks for a frontend this builder does not run: refused before the context moves. */
export function checkSyntaxDirective(dockerfile: string, buildArgs?: Record<string, string>): void {
  try { checkSyntax(dockerfile, buildArgs); } catch (err) { throw new UnsupportedRequest((err as Error).message); }
}
