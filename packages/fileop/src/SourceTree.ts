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
  /** Its extended attributes as the list carries them ([name, base64 value], sorted by name): cache keys cover them. */
  xattrs?: [string, string][];
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

/** An empty or '.' component anywhere in a relative path. */
export const UNCLEAN_PATH = /(^|\/)\.?(\/|$)/;

/** A tree over a file list; parent directories missing from the list are implied (0755). */
export function entriesTree(entries: readonly TreeEntry[]): SourceTree & { entry(rel: string): TreeEntry | undefined } {
  const byPath = new Map<string, TreeEntry>();
  const children = new Map<string, Set<string>>([['', new Set()]]);
  for (const e of entries) {
    // Paths of a synced context are clean already; others lose empty and '.' components.
    const rel = UNCLEAN_PATH.test(e.path) ? e.path.split('/').filter((c) => c !== '' && c !== '.').join('/') : e.path;
    if (rel === '') continue;
    byPath.set(rel, rel === e.path ? e : { ...e, path: rel });
    // Each ancestor by its slash: a 20,000-entry context is walked on every plan.
    let parent = '';
    let start = 0;
    for (;;) {
      const slash = rel.indexOf('/', start);
      let names = children.get(parent);
      if (!names) children.set(parent, (names = new Set()));
      names.add(slash === -1 ? rel.slice(start) : rel.slice(start, slash));
      if (slash === -1) break;
      parent = rel.slice(0, slash);
      if (!byPath.has(parent)) byPath.set(parent, { path: parent, type: 'dir', mode: 0o755 });
      start = slash + 1;
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
