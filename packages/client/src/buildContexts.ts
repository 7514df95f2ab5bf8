// --build-context name=VALUE (buildx's named contexts): VALUE is a local directory (synced like
// the build context, with its own .dockerignore, and sent as `local:<context id>`),
// `docker-image://REF[@DIGEST]`, or a git URL (fetched by the server). What buildx also accepts
// but this builder cannot use yet (oci-layout://, an http(s) tarball, bake's target:) is
// refused before anything is uploaded.
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { readDockerignore } from '@buildyard/context';
import { parseGitRef } from '@buildyard/dockerfile';
import { usageError } from './ClientError.js';

export type BuildContextFlag = { name: string; dir: string } | { name: string; value: string };

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
    let git;
    try { git = parseGitRef(value); } catch (err) { throw usageError(`${shown}: ${(err as Error).message}`); }
    if (git) { out.push({ name, value }); continue; }
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(value) || value.startsWith('target:') || value.startsWith('input:')) {
      throw usageError(`${shown}: not supported by buildyard; use a directory, docker-image://REF or a git URL (https://host/repo.git#ref:dir)`);
    }
    const dir = resolve(cwd, value);
    const st = await stat(dir).catch(() => undefined);
    if (!st?.isDirectory()) throw usageError(`${shown}: ${value.slice(0, 200)} is not a directory; pass a directory, docker-image://REF or a git URL`);
    out.push({ name, dir });
  }
  return out;
}

/** The SolveRequest's named_contexts: directories synced through `sync` (dir, .dockerignore
 *  patterns -> context id), the rest as given. */
export async function namedContextValues(flags: readonly BuildContextFlag[], sync: (dir: string, dockerignore: string[]) => Promise<string>): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const f of flags) out[f.name] = 'dir' in f ? `local:${await sync(f.dir, await readDockerignore(f.dir))}` : f.value;
  return out;
}
