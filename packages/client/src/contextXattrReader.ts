// The context walk's reader of a file's own extended attributes (fsutil's walk sends them, and
// BuildKit's COPY keeps them). Node has no API for them: the system calls are in
// @buildyard/snapshot's native addon (llistxattr + lgetxattr, never through a symlink), built by
// `npm ci` on Linux. It is found through node_modules when a build needs it, never bundled (the
// CLI's bundle cannot hold a .node file). Where it is absent (another OS, an install without
// the addon) contexts go without attributes, as fsutil's walk where a file system has none.
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

type ListXattrs = (path: string) => [string, Buffer][];

let reader: ListXattrs | null | undefined;

/** The reader, or undefined where the addon cannot be loaded (loaded once per process). */
export function contextXattrReader(): ListXattrs | undefined {
  if (reader === undefined) {
    reader = null;
    if (process.platform === 'linux') {
      try {
        const require = createRequire(import.meta.url);
        const addon = join(dirname(require.resolve('@buildyard/snapshot')), '..', 'build', 'Release', 'buildyard_syscalls.node');
        reader = (require(addon) as { listXattrs: ListXattrs }).listXattrs;
      } catch {
        // no addon here: contexts are sent without attributes
      }
    }
  }
  return reader ?? undefined;
}
