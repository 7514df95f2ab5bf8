// Remembers file digests by (size, mtime, ctime, inode) so a rebuild does not rehash unchanged
// files. One journal file per context directory in the client's cache dir: a snapshot of the
// rows, then one line per walk with the rows it changed and the paths it no longer saw, each
// line a JSON list of rows.
//
// A file rewritten with the same size and its mtime put back still changes its ctime, so the
// row misses. What stat cannot show is a second write inside the same timestamp tick as the
// read that hashed it (file times come from a coarse clock): like git's "racily clean" index
// entries, a row whose mtime or ctime is not safely older than the moment hashing started is
// never trusted, and the file is hashed again next time (BuildKit's fsutil compares size and
// mtime only and misses both cases).
import { createHash } from 'node:crypto';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { EntryXattrs } from './contextXattrs.js';
import { appendJournal, compactAfter, readJournal, rewriteJournal } from './journalFile.js';

/** A file's stat, exact: what a row records. */
export interface CachedStat {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

/** A file's stat as numbers (Node's lstat without `bigint`): what a row is looked up by. */
export interface StatNumbers {
  size: number;
  mtimeMs: number;
  ctimeMs: number;
  ino: number;
}

/**
 * Node's millisecond time of a nanosecond one, computed as Node computes Stats.mtimeMs from the
 * kernel's seconds and nanoseconds (so equal times compare equal as numbers). Times before 1970
 * give NaN: such a row never matches, and the file is hashed again.
 */
export function msFromNs(ns: string): number {
  if (ns.startsWith('-')) return NaN;
  const n = ns.length;
  return n <= 9 ? Number(ns) / 1e6 : Number(ns.slice(0, n - 9)) * 1e3 + Number(ns.slice(n - 9)) / 1e6;
}

/**
 * A file's row; a journal line is a list of them, `[path]` alone dropping the path's row. The
 * kept extended attributes (0: none) are there when the walk read them; a change to them moves
 * ctime, so they are as safe to reuse as the digest.
 */
type Row = [path: string, size: number, mtimeNs: string, ctimeNs: string, ino: string, digest: string, xattrs?: EntryXattrs | 0];
type Change = (Row | [path: string])[];
/**
 * The first format's line: rows keyed by path, (0) dropped. Still read (the next save rewrites the
 * file): an object of 20,000 keys parses and iterates at about 2.5x the cost of a list of rows.
 */
type KeyedChange = Record<string, [size: number, mtimeNs: string, ctimeNs: string, ino: string, digest: string] | 0>;

/**
 * How much older than the hash's start a file's times must be for the row to be trusted: the
 * kernel's coarse clock lags by a tick (≤ 10 ms), a network filesystem's clock may be off by
 * more; a file touched within this margin is simply hashed once more on the next walk.
 */
export const RACY_MARGIN_NS = 2_000_000_000n;

/** Wall-clock nanoseconds, taken before a file is read for hashing. */
export function nowNs(): bigint {
  return BigInt(Date.now()) * 1_000_000n;
}

/** Where the client keeps per-context hash caches unless told otherwise. */
export function defaultContextCacheDir(): string {
  const base = process.env.BUILDYARD_CACHE_DIR ?? process.env.XDG_CACHE_HOME ?? join(homedir(), '.cache');
  return join(base, 'buildyard', 'context-hashes');
}

export class HashCache {
  private rows = new Map<string, Row>();
  private readonly next = new Map<string, Row>();
  /** Rows in the journal's lines after its snapshot. */
  private journaled = 0;

  private constructor(private readonly file: string | undefined) {}

