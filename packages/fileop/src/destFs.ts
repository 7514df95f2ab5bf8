// Writing inside a destination root without ever leaving it: every existing symlink on the way
// is resolved relative to the root (a rootfs' "/usr/lib -> /lib" must not reach the host).
import { closeSync, constants as fsConstants, fstatSync, open, promises as fsp, type Stats } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import { FileOpError } from './FileOpError.js';
import { cleanRel, resolveScoped, splitPath, TooManyLinksError } from './resolveScoped.js';
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
 * mkdir -p of `rel` inside `root`, following existing symlinks scoped to the root (a dangling
 * link's target is made too). Directories it creates get `mode` and `owner`. Returns the absolute
 * real path of the directory.
 *
 * The root may be written while we work (a cache mount that a concurrent RUN of the same tenant
 * uses), so no name is ever resolved twice: each directory on the way is held open with O_PATH
 * and the next name is looked up, made, chowned and chmod'ed relative to it (see `at`). A name
 * swapped for a symlink at any moment is then just a symlink, read and followed inside the root.
 */
export async function ensureDir(root: string, rel: string, mode: number, owner: Owner, where: string): Promise<string> {
  let pending = splitPath(cleanRel(rel));
  if (pending.length === 0) return root;
  const dirs = [await openFd(root, O_PATH | O_DIRECTORY)]; // dirs[i] holds root/names[0..i)
  const names: string[] = [];
  const up = () => { names.pop(); closeSync(dirs.pop()!); };
  let links = 0;
  try {
    while (pending.length > 0) {
      const c = pending.shift()!;
      if (c === '..') { if (names.length > 0) up(); continue; }
      const parent = dirs[dirs.length - 1];
      const candidate = [...names, c].join('/');
      let entry = await openEntry(parent, c);
      let made = false;
      if (!entry) {
        made = await fsp.mkdir(at(parent, c)).then(() => true, (err: NodeJS.ErrnoException) => { if (err.code === 'EEXIST') return false; throw err; });
        entry = await openEntry(parent, c);
        if (!entry) throw new FileOpError('EESCAPE', `cannot create directory ${where}: /${candidate} was removed while it was created (another process writes there); run the build again`);
      }
      if (entry.st.isDirectory()) {
        dirs.push(entry.fd);
        names.push(c);
        // Whatever directory the name holds now is the one changed: it is inside the root.
        if (made) await chownChmod(entry.fd, mode, owner);
        continue;
      }
      closeSync(entry.fd);
      if (!entry.st.isSymbolicLink()) {
        throw new FileOpError('ENOTDIR', `cannot create directory ${where}: /${candidate} exists and is not a directory; remove it first or pick another destination`);
      }
      if (++links > MAX_LINKS) throw new TooManyLinksError(`too many levels of symbolic links resolving ${cleanRel(rel)}`);
      const target = await fsp.readlink(at(parent, c));
      if (target.startsWith('/')) while (names.length > 0) up();
      pending = [...splitPath(target), ...pending];
    }
    return names.length === 0 ? root : join(root, ...names);
  } finally {
    for (const fd of dirs) closeSync(fd);
  }
}

export async function mkdirOwned(abs: string, mode: number, owner: Owner): Promise<void> {
  const parent = await openFd(dirname(abs), O_PATH | O_DIRECTORY);
  try {
    await fsp.mkdir(at(parent, basename(abs)));
    // Fails (ENOTDIR) if the new directory was already swapped for a link or a file.
    const dir = await openFd(at(parent, basename(abs)), O_PATH | O_NOFOLLOW | O_DIRECTORY);
    try {
      await chownChmod(dir, mode, owner);
    } finally {
      closeSync(dir);
    }
  } finally {
    closeSync(parent);
  }
}

// Linux's O_PATH (asm-generic and x86 alike); node does not export it. An O_PATH descriptor pins
// an inode without opening it for reading, and works for directories of any mode.
export const O_PATH = 0o10000000;
const { O_DIRECTORY, O_NOFOLLOW } = fsConstants;
const MAX_LINKS = 255; // as resolveScoped

/**
 * The path of `name` inside the directory that descriptor `fd` holds, or of that directory:
 * openat()/mkdirat()/fchownat() by hand, which node lacks (and no npm package offers). The kernel
 * resolves /proc/self/fd/<fd> to the pinned inode whatever has become of its path, and mkdir,
 * readlink and O_NOFOLLOW opens do not follow the final `name`.
 */
function at(fd: number, name?: string): string {
  return name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;
}

// Raw descriptors: fstat and close of an O_PATH descriptor do no I/O, so they are done
// synchronously (an async round trip for each would make ensureDir several times slower).
const openFd = promisify(open);

/** `name` in the directory held by `parent`, pinned without following it; null when missing. */
async function openEntry(parent: number, name: string): Promise<{ fd: number; st: Stats } | null> {
  let fd: number;
  try {
    fd = await openFd(at(parent, name), O_PATH | O_NOFOLLOW);
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
  try {
    return { fd, st: fstatSync(fd) };
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** chown, then chmod (chown clears setgid; chmod is not subject to umask), of a pinned inode. */
async function chownChmod(fd: number, mode: number, owner: Owner): Promise<void> {
  await fsp.chown(at(fd), owner.uid, owner.gid);
  await fsp.chmod(at(fd), mode);
}

/** Resolves `rel` inside `root` (all symlinks followed, scoped) to an absolute path. */
export async function resolveInRoot(root: string, rel: string, followFinal = true): Promise<string> {
  const r = await resolveScoped(fsTree(root), cleanRel(rel), followFinal);
  return r === '' ? root : join(root, r);
}

/**
 * Where a file written at `rel` itself (a copy's, heredoc's or download's own destination, not an
 * entry inside a copied directory) lands: fsutil's Copy resolves the whole destination with
 * fs.RootPath, so every symlink on it, the last one included, is followed inside the root and a
 * dangling one names its target (whose parents the caller makes). Answers the root-relative path
 * and whether a directory is there.
 */
export async function resolveDest(root: string, rel: string): Promise<{ rel: string; isDir: boolean }> {
  let real: string;
  try {
    real = await resolveScoped(fsTree(root), cleanRel(rel));
  } catch (err) {
    if (err instanceof TooManyLinksError) throw new FileOpError('ELOOP', `cannot write ${showPath(rel)}: too many levels of symbolic links; fix the symlink loop in the destination`);
    throw err;
  }
  return { rel: real, isDir: !!(await lstatOrNull(join(root, real)))?.isDirectory() };
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
