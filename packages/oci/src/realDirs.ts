// Whether a path inside a tree still leads through real directories only. An unpacker records
// directories' metadata and applies it last (so writing children does not disturb it), but a
// later entry can put a link (`d -> /etc/shadow`) in place of a recorded directory or one of its
// parents, and chmod, utimes and lsetxattr by path would follow it out of the tree.
import type { Stats } from 'node:fs';
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A check of `root/rel` that lstat's each component in turn, never letting the kernel resolve
 * one: true when every directory on the way (and `rel` itself with `self`) is a real directory.
 * Components found real are remembered, so the caller must be the tree's only writer meanwhile.
 */
export function realDirChecker(root: string): (rel: string, self: boolean) => Promise<boolean> {
  const known = new Set<string>(['']);
  return async (rel, self) => {
    const parts = rel.split('/').filter((p) => p !== '' && p !== '.');
    if (parts.includes('..')) return false;
    for (let i = 1; i <= (self ? parts.length : parts.length - 1); i++) {
      const prefix = parts.slice(0, i).join('/');
      if (known.has(prefix)) continue;
      const st: Stats | null = await lstat(join(root, prefix)).catch(() => null);
      if (!st?.isDirectory()) return false;
      known.add(prefix);
    }
    return true;
  };
}
