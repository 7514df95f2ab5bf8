// runc resolves each mount's target when it mounts it, through the image's symlinks and the
// mounts made before it, and then makes the container's devices in /dev and masks /proc paths
// with /dev/null. runc before 1.2.8 (Debian bookworm's 1.1.5, used here and in infra/deploy) can
// be steered through those names (CVE-2025-31133, CVE-2025-52565, CVE-2025-52881): a process
// that changes a directory runc is setting up, such as a shared cache mount placed at /dev,
// turns runc's own bind mounts against the host. A build chooses its mount targets and ships
// its image's symlinks, so the executor refuses every layout that would let it take part in
// runc's setup: targets in /proc, /sys and runc's /dev; an image whose /proc, /dev or /sys is
// not a directory; targets inside a shared cache mount (another step writes it meanwhile); and
// targets reached through a symlink, of the image or of a mount below them.
import { lstatSync } from 'node:fs';
import { join, posix, relative } from 'node:path';
import { resolveInRoot } from './resolveInRoot.js';
import type { Mount } from './types.js';

/** Under /dev a build owns /dev/shm; /dev/pipes holds RUN heredocs (as BuildKit's). */
const ownDevDirs = ['/dev/shm', '/dev/pipes'];

const within = (path: string, dir: string) => path === dir || path.startsWith(dir === '/' ? '/' : dir + '/');
const strictlyWithin = (path: string, dir: string) => path !== dir && within(path, dir);

/** The directory runc sets up that holds `path`, or undefined when a build may mount there. */
function runtimeDirOf(path: string): string | undefined {
  for (const dir of ['/proc', '/sys']) if (within(path, dir)) return dir;
  if (within(path, '/dev') && !ownDevDirs.some((own) => within(path, own))) return '/dev';
  return undefined;
}

function kindOf(path: string): string | undefined {
  try {
    const st = lstatSync(path);
    return st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file';
  } catch {
    return undefined; // missing: runc makes it
  }
}

/** The first symlink among `parts` below `dir`, as a path relative to it; undefined if none. */
function firstSymlink(dir: string, parts: string[]): string | undefined {
  for (let i = 1; i <= parts.length; i++) {
    const kind = kindOf(join(dir, ...parts.slice(0, i)));
    if (kind === 'symlink') return parts.slice(0, i).join('/');
    if (kind !== 'directory') return undefined; // missing or a file: nothing further to follow
  }
  return undefined;
}

/** Throws a one-line error naming the target and what to do when runc could be steered through it. */
export function checkMountLayout(rootfs: string, mounts: readonly Mount[]): void {
  for (const dir of ['proc', 'dev', 'sys']) {
    const kind = kindOf(join(rootfs, dir));
    if (kind && kind !== 'directory') throw new Error(`the image's /${dir} is a ${kind}, not a directory: the container's /${dir} would be set up through it; make /${dir} a directory in the image`);
  }
  const targets = mounts.map((m) => posix.resolve('/', m.target));
  for (const [i, target] of targets.entries()) {
    const runtimeDir = runtimeDirOf(target);
    if (runtimeDir) throw new Error(`mount target ${target} is inside ${runtimeDir}, which the container runtime sets up: choose another target${runtimeDir === '/dev' ? ' (under /dev, /dev/shm is the build\'s)' : ''}`);
    // The deepest other mount holding this target: runc reaches the target through it.
    const parent = mounts
      .map((m, j) => ({ mount: m, at: targets[j]! }))
      .filter(({ at }, j) => j !== i && strictlyWithin(target, at))
      .sort((a, b) => b.at.length - a.at.length)[0];
    if (parent) {
      if (parent.mount.type === 'tmpfs') continue; // fresh and empty: nothing to follow
      if (parent.mount.shared) throw new Error(`mount target ${target} is inside the cache mount at ${parent.at}, which other steps change while this one starts: mount it outside ${parent.at}`);
      const link = firstSymlink(parent.mount.source, relative(parent.at, target).split('/'));
      if (link) throw new Error(`mount target ${target} passes through the symlink ${posix.join(parent.at, link)} of the mount at ${parent.at}: choose a target without symlinks`);
      continue;
    }
    const resolved = posix.resolve('/', relative(rootfs, resolveInRoot(rootfs, target)).split('/').join('/'));
    if (resolved === target) continue;
    const reached = runtimeDirOf(resolved) ?? targets.find((at, j) => j !== i && within(resolved, at));
    if (reached) throw new Error(`mount target ${target} leads through a symlink of the image to ${resolved}, inside ${reached}: mount at a path without symlinks`);
  }
}
