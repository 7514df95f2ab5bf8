// runc creates missing mount points inside the rootfs; left there they would land in the layer
// as empty files and directories (/proc, /etc/hosts, ...). We create them ourselves, remember
// which we made, and remove them after the run (also needed for a read-only rootfs, where runc
// could not create them).
import { lstatSync, mkdirSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { resolveInRoot } from './resolveInRoot.js';

export interface MountStub {
  target: string;
  kind: 'dir' | 'file';
}

/** Creates what is missing; returns host paths created, parents first. */
export function createMountStubs(rootfs: string, stubs: MountStub[]): string[] {
  const created: string[] = [];
  for (const stub of stubs) {
    const hostPath = resolveInRoot(rootfs, stub.target);
    if (exists(hostPath)) continue;
    mkdirParents(dirname(hostPath), rootfs, created);
    if (stub.kind === 'dir') mkdirSync(hostPath, { mode: 0o755 });
    else writeFileSync(hostPath, '', { mode: 0o644, flag: 'wx' });
    created.push(hostPath);
  }
  return created;
}

/** Removes stubs in reverse order, leaving anything the process put into them. */
export function removeMountStubs(created: string[]): void {
  for (const path of [...created].reverse()) {
    try {
      const st = lstatSync(path);
      if (st.isDirectory()) rmdirSync(path);
      else if (st.isFile() && st.size === 0) unlinkSync(path);
    } catch {
      // Not empty any more (the process wrote into it) or already gone: keep what is there.
    }
  }
}

function mkdirParents(dir: string, rootfs: string, created: string[]): void {
  if (dir === rootfs || exists(dir)) return;
  mkdirParents(dirname(dir), rootfs, created);
  mkdirSync(dir, { mode: 0o755 });
  created.push(dir);
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
