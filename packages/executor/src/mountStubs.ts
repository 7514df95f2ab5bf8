// runc creates missing mount points inside the rootfs; left there they would land in the layer
// as empty files and directories (/proc, /etc/hosts, ...). We create them ourselves, remember
// which we made, and remove them after the run (also needed for a read-only rootfs, where runc
// could not create them).
import { lstatSync, mkdirSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, join, relative, sep } from 'node:path';
import { resolveInRoot } from './resolveInRoot.js';

export interface MountStub {
  target: string;
  kind: 'dir' | 'file';
}

/**
 * A stub createMountStubs made: where (its host path then, and its components below the rootfs)
 * and which inode it is. The step may move it or a parent and put a symlink in its place, so
 * removal never goes by the host path: see removeMountStubs.
 */
export interface CreatedStub {
  /** The rootfs it was made in. */
  root: string;
  /** Its host path when it was made (for callers to tell stubs apart; removal does not use it). */
  path: string;
  /** Its path components below `root`, none of them a symlink when it was made. */
  parts: readonly string[];
  dev: bigint;
  ino: bigint;
}

/** Creates what is missing; returns the stubs created, parents first. */
export function createMountStubs(rootfs: string, stubs: MountStub[]): CreatedStub[] {
  const created: CreatedStub[] = [];
  for (const stub of stubs) {
    const hostPath = resolveInRoot(rootfs, stub.target);
    if (exists(hostPath)) continue;
    mkdirParents(dirname(hostPath), rootfs, created);
    if (stub.kind === 'dir') mkdirSync(hostPath, { mode: 0o755 });
    else writeFileSync(hostPath, '', { mode: 0o644, flag: 'wx' });
    created.push(record(rootfs, hostPath));
  }
  return created;
}

/**
 * Removes stubs in reverse order, leaving anything the process put into them. Call only once
 * nothing writes the rootfs any more (the container is gone): each stub is looked up again from
 * the rootfs one lstat'ed component at a time, every parent a real directory (no symlink the
 * step put in place of one, which would lead the removal to a host path), and removed only if
 * it is still the very inode created (an empty directory or an empty file). Anything else is
 * skipped: a stub the step moved or replaced is the step's business.
 */
export function removeMountStubs(created: readonly CreatedStub[]): void {
  for (const stub of [...created].reverse()) {
    try {
      const path = lookUp(stub);
      if (path === undefined) continue;
      const st = lstatSync(path, { bigint: true });
      if (st.dev !== stub.dev || st.ino !== stub.ino) continue;
      if (st.isDirectory()) rmdirSync(path);
      else if (st.isFile() && st.size === 0n) unlinkSync(path);
    } catch {
      // Not empty any more (the process wrote into it) or already gone: keep what is there.
    }
  }
}

/** The stub's host path if every parent below the rootfs is still a real directory, else undefined. */
function lookUp(stub: CreatedStub): string | undefined {
  if (stub.parts.length === 0) return undefined;
  let path = stub.root;
  for (const [i, part] of stub.parts.entries()) {
    if (part === '' || part === '.' || part === '..' || part.includes('/')) return undefined;
    path = join(path, part);
    if (i < stub.parts.length - 1 && !lstatSync(path).isDirectory()) return undefined;
  }
  return path;
}

function record(rootfs: string, hostPath: string): CreatedStub {
  const st = lstatSync(hostPath, { bigint: true });
  const rel = relative(rootfs, hostPath);
  // resolveInRoot never leaves the rootfs; a stub that somehow did is never removed.
  const parts = rel === '' || rel === '..' || rel.startsWith(`..${sep}`) || isAbsolute(rel) ? [] : rel.split(sep);
  return { root: rootfs, path: hostPath, parts, dev: st.dev, ino: st.ino };
}

function mkdirParents(dir: string, rootfs: string, created: CreatedStub[]): void {
  if (dir === rootfs || exists(dir)) return;
  mkdirParents(dirname(dir), rootfs, created);
  mkdirSync(dir, { mode: 0o755 });
  created.push(record(rootfs, dir));
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

export function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}
