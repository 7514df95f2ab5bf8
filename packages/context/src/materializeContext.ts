import { chmod, copyFile, link, mkdir, stat, symlink, utimes } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ContextError } from './ContextError.js';
import { isDirectory, isRegular, isSymlink, type ContextEntry } from './ContextEntry.js';
import { readManifest, type ContextStore } from './ContextStore.js';
import { validateEntrySet } from './validateEntries.js';

export interface MaterializeOptions {
  /** Only entries for which this returns true are written (parents are created as needed). */
  include?: (path: string) => boolean;
  /** Never hardlink from the store, always copy (for consumers that modify files in place). */
  copy?: boolean;
}

export interface MaterializeResult {
  entries: number;
  linked: number;
  copied: number;
}

const FIXED_TIME = new Date(0);

/**
 * Writes a context into `destDir` (which must be empty or absent). Files are hardlinked from
 * the store when the store blob has exactly the wanted permissions and lives on the same
 * filesystem — chmod on a hardlink would change the shared blob — else copied.
 */
export async function materializeContext(store: ContextStore, contextId: string, destDir: string, opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  const entries = await readManifest(store, contextId);
  // The manifest was validated on upload; re-check so a tampered store cannot write outside destDir.
  validateEntrySet(entries);
  const dest = resolve(destDir);
  await mkdir(dest, { recursive: true });
  const destDev = (await stat(dest)).dev;
  const blobInfo = new Map<string, { dev: number; perm: number }>();
  const dirs: ContextEntry[] = [];
  const result: MaterializeResult = { entries: 0, linked: 0, copied: 0 };
  for (const e of entries) {
    if (opts.include && !opts.include(e.path)) continue;
    const target = join(dest, e.path);
    const perm = e.mode & 0o7777;
    result.entries++;
    if (isDirectory(e)) {
      // Directories stay writable until all children exist; their modes are applied last.
      await mkdir(target, { recursive: true });
      dirs.push(e);
      continue;
    }
    await mkdir(dirname(target), { recursive: true });
    if (isSymlink(e)) {
      await symlink(e.linkTarget, target);
    } else if (isRegular(e)) {
      const blob = store.content.path(e.digest);
      let info = blobInfo.get(e.digest);
      if (info === undefined) {
        try {
          const st = await stat(blob);
          info = { dev: st.dev, perm: st.mode & 0o7777 };
        } catch {
          throw new ContextError(`context ${contextId}: content ${e.digest} of ${JSON.stringify(e.path)} is missing from the store; upload the context again`);
        }
        blobInfo.set(e.digest, info);
      }
      if (!opts.copy && info.dev === destDev && info.perm === perm) {
        try {
          await link(blob, target);
          result.linked++;
          continue;
        } catch {
          // EXDEV on bind mounts, EMLINK on busy blobs: copying is always correct.
        }
      }
      await copyFile(blob, target);
      await chmod(target, perm);
      await utimes(target, FIXED_TIME, FIXED_TIME);
      result.copied++;
    }
  }
  for (const d of dirs.reverse()) {
    await chmod(join(dest, d.path), d.mode & 0o7777);
  }
  return result;
}
