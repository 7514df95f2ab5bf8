// A sorted lstat walker rather than fdir: .dockerignore needs pruning decisions per directory
// (and descending into excluded directories when a `!` exception may re-include something).
import { createHash } from 'node:crypto';
import { createReadStream, lstatSync, readFileSync, readdirSync, readlinkSync, type BigIntStats, type Stats } from 'node:fs';
import { lstat, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { compileDockerignore } from '@buildyard/fileop';
import { ContextError } from './ContextError.js';
import { S_IFMT, S_IFDIR, S_IFLNK, S_IFREG, type ContextEntry } from './ContextEntry.js';
import { entryXattrs, type EntryXattrs } from './contextXattrs.js';
import { HashCache, defaultContextCacheDir, nowNs, type CachedStat, type StatNumbers } from './HashCache.js';
import { describeFileType, validateEntrySet } from './validateEntries.js';

export interface WalkOptions {
  /** .dockerignore patterns (as parsed by parseDockerignore). */
  dockerignore?: readonly string[];
  /** Directory for the digest cache; `false` disables it. Defaults to ~/.cache/buildyard/context-hashes. */
  cacheDir?: string | false;
  /** How many files are hashed at once. */
  concurrency?: number;
  /** The clock a hash's start is read from (tests move it; see HashCache's racy rows). */
  now?: () => bigint;
  /**
   * Keep the bytes of files up to this size that hashing read, up to `keepBytes` in all, for
   * `takeContent` (a sync uploads them without reading the file again). 0 (default): none.
   */
  keepBytes?: number;
  keepFileMax?: number;
  /**
   * A file's own extended attributes (never a symlink's target's), as fsutil's walk reads them
   * (llistxattr + lgetxattr). Node has no API for them, so the caller brings one (a native
   * call); without it no entry has any. A file's are kept in its hash cache row, so an
   * unchanged file is not asked again.
   */
  readXattrs?: (path: string) => Iterable<readonly [string, Uint8Array]>;
}

/**
 * A listed context whose regular files are still being hashed, in entry order, so a caller
 * can send the first entries while later ones hash.
 */
export interface ContextListing {
  root: string;
  /**
   * Sorted; a regular file's `digest` is "" (and its `modTime` and `xattrs` undefined) until
   * `ready(i)` resolves. They are set together, the digest last: a digest that is set is final.
   */
  entries: ContextEntry[];
  /** Resolves when entries[i] has its digest (at once for non-files); rejects if hashing failed. */
  ready(i: number): Promise<void>;
  /** All hashed and the digest cache saved. */
  done: Promise<void>;
  /**
   * The bytes hashing read for this digest (the very bytes hashed), once, when kept (see
   * WalkOptions.keepBytes); undefined when not kept or already taken.
   */
  takeContent(digest: string): Buffer | undefined;
  /** Drops every kept content (the caller needs no more). */
  dropContents(): void;
}

const SMALL_FILE = 1 << 20;
/** In-line reads between two yields to the event loop: about this many bytes, a file counted as IN_LINE_FILE_COST more. */
const IN_LINE_SLICE = 1 << 20;
const IN_LINE_FILE_COST = 16 * 1024;

/** Lists the context under `dir` as sorted entries with sha256 content digests. */
export async function walkContext(dir: string, opts: WalkOptions = {}): Promise<ContextEntry[]> {
  const listing = await listContext(dir, opts);
  await listing.done;
  return listing.entries;
}

/** Walks `dir` (lstat only) and starts hashing its files in entry order; see ContextListing. */
export async function listContext(dir: string, opts: WalkOptions = {}): Promise<ContextListing> {
  const root = resolve(dir);
  const rootStat = await lstat(root).catch((err: NodeJS.ErrnoException) => {
    throw new ContextError(`context directory ${root} cannot be read (${err.code ?? err.message}); check the path`);
  });
  if (!rootStat.isDirectory()) throw new ContextError(`context ${root} is not a directory; pass a directory as the build context`);
  const matcher = compileDockerignore(opts.dockerignore ?? []);
  const { readXattrs } = opts;
  // The kept attributes of the file at `abs` (0: none), or undefined when nothing reads them.
  const xattrsOf = (abs: string, rel: string): EntryXattrs | 0 | undefined => {
    if (!readXattrs) return undefined;
    let pairs: Iterable<readonly [string, Uint8Array]>;
    try {
      pairs = readXattrs(abs);
    } catch (err) {
      // A file system without extended attributes has none to send, as fsutil's walk takes it.
      if ((err as NodeJS.ErrnoException).code === 'ENOTSUP') return 0;
      throw new ContextError(`cannot read the extended attributes of ${abs} (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix its permissions or add it to .dockerignore`);
    }
    return entryXattrs(JSON.stringify(rel), pairs) ?? 0;
  };
  const withXattrs = (entry: ContextEntry, xattrs: EntryXattrs | 0 | undefined): ContextEntry => {
    if (xattrs) entry.xattrs = xattrs;
    return entry;
  };
  // Read first: the walk stats a file that has a row as numbers, anything else as BigInts.
  const cache = await HashCache.open(opts.cacheDir ?? defaultContextCacheDir(), root);
  const entries: ContextEntry[] = [];
  // A file stat'ed as numbers (to be compared with its row), or exactly (it had none).
  // `links`: the file's other names the walk met after it (hard links), which take its digest.
  const toHash: { entry: ContextEntry; abs: string; numbers?: StatNumbers; exact?: CachedStat; links?: ContextEntry[] }[] = [];
  // The first included name of each file with more than one name, by (dev, ino): fsutil's
  // sender makes every later name a hard link to it, whatever names .dockerignore left out.
  const firstNames = new Map<string, (typeof toHash)[number]>();

  // Returns whether anything below `rel` was emitted (so an excluded dir is kept as a parent).
  // Synchronous on purpose: nothing is sent before the walk ends, and a page-cached lstat costs
  // a few microseconds where a promise's round trip through libuv's thread pool costs several
  // times that (20,000 files: ~170 ms against ~400-700 ms), as fsutil's walk lstats in line.
  const walkDir = (abs: string, rel: string): boolean => {
    let names: string[];
    try {
      names = sortNames(readdirSync(abs));
    } catch (err) {
      throw new ContextError(`cannot read ${abs} (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix its permissions or add it to .dockerignore`);
    }
    let emitted = false;
    for (const name of names) {
      const childRel = rel === '' ? name : `${rel}/${name}`;
      const childAbs = `${abs}/${name}`;
      // Exact times are nanoseconds (as fsutil's Stat.ModTime), which only a BigInt stat gives;
      // one of every entry cost ~30% more of the walk, and its garbage. A file with a hash cache
      // row is stat'ed as numbers: on a hit its exact time is the row's; on a miss it is
      // stat'ed again. Anything else (a new file, a directory, a symlink) gets the BigInt stat.
      const st = cache.has(childRel) ? lstatSync(childAbs) : lstatSync(childAbs, { bigint: true });
      const excluded = matcher.excludes(childRel);
      const mode = Number(st.mode);
      const type = mode & S_IFMT;
      if (excluded) {
        if (type === S_IFDIR && matcher.mayMatchInside(childRel)) {
          const dirEntry = withXattrs({ path: childRel, mode, size: 0, digest: '', linkTarget: '', modTime: exactMtimeNs(childAbs, st) }, xattrsOf(childAbs, childRel));
          const at = entries.push(dirEntry) - 1;
          if (walkDir(childAbs, childRel)) emitted = true;
          else entries.splice(at, 1);
        }
        continue;
      }
      emitted = true;
      if (type === S_IFDIR) {
        entries.push(withXattrs({ path: childRel, mode, size: 0, digest: '', linkTarget: '', modTime: exactMtimeNs(childAbs, st) }, xattrsOf(childAbs, childRel)));
        walkDir(childAbs, childRel);
      } else if (type === S_IFREG) {
        // Its modTime is set with its digest (see ContextListing.entries).
        const entry: ContextEntry = { path: childRel, mode, size: Number(st.size), digest: '', linkTarget: '', modTime: undefined };
        entries.push(entry);
        // A number stat's ino may be rounded (above 2^53): the key comes from an exact one.
        const id = Number(st.nlink) > 1 ? fileId('mtimeNs' in st ? st : lstatSync(childAbs, { bigint: true })) : undefined;
        const first = id === undefined ? undefined : firstNames.get(id);
        if (first) {
          // Not hashed: it is the same inode, so it repeats its first name's metadata.
          Object.assign(entry, { hardlinkTo: first.entry.path, mode: first.entry.mode, size: first.entry.size });
          (first.links ??= []).push(entry);
          continue;
        }
        const job = 'mtimeNs' in st
          ? { entry, abs: childAbs, exact: exactStat(st) }
          : { entry, abs: childAbs, numbers: { size: st.size, mtimeMs: st.mtimeMs, ctimeMs: st.ctimeMs, ino: st.ino } };
        toHash.push(job);
        if (id !== undefined) firstNames.set(id, job);
      } else if (type === S_IFLNK) {
        entries.push(withXattrs({ path: childRel, mode, size: 0, digest: '', linkTarget: readlinkSync(childAbs), modTime: exactMtimeNs(childAbs, st) }, xattrsOf(childAbs, childRel)));
      } else {
        throw new ContextError(`${childAbs} is a ${describeFileType(mode)}; a build context can only hold files, directories and symlinks — remove it or add it to .dockerignore`);
      }
    }
    return emitted;
  };
  walkDir(root, '');

  // Names sorted bytewise and emitted depth first are already in comparePaths order.
  const sorted = entries;
  try {
    validateEntrySet(sorted);
  } catch (err) {
    if (err instanceof ContextError) throw new ContextError(`${err.message} (context ${root})`);
    throw err;
  }
  // Hash in entry order so the first entries are ready first: files were queued as the walk
  // emitted them, so that is the queue's order.
  const jobs = toHash;
  const settled = jobs.map(() => deferred());
  const indexOfJob = new Map(jobs.flatMap((j, i) => [j.entry, ...(j.links ?? [])].map((e) => [e, i] as const)));
  const now = opts.now ?? nowNs;
  const kept = new Map<string, Buffer>();
  let keptBytes = 0;
  const keepBytes = opts.keepBytes ?? 0;
  const keepFileMax = Math.min(opts.keepFileMax ?? SMALL_FILE, SMALL_FILE);
  let dropped = false;
  let inLine = 0;
  let next = 0;
  let failed: unknown;
  const worker = async (): Promise<void> => {
    while (next < jobs.length && failed === undefined) {
      const i = next++;
      const job = jobs[i];
      try {
        const row = job.numbers && cache.get(job.entry.path, job.numbers);
        if (row) {
          job.entry.modTime = row.mtimeNs;
          if (readXattrs) {
            // Rows written without them (an older client, or no reader then) get them now.
            const xattrs = row.xattrs ?? xattrsOf(job.abs, job.entry.path)!;
            if (row.xattrs === undefined) cache.setXattrs(job.entry.path, xattrs);
            withXattrs(job.entry, xattrs);
          }
          job.entry.digest = row.digest;
        } else {
          const started = now();
          // Its exact stat: its entry's and its new row's (a file that missed its row is stat'ed again).
          const st = job.exact ?? exactStat(lstatSync(job.abs, { bigint: true }));
          job.entry.size = st.size;
          job.entry.modTime = st.mtimeNs;
          const xattrs = xattrsOf(job.abs, job.entry.path);
          withXattrs(job.entry, xattrs);
          if (st.size <= SMALL_FILE) {
            // Read in line, as the walk lstats: a page-cached small file costs tens of
            // microseconds so, where readFile's four round trips through libuv's thread pool
            // cost 3-6x the CPU (2,000 files of 10 KB: 120-280 ms against 36-75 ms).
            const data = readFileSync(job.abs);
            job.entry.digest = sha256Of(data);
            if (!dropped && data.length <= keepFileMax && !kept.has(job.entry.digest) && keptBytes + data.length <= keepBytes) {
              kept.set(job.entry.digest, data);
              keptBytes += data.length;
            }
            // Let the sender and the call run between slices of in-line reads.
            inLine += data.length + IN_LINE_FILE_COST;
            if (inLine >= IN_LINE_SLICE) {
              inLine = 0;
              await new Promise<void>((resolveSlice) => setImmediate(resolveSlice));
            }
          } else {
            job.entry.digest = await hashFile(job.abs, st.size);
          }
          cache.set(job.entry.path, st, job.entry.digest, started, xattrs);
        }
        for (const link of job.links ?? []) {
          // The digest last, as for any file (see ContextListing.entries).
          Object.assign(link, { size: job.entry.size, modTime: job.entry.modTime }, job.entry.xattrs ? { xattrs: job.entry.xattrs } : {});
          link.digest = job.entry.digest;
        }
        settled[i].resolve();
      } catch (err) {
        failed ??= err instanceof ContextError ? err : new ContextError(`cannot read ${job.abs} (${(err as NodeJS.ErrnoException).code ?? String(err)}); the file changed during the walk, or fix its permissions or add it to .dockerignore`);
      }
    }
  };
  const done = Promise.all(Array.from({ length: opts.concurrency ?? 8 }, worker)).then(async () => {
    if (failed !== undefined) throw failed;
    await cache.save();
  });
  // Whoever waits on an entry hears of a failure too; nobody waiting must not be unhandled.
  done.catch((err: unknown) => { for (const d of settled) d.reject(err); });
  for (const d of settled) d.promise.catch(() => {});
  const nothing = Promise.resolve();
  return {
    root,
    entries: sorted,
    ready: (i) => {
      const j = indexOfJob.get(sorted[i]);
      return j === undefined ? nothing : settled[j].promise;
    },
    done,
    takeContent: (digest) => {
      const data = kept.get(digest);
      if (data) {
        kept.delete(digest);
        keptBytes -= data.length;
      }
      return data;
    },
    dropContents: () => {
      kept.clear();
      keptBytes = 0;
      dropped = true;
    },
  };
}

/**
 * A directory's names in UTF-8 byte order, as comparePaths orders them. JS's default sort
 * compares UTF-16 code units, which agrees unless a name holds a character beyond U+FFFF (a
 * surrogate pair sorts below U+E000-U+FFFF there, above them in bytes).
 */
function sortNames(names: string[]): string[] {
  names.sort();
  if (!names.some((n) => /[\uD800-\uDFFF]/.test(n))) return names;
  const keyed = names.map((n) => ({ n, k: Buffer.from(n) }));
  keyed.sort((x, y) => Buffer.compare(x.k, y.k));
  return keyed.map((x) => x.n);
}

/** The modification time of `path` itself (not a symlink's target) in nanoseconds: from `st` when that is exact, else stat'ed again. */
function exactMtimeNs(path: string, st: Stats | BigIntStats): string {
  return String(('mtimeNs' in st ? st : lstatSync(path, { bigint: true })).mtimeNs);
}

/** A file's identity within the walk: its device and inode. */
function fileId(st: BigIntStats): string {
  return `${st.dev}:${st.ino}`;
}

/** What a hash cache row records of a file's BigInt stat. */
function exactStat(st: BigIntStats): CachedStat {
  return { size: Number(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs), ino: String(st.ino) };
}

function deferred(): { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } {
  let resolve!: () => void;
  let reject!: (err: unknown) => void;
  const promise = new Promise<void>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

function sha256Of(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** Streaming sha256 of a file; small files are read in one go. */
export async function hashFile(path: string, size?: number): Promise<string> {
  const h = createHash('sha256');
  if (size !== undefined && size <= SMALL_FILE) {
    h.update(await readFile(path));
  } else {
    for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) h.update(chunk as Buffer);
  }
  return `sha256:${h.digest('hex')}`;
}
