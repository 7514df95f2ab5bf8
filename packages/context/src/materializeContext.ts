import { constants } from 'node:fs';
import { chmod, copyFile, link, lutimes, mkdir, stat, symlink, utimes } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ContextError } from './ContextError.js';
import { isDirectory, isRegular, isSymlink, modTimeSeconds, type ContextEntry } from './ContextEntry.js';
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

/**
 * Writes a context into `destDir` (which must be empty or absent), every entry with the client's
 * modification time (COPY keeps it, as BuildKit's does; entries without one get the epoch).
 * Files are hardlinked from the store only when the store blob has exactly the wanted
 * permissions and mtime and lives on the same filesystem — chmod or utimes on a hardlink would
 * change the shared blob, which other entries and contexts use with their own times — else
 * copied (reflinked where the filesystem can).
 */
export async function materializeContext(store: ContextStore, contextId: string, destDir: string, opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  const entries = await readManifest(store, contextId);
  // The manifest was validated on upload; re-check so a tampered store cannot write outside destDir.
  validateEntrySet(entries);
  const dest = resolve(destDir);
  await mkdir(dest, { recursive: true });
  const destDev = (await stat(dest)).dev;
  const blobInfo = new Map<string, { dev: number; perm: number; mtimeNs: bigint }>();
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
      await lutimes(target, modTimeSeconds(e), modTimeSeconds(e));
    } else if (isRegular(e)) {
      const blob = store.content.path(e.digest);
      let info = blobInfo.get(e.digest);
      if (info === undefined) {
        try {
          const st = await stat(blob, { bigint: true });
          info = { dev: Number(st.dev), perm: Number(st.mode & 0o7777n), mtimeNs: st.mtimeNs };
        } catch {
          throw new ContextError(`context ${contextId}: content ${e.digest} of ${JSON.stringify(e.path)} is missing from the store; upload the context again`);
        }
        blobInfo.set(e.digest, info);
      }
      if (!opts.copy && info.dev === destDev && info.perm === perm && info.mtimeNs === BigInt(e.modTime || '0')) {
        try {
          await link(blob, target);
          result.linked++;
          continue;
        } catch {
          // EXDEV on bind mounts, EMLINK on busy blobs: copying is always correct.
        }
      }
      await copyFile(blob, target, constants.COPYFILE_FICLONE);
      await chmod(target, perm);
      await utimes(target, modTimeSeconds(e), modTimeSeconds(e));
      result.copied++;
    }
  }
  // Deepest first, after all children exist, so writing into a directory does not bump its time.
  for (const d of dirs.reverse()) {
    await chmod(join(dest, d.path), d.mode & 0o7777);
    await utimes(join(dest, d.path), modTimeSeconds(d), modTimeSeconds(d));
  }
  return result;
}
