// The host path a build names inside one of its roots (another stage's rootfs, an image, the
// context), for handing to something that will follow symlinks on the host (a bind mount, cp).
//
// Node has no openat2(RESOLVE_IN_ROOT), so the path is resolved component by component with
// lstat/readlink: absolute links restart at the root and `..` stops there (resolveScoped). That
// is only sound if nothing can swap a component for a symlink between this check and the use,
// and the callers guarantee it: the roots are read-only views of committed snapshots or a
// materialised context, which no process writes while a step is prepared. As a second line, the
// result is checked with realpath(3): any symlink left on the way (a race or a bug) that leads
// out of the root makes it fail instead of answering a host path. Where the root is writable
// while we work (a cache mount that a concurrent RUN of the same tenant uses), pinPathInRoot()
// closes the race for good: it opens the checked entry with O_PATH and hands out
// /proc/<pid>/fd/<n>, so a mount binds exactly the inode that was checked, whatever later
// happens to the names on the way. A missing directory it is asked to create is made, chowned
// and chmod'ed only through descriptors of its pinned parents (ensureDir), never by path.
import { promises as fsp } from 'node:fs';
import { join, sep } from 'node:path';
import { ensureDir, O_PATH, type Owner } from './destFs.js';
import { FileOpError } from './FileOpError.js';
import { cleanRel, resolveScoped } from './resolveScoped.js';
import { fsTree, isNotFound } from './SourceTree.js';

export interface PathInRoot {
  /** Absolute host path of the resolved entry (under the real path of the root). */
  path: string;
  /** The path relative to the root after resolution ('' is the root itself). */
  rel: string;
}

/**
 * Resolves `path` (as the build wrote it; a leading '/' is the root) inside `root` with every
 * symlink interpreted relative to the root. Fails with ENOSOURCE when it does not exist.
 * `label` names the instruction in messages, e.g. "RUN --mount=type=bind,source=/x".
 */
export async function pathInRoot(root: string, path: string, label: string): Promise<PathInRoot> {
  return (await resolveChecked(root, path, label)).found;
}

async function resolveChecked(root: string, path: string, label: string): Promise<{ found: PathInRoot; realRoot: string }> {
  const realRoot = await fsp.realpath(root);
  let rel: string;
  try {
    rel = await resolveScoped(fsTree(realRoot), cleanRel(path), true);
  } catch (err) {
    throw new FileOpError('ENOSOURCE', `${label}: ${(err as Error).message}; fix the symlink loop in the source`);
  }
  const abs = rel === '' ? realRoot : join(realRoot, rel);
  let real: string;
  try {
    real = await fsp.realpath(abs);
  } catch (err) {
    if (isNotFound(err)) throw new FileOpError('ENOSOURCE', `${label}: /${rel} does not exist in the mounted source; check the path and the stage it comes from`);
    throw err;
  }
  if (real !== abs || (real !== realRoot && !real.startsWith(realRoot + sep))) {
    throw changedError(label);
  }
  return { found: { path: abs, rel }, realRoot };
}

/** A path pinned to one inode: valid until close(). */
export interface PinnedPath extends PathInRoot {
  close(): Promise<void>;
}

/**
 * pathInRoot(), then the entry is opened with O_PATH and answered as /proc/<pid>/fd/<n>. With
 * `create`, a missing directory is first made inside the root (parents too, symlinks scoped).
 */
export async function pinPathInRoot(root: string, path: string, label: string, create?: { mode: number; owner: Owner }): Promise<PinnedPath> {
  if (create) await ensureDir(await fsp.realpath(root), cleanRel(path), create.mode, create.owner, `${label}: /${cleanRel(path)}`);
  const { found, realRoot } = await resolveChecked(root, path, label);
  const handle = await fsp.open(found.path, O_PATH | fsp.constants.O_NOFOLLOW);
  try {
    // What the descriptor really names now: a symlink or a place outside the root means the
    // path was changed under us.
    const where = await fsp.readlink(`/proc/self/fd/${handle.fd}`);
    if ((await handle.stat()).isSymbolicLink() || (where !== realRoot && !where.startsWith(realRoot + sep))) {
      throw changedError(label);
    }
  } catch (err) {
    await handle.close();
    throw err;
  }
  return { ...found, path: `/proc/${process.pid}/fd/${handle.fd}`, close: () => handle.close() };
}

function changedError(label: string): FileOpError {
  return new FileOpError('EESCAPE', `${label}: the source changed while it was resolved (it leads outside its root); run the build again`);
}
