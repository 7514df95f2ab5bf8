// RUN --mount=type=cache directories on a worker: `<stateDir>/cache-mounts/<name>`, one per
// tenant and cache id (the name hashes both: no tenant reaches another's, no id is a path).
// Beside each directory, `<name>.tenant` records whose it is, out of reach of the steps that
// mount it, so that a tenant's prune removes its own directories and no other's. A directory
// made before these records existed gets one the next time its tenant mounts it; until then
// only the worker's GC and an operator's prune remove it. Names with a dot are records (or a
// record being written), never cache directories.
import { createHash, randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const CACHE_MOUNTS_DIR = 'cache-mounts';
const RECORD = '.tenant';

/** The directory of cache `id` of `tenant` under a worker's state dir. */
export function cacheMountDir(stateDir: string, tenant: string, id: string): string {
  return join(stateDir, CACHE_MOUNTS_DIR, createHash('sha256').update(`${tenant}\0${id}`).digest('hex').slice(0, 32));
}

/**
 * Records `tenant` as the one whose cache directory `dir` is (once; written aside, then renamed,
 * each call its own partial file: steps mounting the same cache at once may both write it).
 */
export async function recordCacheMountTenant(dir: string, tenant: string): Promise<void> {
  if ((await cacheMountTenant(dir)) === tenant) return;
  const partial = `${dir}.${randomBytes(6).toString('hex')}${RECORD}-partial`;
  await writeFile(partial, tenant);
  await rename(partial, `${dir}${RECORD}`);
}

/** The tenant recorded for cache directory `dir`; undefined for one made before the records. */
export function cacheMountTenant(dir: string): Promise<string | undefined> {
  return readFile(`${dir}${RECORD}`, 'utf8').catch(() => undefined);
}

/** Drops the record of a cache directory that is gone. */
export function forgetCacheMountTenant(dir: string): Promise<void> {
  return rm(`${dir}${RECORD}`, { force: true });
}

/** True for a name in the cache-mounts dir that is a record, not a cache directory. */
export function isCacheMountRecord(name: string): boolean {
  return name.includes('.');
}
