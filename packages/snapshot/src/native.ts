// The system calls of native/syscalls.c (built by `npm ci` with node-gyp): the same path from src/ and dist/.
import { createRequire } from 'node:module';

export interface Syscalls {
  /** mount(2); relative paths in `data` resolve against `cwd` (on a thread of its own). */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null, cwd: string | null): Promise<void>;
  /** umount2(2). */
  umount(target: string, flags: number): Promise<void>;
  /** The file's own extended attributes (llistxattr + lgetxattr): never a symlink's target's. */
  listXattrs(path: string): [name: string, value: Buffer][];
  /** lsetxattr(2). */
  setXattr(path: string, name: string, value: Buffer): void;
}

export const syscalls = createRequire(import.meta.url)('../build/Release/buildyard_syscalls.node') as Syscalls;
