// Extended attributes of the files in a layer, read and written with system calls (native.ts):
// never through a symlink, whose target may name a file of the host.
import { syscalls } from './native.js';

export type Xattrs = Map<string, Buffer>;

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