  /** Loads the cache for `contextDir`; `cacheDir === false` gives a cache that never hits. */
  static async open(cacheDir: string | false, contextDir: string): Promise<HashCache> {
    if (cacheDir === false) return new HashCache(undefined);
    const key = createHash('sha256').update(contextDir).digest('hex').slice(0, 32);
    const cache = new HashCache(join(cacheDir, `${key}.jsonl`));
    for (const [i, record] of (await readJournal(cache.file!)).entries()) {
      // Anything else is not ours (or corrupt): what was read so far stands, the rest is a miss.
      if (Array.isArray(record)) {
        for (const row of record as Change) {
          if ((row.length === 6 || (row.length === 7 && (row[6] === 0 || Array.isArray(row[6])))) && typeof row[0] === 'string' && typeof row[5] === 'string') cache.rows.set(row[0], row);
          else if (row.length === 1) cache.rows.delete(row[0]);
        }
        if (i > 0) cache.journaled += record.length;
      } else if (record && typeof record === 'object') {
        for (const [path, row] of Object.entries(record as KeyedChange)) {
          if (row === 0) cache.rows.delete(path);
          else if (Array.isArray(row) && row.length === 5) cache.rows.set(path, [path, ...row]);
        }
        cache.journaled = Infinity;
      } else {
        break;
      }
    }
    return cache;
  }

  /** Whether the file at `path` has a row (the walk then stats it as numbers, see get()). */
  has(path: string): boolean {
    return this.rows.has(path);
  }

  /**
   * The digest and exact modification time recorded for the file at `path`, when its size, times
   * and inode are still the row's. Times compare as Node's millisecond numbers (exact to ~0.25 us
   * today): a write moves ctime to the present, and a row is only kept for times at least
   * RACY_MARGIN_NS older than its hashing, so no rewrite lands on a row's time.
   */
  get(path: string, st: StatNumbers): { digest: string; mtimeNs: string; xattrs?: EntryXattrs | 0 } | undefined {
    const row = this.rows.get(path);
    if (!row || row[1] !== st.size || Number(row[4]) !== st.ino || msFromNs(row[2]) !== st.mtimeMs || msFromNs(row[3]) !== st.ctimeMs) return undefined;
    this.next.set(path, row);
    return { digest: row[5], mtimeNs: row[2], xattrs: row[6] };
  }

  /**
   * Records a digest computed from a read that started at `hashStartNs` (see RACY_MARGIN_NS),
   * with the file's kept extended attributes when they were read (undefined: not read).
   */
  set(path: string, st: CachedStat, digest: string, hashStartNs: bigint, xattrs?: EntryXattrs | 0): void {
    const safeBefore = hashStartNs - RACY_MARGIN_NS;
    if (BigInt(st.mtimeNs) >= safeBefore || BigInt(st.ctimeNs) >= safeBefore) return;
    this.next.set(path, xattrs === undefined ? [path, st.size, st.mtimeNs, st.ctimeNs, st.ino, digest] : [path, st.size, st.mtimeNs, st.ctimeNs, st.ino, digest, xattrs]);
  }

  /** Gives a row that had none its file's kept extended attributes (read after a hit). */
  setXattrs(path: string, xattrs: EntryXattrs | 0): void {
    const row = this.next.get(path);
    if (row && row[6] === undefined) this.next.set(path, [row[0], row[1], row[2], row[3], row[4], row[5], xattrs]);
  }

  /**
   * Keeps only the rows seen in this walk, so deleted files drop out: appends what changed, or
   * rewrites the file once the appended lines grow past half its rows.
   */
  async save(): Promise<void> {
    if (!this.file) return;
    const change: Change = [];
    // get() keeps the loaded row object, so identity tells an unchanged row.
    for (const [path, row] of this.next) if (this.rows.get(path) !== row) change.push(row);
    for (const path of this.rows.keys()) if (!this.next.has(path)) change.push([path]);
    // A file in the first format is rewritten even when nothing changed.
    if (change.length === 0 && this.journaled !== Infinity) return;
    if (this.journaled + change.length > compactAfter(this.next.size)) {
      await rewriteJournal(this.file, [[...this.next.values()]]);
      this.journaled = 0;
    } else {
      await appendJournal(this.file, change);
      this.journaled += change.length;
    }
    this.rows = new Map(this.next);
  }
}
