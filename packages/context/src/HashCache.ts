// Remembers file digests by (size, mtime, ctime, inode) so a rebuild does not rehash unchanged
// files. One small JSON file per context directory in the client's cache dir.
//
// A file rewritten with the same size and its mtime put back still changes its ctime, so the
// row misses. What stat cannot show is a second write inside the same timestamp tick as the
// read that hashed it (file times come from a coarse clock): like git's "racily clean" index
// entries, a row whose mtime or ctime is not safely older than the moment hashing started is
// never trusted, and the file is hashed again next time (BuildKit's fsutil compares size and
// mtime only and misses both cases).
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

interface CachedStat {
  size: number;
  mtimeNs: string;
  ctimeNs: string;
  ino: string;
}

type Row = [size: number, mtimeNs: string, ctimeNs: string, ino: string, digest: string];

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
  private dirty = false;

  private constructor(private readonly file: string | undefined) {}

  /** Loads the cache for `contextDir`; `cacheDir === false` gives a cache that never hits. */
  static async open(cacheDir: string | false, contextDir: string): Promise<HashCache> {
    if (cacheDir === false) return new HashCache(undefined);
    const key = createHash('sha256').update(contextDir).digest('hex').slice(0, 32);
    const cache = new HashCache(join(cacheDir, `${key}.json`));
    try {
      const parsed: unknown = JSON.parse(await readFile(cache.file!, 'utf8'));
      if (parsed && typeof parsed === 'object') cache.rows = new Map(Object.entries(parsed as Record<string, Row>));
    } catch {
      // Missing or corrupt: start empty, the cache is only an optimisation.
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
    this.dirty = true;
  }

  /** Writes only the entries seen in this walk, so deleted files drop out. */
  async save(): Promise<void> {
    if (!this.file || (!this.dirty && this.next.size === this.rows.size)) return;
    const dir = join(this.file, '..');
    await mkdir(dir, { recursive: true });
    // Unique per save: concurrent syncs of one directory in one process (bake's targets sharing
    // a context) each write their own file, and the last rename wins.
    const tmp = `${this.file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    await writeFile(tmp, JSON.stringify(Object.fromEntries(this.next)));
    await rename(tmp, this.file);
  }
}
