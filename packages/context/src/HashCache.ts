// Remembers file digests by (size, mtime, ctime, inode) so a rebuild does not rehash unchanged
// files. One journal file per context directory in the client's cache dir: a snapshot of the
// rows, then one line per walk with the rows it changed and the paths it no longer saw.
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
import { appendJournal, compactAfter, readJournal, rewriteJournal } from './journalFile.js';

interface CachedStat {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

type Row = [size: number, mtimeNs: string, ctimeNs: string, ino: string, digest: string];
/** A journal line: rows set, or (0) dropped. */
type Change = Record<string, Row | 0>;

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
      if (!record || typeof record !== 'object' || Array.isArray(record)) break;
      for (const [path, row] of Object.entries(record as Change)) {
        if (row === 0) cache.rows.delete(path);
        else if (Array.isArray(row) && row.length === 5) cache.rows.set(path, row);
        if (i > 0) cache.journaled++;
      }
    }
    return cache;
  }

  get(path: string, st: CachedStat): string | undefined {
    const row = this.rows.get(path);
    if (!row || row[0] !== st.size || row[1] !== st.mtimeNs || row[2] !== st.ctimeNs || row[3] !== st.ino) return undefined;
    this.next.set(path, row);
    return row[4];
  }

  /** Records a digest computed from a read that started at `hashStartNs` (see RACY_MARGIN_NS). */
  set(path: string, st: CachedStat, digest: string, hashStartNs: bigint): void {
    const safeBefore = hashStartNs - RACY_MARGIN_NS;
    if (BigInt(st.mtimeNs) >= safeBefore || BigInt(st.ctimeNs) >= safeBefore) return;
    this.next.set(path, [st.size, st.mtimeNs, st.ctimeNs, st.ino, digest]);
  }

  /**
   * Keeps only the rows seen in this walk, so deleted files drop out: appends what changed, or
   * rewrites the file once the appended lines grow past half its rows.
   */
  async save(): Promise<void> {
    if (!this.file) return;
    const change: Change = {};
    let changed = 0;
    // get() keeps the loaded row object, so identity tells an unchanged row.
    for (const [path, row] of this.next) if (this.rows.get(path) !== row) { change[path] = row; changed++; }
    for (const path of this.rows.keys()) if (!this.next.has(path)) { change[path] = 0; changed++; }
    if (changed === 0) return;
    if (this.journaled + changed > compactAfter(this.next.size)) {
      await rewriteJournal(this.file, [Object.fromEntries(this.next)]);
      this.journaled = 0;
    } else {
      await appendJournal(this.file, change);
      this.journaled += changed;
    }
    this.rows = new Map(this.next);
  }
}
