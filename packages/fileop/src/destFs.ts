// Writing inside a destination root without ever leaving it: every existing symlink on the way
// is resolved relative to the root (a rootfs' "/usr/lib -> /lib" must not reach the host).
import { promises as fsp } from 'node:fs';
import { join } from 'node:path';
import { FileOpError } from './FileOpError.js';
import { cleanRel, resolveScoped, splitPath } from './resolveScoped.js';
import { fsTree, isNotFound } from './SourceTree.js';

export interface Owner { uid: number; gid: number }

export const ROOT_OWNER: Owner = { uid: 0, gid: 0 };

export async function lstatOrNull(path: string) {
  try {
    return await fsp.lstat(path);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/**
 * mkdir -p of `rel` inside `root`, following existing symlinks scoped to the root. Directories
 * it creates get `mode` and `owner`. Returns the absolute real path of the directory.
 */
export async function ensureDir(root: string, rel: string, mode: number, owner: Owner, where: string): Promise<string> {
  const tree = fsTree(root);
  let current = '';
  for (const c of splitPath(cleanRel(rel))) {
    let candidate = current === '' ? c : `${current}/${c}`;
    let st = await lstatOrNull(join(root, candidate));
    if (st?.isSymbolicLink()) {
      candidate = await resolveScoped(tree, candidate, true);
      st = await lstatOrNull(join(root, candidate));
      // A dangling link to a missing directory: create its target (and parents) inside the root.
      if (!st) {
        await ensureDir(root, candidate, mode, owner, where);
        st = await lstatOrNull(join(root, candidate));
      }
    }
    if (!st) {
      await mkdirOwned(join(root, candidate), mode, owner);
    } else if (!st.isDirectory()) {
      throw new FileOpError('ENOTDIR', `cannot create directory ${where}: /${candidate} exists and is not a directory; remove it first or pick another destination`);
    }
    current = candidate;
  }
  return current === '' ? root : join(root, current);
}

export async function mkdirOwned(abs: string, mode: number, owner: Owner): Promise<void> {
  await fsp.mkdir(abs);
  await fsp.lchown(abs, owner.uid, owner.gid);
  await fsp.chmod(abs, mode); // after chown (which clears setgid) and not subject to umask
}

/** Resolves `rel` inside `root` (all symlinks followed, scoped) to an absolute path. */
export async function resolveInRoot(root: string, rel: string, followFinal = true): Promise<string> {
  const r = await resolveScoped(fsTree(root), cleanRel(rel), followFinal);
  return r === '' ? root : join(root, r);
}

/** Removes a non-directory at `abs` so a new entry can take its place; refuses directories. */
export async function clearForFile(abs: string, where: string): Promise<void> {
  const st = await lstatOrNull(abs);
  if (!st) return;
  if (st.isDirectory()) throw new FileOpError('EISDIR', `cannot overwrite directory ${where} with a non-directory; remove it first or copy elsewhere`);
  await fsp.unlink(abs);
}

/** Sets ownership, then mode (chown clears setuid bits), then times; symlinks get no mode. */
export async function applyMeta(abs: string, isSymlink: boolean, owner: Owner, mode: number | null, mtime: Date | null): Promise<void> {
  await fsp.lchown(abs, owner.uid, owner.gid);
  if (!isSymlink && mode !== null) await fsp.chmod(abs, mode);
  if (mtime) await fsp.lutimes(abs, mtime, mtime);
}

/** Destination-relative display path for messages. */
export function showPath(rel: string): string {
  return '/' + cleanRel(rel);
}
