// --build-context name=VALUE (buildx's named contexts): VALUE is a local directory (synced like
// the build context, with its own .dockerignore, and sent as `local:<context id>`),
// `docker-image://REF[@DIGEST]`, a git URL (fetched by the server), or
// `oci-layout://DIR[:TAG][@DIGEST]`, an image in a local OCI layout (its tag resolved here, as
// buildx does; the directory synced like a context and sent as
// `oci-layout://local:<context id>@<digest>`), or another http(s) URL (a file the server
// downloads). What buildx also accepts but this builder cannot use yet (bake's target:) is
// refused before anything is uploaded.
import { constants } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { readDockerignore } from '@buildyard/context';
import { parseGitRef } from '@buildyard/dockerfile';
import { usageError } from './ClientError.js';

export type BuildContextFlag =
  | { name: string; dir: string }
  | { name: string; value: string }
  | { name: string; layout: { dir: string; digest: string } };

const LAYOUT_PREFIX = 'oci-layout://';
// distribution/reference's DigestRegexp and TagRegexp, which buildx's ocilayout.Parse uses.
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const TAG = /^\w[\w.-]{0,127}$/;

/** buildx's ocilayout.Parse: `oci-layout://PATH[:TAG][@DIGEST]`, tag `latest` when neither is given. */
export function parseLayoutRef(value: string): { path: string; tag?: string; digest?: string } {
  let path = value.slice(LAYOUT_PREFIX.length);
  let digest: string | undefined;
  let tag: string | undefined;
  const at = path.lastIndexOf('@');
  if (at >= 0 && DIGEST.test(path.slice(at + 1))) { digest = path.slice(at + 1); path = path.slice(0, at); }
  const colon = path.lastIndexOf(':');
  if (colon >= 0 && TAG.test(path.slice(colon + 1))) { tag = path.slice(colon + 1); path = path.slice(0, colon); }
  return { path, ...(tag ? { tag } : {}), ...(digest ? { digest } : !tag ? { tag: 'latest' } : {}) };
}

type IndexEntry = { digest?: unknown; annotations?: Record<string, string> };

/**
 * buildx's resolveDigest: the entry whose io.containerd.image.name, else whose ref.name, is
 * `tag`; else the index's only entry. Read without following a link at index.json.
 */
async function layoutDigest(dir: string, tag: string, shown: string): Promise<string> {
  let manifests: IndexEntry[];
  try {
    const handle = await open(join(dir, 'index.json'), constants.O_RDONLY | constants.O_NOFOLLOW);
    try { manifests = (JSON.parse(await handle.readFile('utf8')) as { manifests?: IndexEntry[] }).manifests ?? []; } finally { await handle.close(); }
  } catch (err) {
    throw usageError(`${shown}: no OCI layout at ${dir.slice(0, 200)} (${(err as NodeJS.ErrnoException).code ?? 'index.json is not JSON'}); write one with --output type=oci,dest=DIR,tar=false`);
  }
  const entry = manifests.find((m) => m.annotations?.['io.containerd.image.name'] === tag)
    ?? manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === tag)
    ?? (manifests.length === 1 ? manifests[0] : undefined);
  if (!entry) throw usageError(`${shown}: oci-layout reference could not be resolved: no image tagged "${tag.slice(0, 128)}" in ${dir.slice(0, 200)}/index.json; add :TAG or @DIGEST`);
  return String(entry.digest);
}

/** An image in a local OCI layout: its directory and the digest it names (sha256, the layout's blob names). */
async function layoutContext(value: string, cwd: string, shown: string): Promise<{ dir: string; digest: string }> {
  const ref = parseLayoutRef(value);
  if (!ref.path) throw usageError(`${shown}: oci-layout:// needs a directory`);
  const dir = resolve(cwd, ref.path);
  const digest = ref.digest ?? await layoutDigest(dir, ref.tag ?? 'latest', shown);
  if (!/^sha256:[a-f0-9]{64}$/.test(digest)) throw usageError(`${shown}: invalid oci-layout digest ${digest.slice(0, 100)}; a layout names its blobs by sha256:<64 hex>`);
  return { dir, digest };
}

/** Parses the flags (checked: names, duplicates, directories exist). */
export async function parseBuildContexts(values: readonly string[] = [], cwd: string): Promise<BuildContextFlag[]> {
  const out: BuildContextFlag[] = [];
  const seen = new Set<string>();
  for (const raw of values) {
    const eq = raw.indexOf('=');
    const name = eq < 0 ? '' : raw.slice(0, eq).trim();
    const value = eq < 0 ? '' : raw.slice(eq + 1).trim();
    const shown = `--build-context "${raw.slice(0, 200)}"`;
    if (!name || !value) throw usageError(`${shown}: expected name=VALUE (a directory, docker-image://REF or a git URL)`);
    if (seen.has(name)) throw usageError(`${shown}: a context named "${name.slice(0, 100)}" is given twice`);
    seen.add(name);
    if (value.startsWith('docker-image://')) {
      if (value.length === 'docker-image://'.length) throw usageError(`${shown}: docker-image:// needs an image reference`);
      out.push({ name, value });
      continue;
    }
    if (value.startsWith(LAYOUT_PREFIX)) {
      out.push({ name, layout: await layoutContext(value, cwd, shown) });
      continue;
    }
    let git;
    try { git = parseGitRef(value); } catch (err) { throw usageError(`${shown}: ${(err as Error).message}`); }
    if (git) { out.push({ name, value }); continue; }
    // Any other http(s) URL: downloaded by the builder, the file alone (dockerui's llb.HTTP).
    if (/^https?:\/\//i.test(value)) { out.push({ name, value }); continue; }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || value.startsWith('target:') || value.startsWith('input:')) {
      throw usageError(`${shown}: not supported by buildyard; use a directory, docker-image://REF, oci-layout://DIR[:TAG], a git URL (https://host/repo.git#ref:dir) or an http(s) URL`);
    }
    const dir = resolve(cwd, value);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw usageError(`${shown}: ${value.slice(0, 200)} is not a directory; pass a directory, docker-image://REF or a git URL`);
    out.push({ name, dir });
  }
  return out;
}

/** The SolveRequest's named_contexts: directories synced through `sync` (dir, .dockerignore
 *  patterns -> context id; a layout whole), the rest as given. */
export async function namedContextValues(flags: readonly BuildContextFlag[], sync: (dir: string, dockerignore: string[]) => Promise<string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of flags) {
    if ('dir' in f) out[f.name] = `local:${await sync(f.dir, await readDockerignore(f.dir))}`;
    else if ('layout' in f) out[f.name] = `${LAYOUT_PREFIX}local:${await sync(f.layout.dir, [])}@${f.layout.digest}`;
    else out[f.name] = f.value;
  }
  return out;
}
