// The entry model shared by the client walker, the sync protocol and the server store. Field
// names match the proto's ContextEntry so entries go on the wire without conversion.
import { sameXattrs, type EntryXattrs } from './contextXattrs.js';

export interface ContextEntry {
  /** Slash-separated, relative to the context root, no "..", no leading "/". */
  path: string;
  /** Unix mode including the file type bits (S_IFREG, S_IFDIR or S_IFLNK only). */
  mode: number;
  /** Content size for regular files, 0 otherwise. */
  size: number;
  /** `sha256:<hex>` of the content for regular files, "" otherwise. */
  digest: string;
  /** Target of a symlink, "" otherwise. */
  linkTarget: string;
  /**
   * Modification time, nanoseconds since the Unix epoch as a decimal string (beyond a JS
   * number). COPY from the context keeps it, as BuildKit does; absent or "0" means unknown
   * (older clients) and materializes as the epoch. It belongs to the entry, never to the
   * content blob, so identical contents with different times still share one blob.
   */
  modTime?: string;
  /**
   * The entry's own extended attributes that a context keeps (see contextXattrs.ts); absent
   * when none. Like modTime they belong to the entry, not to the content blob.
   */
  xattrs?: EntryXattrs;
  /**
   * Another name of a regular file (a hard link): the path of the file's first name in walk
   * order, as fsutil's Stat.Linkname, which is an earlier regular entry without one. The entry
   * repeats that entry's mode, size, digest, modTime and xattrs; a tree links it to that name.
   * Absent for a file's first (or only) name.
   */
  hardlinkTo?: string;
}

export const S_IFMT = 0o170000;
export const S_IFREG = 0o100000;
export const S_IFDIR = 0o040000;
export const S_IFLNK = 0o120000;

export function isRegular(e: Pick<ContextEntry, 'mode'>): boolean {
  return (e.mode & S_IFMT) === S_IFREG;
}
export function isDirectory(e: Pick<ContextEntry, 'mode'>): boolean {
  return (e.mode & S_IFMT) === S_IFDIR;
}
export function isSymlink(e: Pick<ContextEntry, 'mode'>): boolean {
  return (e.mode & S_IFMT) === S_IFLNK;
}
/** The content bytes an entry adds to a context: a regular file's size, once per file (a hard link adds none). */
export function contentBytes(e: ContextEntry): number {
  return isRegular(e) && e.hardlinkTo === undefined ? e.size : 0;
}

/**
 * Orders paths the way a depth-first walk emits them: component by component, so `a/b` sorts
 * right after `a` and before `a-b` (same as BuildKit's fsutil).
 */
export function comparePaths(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a.replaceAll('/', '\0')), Buffer.from(b.replaceAll('/', '\0')));
}

export function sortEntries<T extends { path: string }>(entries: T[]): T[] {
  const keyed = entries.map((e) => ({ e, k: Buffer.from(e.path.replaceAll('/', '\0')) }));
  keyed.sort((x, y) => Buffer.compare(x.k, y.k));
  return keyed.map((x) => x.e);
}

export interface ManifestIndex {
  byPath: ReadonlyMap<string, ContextEntry>;
  /** Each regular file's size by its digest. */
  sizeOf: ReadonlyMap<string, number>;
  /** How many entries are hard links (hardlinkTo). */
  hardlinks: number;
}

const manifestIndexes = new WeakMap<readonly ContextEntry[], ManifestIndex>();

/**
 * A manifest's entries by path, made once per manifest array: the store keeps recent manifests
 * in memory, and the last build's is the base of the next sync and of the worker's next tree.
 */
export function manifestIndex(manifest: readonly ContextEntry[]): ManifestIndex {
  let index = manifestIndexes.get(manifest);
  if (!index) {
    const byPath = new Map<string, ContextEntry>();
    const sizeOf = new Map<string, number>();
    let hardlinks = 0;
    for (const e of manifest) {
      byPath.set(e.path, e);
      if (isRegular(e)) sizeOf.set(e.digest, e.size);
      if (e.hardlinkTo !== undefined) hardlinks++;
    }
    index = { byPath, sizeOf, hardlinks };
    manifestIndexes.set(manifest, index);
  }
  return index;
}

/**
 * Each entry's encoding, by the entry object: a delta sync's manifest holds its base's entry
 * objects but the changed ones, so a one-file change in 20,000 entries encodes one (20-30 ms
 * of JSON.stringify otherwise). Entries are never changed once a manifest holds them.
 */
const encodedEntries = new WeakMap<ContextEntry, string>();

/** The canonical manifest bytes: a JSON array with fixed key order; its digest is the context id. */
export function encodeManifest(sorted: readonly ContextEntry[]): Buffer {
  const parts = sorted.map((e) => {
    let encoded = encodedEntries.get(e);
    if (encoded === undefined) {
      // modTime, xattrs and hardlinkTo only when there are some, so manifests without them keep their ids.
      encoded = JSON.stringify({
        path: e.path, mode: e.mode, size: e.size, digest: e.digest, linkTarget: e.linkTarget,
        ...(hasModTime(e) ? { modTime: e.modTime } : {}),
        ...(e.xattrs && e.xattrs.length > 0 ? { xattrs: e.xattrs } : {}),
        ...(e.hardlinkTo !== undefined ? { hardlinkTo: e.hardlinkTo } : {}),
      });
      encodedEntries.set(e, encoded);
    }
    return encoded;
  });
  return Buffer.from(`[${parts.join(',')}]`);
}

/**
 * True when two entries describe the same file metadata and kind of name: mode, size, digest,
 * symlink target, time, attributes and hard link. Any difference is a change for a delta sync
 * and for a tree updated in place (a name that joins or leaves a linked group is rewritten).
 */
export function sameEntry(a: ContextEntry, b: ContextEntry): boolean {
  return a.mode === b.mode && a.size === b.size && a.digest === b.digest && a.linkTarget === b.linkTarget && sameModTime(a, b)
    && sameXattrs(a.xattrs, b.xattrs) && a.hardlinkTo === b.hardlinkTo;
}

/** Equal times, an absent one being "0" (older clients). */
export function sameModTime(a: Pick<ContextEntry, 'modTime'>, b: Pick<ContextEntry, 'modTime'>): boolean {
  return (a.modTime || '0') === (b.modTime || '0');
}

function hasModTime(e: ContextEntry): e is ContextEntry & { modTime: string } {
  return e.modTime !== undefined && e.modTime !== '0' && e.modTime !== '';
}

/**
 * The entry's mtime as seconds for utimes, or 0. Node (libuv) keeps whole microseconds of a
 * double it truncates, and a double near today's times carries only ~0.24 µs: aiming at the
 * middle of the microsecond makes the file's time that exact microsecond every time.
 */
export function modTimeSeconds(e: Pick<ContextEntry, 'modTime'>): number {
  if (e.modTime === undefined || e.modTime === '' || e.modTime === '0') return 0;
  const ns = BigInt(e.modTime);
  return Number(ns / 1_000_000_000n) + (Number((ns % 1_000_000_000n) / 1000n) + 0.5) / 1e6;
}
