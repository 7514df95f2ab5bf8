import { promises as fsp } from 'node:fs';
import { join } from 'node:path';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

export interface TreeStat {
  type: EntryType;
  /** Permission bits incl. setuid/setgid/sticky (st_mode & 0o7777). */
  mode: number;
  size: number;
}

/**
 * Read-only view of a source tree, addressed by clean relative POSIX paths ('' = the root).
 * Lets copy planning run over a real directory or over a file list from ContextSync.
 */
export interface SourceTree {
  lstat(rel: string): Promise<TreeStat | null>;
  /** Names in the directory, sorted bytewise. */
  readdir(rel: string): Promise<string[]>;
  readlink(rel: string): Promise<string>;
}

/** A file list entry, as the client's context walk reports it. */
export interface TreeEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink';
  mode: number;
  size?: number;
  /** Content digest (`sha256:<hex>`) for files. */
  digest?: string;
  linkTarget?: string;
}

export function statType(st: { isFile(): boolean; isDirectory(): boolean; isSymbolicLink(): boolean }): EntryType {
  if (st.isFile()) return 'file';
  if (st.isDirectory()) return 'dir';
  if (st.isSymbolicLink()) return 'symlink';
  return 'other';
}

export function byteCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

export function fsTree(root: string): SourceTree {
  const abs = (rel: string) => (rel === '' ? root : join(root, rel));
  return {
    async lstat(rel) {
      try {
        const st = await fsp.lstat(abs(rel));
        return { type: statType(st), mode: st.mode & 0o7777, size: st.size };
      } catch (err) {
        if (isNotFound(err)) return null;
        throw err;
      }
    },
    async readdir(rel) {
      return (await fsp.readdir(abs(rel))).sort(byteCompare);
    },
    readlink: (rel) => fsp.readlink(abs(rel)),
  };
}

export function isNotFound(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** A tree over a file list; parent directories missing from the list are implied (0755). */
export function entriesTree(entries: readonly TreeEntry[]): SourceTree & { entry(rel: string): TreeEntry | undefined } {
  const byPath = new Map<string, TreeEntry>();
  const children = new Map<string, Set<string>>([['', new Set()]]);
  for (const e of entries) {
    const rel = e.path.split('/').filter((c) => c !== '' && c !== '.').join('/');
    if (rel === '') continue;
    byPath.set(rel, { ...e, path: rel });
    const parts = rel.split('/');
    for (let i = 0; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const self = parts.slice(0, i + 1).join('/');
      if (!children.has(parent)) children.set(parent, new Set());
      children.get(parent)!.add(parts[i]);
      if (i < parts.length - 1 && !byPath.has(self)) byPath.set(self, { path: self, type: 'dir', mode: 0o755 });
    }
  }
  return {
    entry: (rel) => byPath.get(rel),
    async lstat(rel) {
      if (rel === '') return { type: 'dir', mode: 0o755, size: 0 };
      const e = byPath.get(rel);
      return e ? { type: e.type, mode: e.mode & 0o7777, size: e.size ?? 0 } : null;
    },
    async readdir(rel) {
      return [...(children.get(rel) ?? [])].sort(byteCompare);
    },
    async readlink(rel) {
      const e = byPath.get(rel);
      if (!e || e.type !== 'symlink' || e.linkTarget === undefined) throw Object.assign(new Error(`not a symlink: ${rel}`), { code: 'EINVAL' });
      return e.linkTarget;
    },
  };
}
