// Extended attributes of the files in a layer, read and written with system calls (native.ts):
// never through a symlink, whose target may name a file of the host.
import { syscalls } from './native.js';

export type Xattrs = Map<string, Buffer>;

/** overlayfs keeps its own state in these; they never leave a snapshot nor enter one. */
export const OVERLAY_XATTR_PREFIX = 'trusted.overlay.';

/** The extended attributes of `path` itself (all namespaces; none where the filesystem has none). */
export function readXattrs(path: string): Xattrs {
  return new Map(syscalls.listXattrs(path));
}

/** Writes each item's extended attributes onto the file itself. Paths must be absolute. */
export function restoreXattrs(items: Iterable<{ path: string; xattrs: Xattrs }>): void {
  for (const { path, xattrs } of items) {
    for (const [name, value] of xattrs) syscalls.setXattr(path, name, value);
  }
}

/**
 * Sets `xattrs` on `path` itself, as fsutil's copy and docker's archive.Unpack (BuildKit's COPY
 * and ADD) do once the owner is set (a chown clears security.capability). One the destination
 * refuses (user.* on a symlink, security.selinux without a policy) is skipped, as BuildKit goes
 * on; overlayfs's own are never set.
 */
export function setXattrs(path: string, xattrs: Iterable<[string, Buffer]>): void {
  for (const [name, value] of xattrs) {
    if (name.startsWith(OVERLAY_XATTR_PREFIX)) continue;
    try {
      syscalls.setXattr(path, name, value);
    } catch {
      // refused by the destination: BuildKit goes on too
    }
  }
}

/** COPY's xattrs (fsutil's copy): every attribute of `src` itself onto `dest` itself, as setXattrs. */
export function copyXattrs(src: string, dest: string): void {
  setXattrs(dest, syscalls.listXattrs(src));
}
