import { execFile } from 'node:child_process';
import { chmod, mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { ContextError } from './ContextError.js';
import { isDirectory, isRegular, isSymlink, manifestIndex, modTimeSeconds, sameEntry, type ContextEntry } from './ContextEntry.js';
import type { ContextStore } from './ContextStore.js';
import { FILE_THREADS, hardlinkEach, linkEach, placeEach, statEach, type FileStat, type PlacedEntry } from './fileThread.js';
import { sameXattrs, xattrValues } from './contextXattrs.js';
import { validateEntry, validateEntrySet } from './validateEntries.js';

export interface MaterializeOptions {
  /** Only entries for which this returns true are written (parents are created as needed). */
  include?: (path: string) => boolean;
  /** Never hardlink from the store, always copy (for consumers that modify files in place). */
  copy?: boolean;
  /**
   * `destDir`'s siblings are materialised contexts (named by the hex of their id, as a
   * worker's contexts dir): start from the newest one as a hardlinked tree and write only the
   * entries that differ, as BuildKit's DiffCopy updates the copy it kept. Needs `copy` unset
   * and no `include` (the sibling is whole), and readers that never modify files in place.
   */
  reuseSiblings?: boolean;
  /**
   * `destDir` already holds the whole materialised tree of this context id, handed over by the
   * caller (nothing reads it any more): update it in place, removing and writing only the
   * entries that differ (no `cp -al` of the rest). Same needs as reuseSiblings.
   */
  updateFrom?: string;
  /**
   * Sets extended attributes on a file itself (a native call: Node has none). Entries' kept
   * attributes (user.*, which no chmod or chown clears) are written with it once the file is in
   * place, as fsutil's receiver writes them; without it they are not written.
   */
  setXattrs?: (path: string, xattrs: [string, Buffer][]) => void;
}

export interface MaterializeResult {
  entries: number;
  linked: number;
  copied: number;
  /** The sibling context the tree started from, when reuseSiblings found one. */
  reusedFrom?: string;
}

/** Manifests already checked (the store's in-memory copies; see materializeContext). */
const validated = new WeakSet<readonly ContextEntry[]>();

/**
 * Writes a context into `destDir` (which must be empty or absent), every entry with the client's
 * modification time (COPY keeps it, as BuildKit's does; entries without one get the epoch).
 * Contents a shared store holds only remotely are fetched into its local tier first.
 * Files are hardlinked from the store only when the store blob has exactly the wanted
 * permissions and mtime and lives on the same filesystem — chmod or utimes on a hardlink would
 * change the shared blob, which other entries and contexts use with their own times — else
 * copied (reflinked where the filesystem can). A hard link entry is linked to its file's first
 * name in the tree, which is then always a copy: names of one file share an inode of the tree
 * only, never the store's.
 */
export async function materializeContext(store: ContextStore, contextId: string, destDir: string, opts: MaterializeOptions = {}): Promise<MaterializeResult> {
  const entries = await checkedManifest(store, contextId);
  const dest = resolve(destDir);
  if ((opts.reuseSiblings || opts.updateFrom) && !opts.copy && !opts.include) {
    const reused = await fromSibling(store, contextId, entries, dest, opts).catch(() => undefined);
    if (reused) return reused;
    await rm(dest, { recursive: true, force: true });
  }
  await mkdir(dest, { recursive: true });
  return writeEntries(store, contextId, entries, dest, opts);
}

/**
 * A stored manifest, checked as an upload is: every entry on its own (a clean relative path: no
 * "..", no leading "/", no empty or "." component, no NUL; a known type) and the set (no
 * duplicates, nothing nested under a non-directory). The manifest was validated on upload, but
 * not every writer of a store validates each entry, and a tampered store must not write (or,
 * through a sibling's manifest, remove) outside destDir. Once per manifest read from the store:
 * it keeps recent ones in memory.
 */
async function checkedManifest(store: ContextStore, contextId: string): Promise<readonly ContextEntry[]> {
  const entries = await store.manifest(contextId);
  if (!validated.has(entries)) {
    try {
      for (const e of entries) validateEntry(e);
      validateEntrySet(entries);
    } catch (err) {
      if (!(err instanceof ContextError)) throw err;
      throw new ContextError(`context ${contextId}: the stored manifest is invalid: ${err.message}; upload the context again`);
    }
    validated.add(entries);
  }
  return entries;
}

async function writeEntries(store: ContextStore, contextId: string, entries: readonly ContextEntry[], dest: string, opts: MaterializeOptions): Promise<MaterializeResult> {
  const destDev = (await stat(dest)).dev;
  const dirs: ContextEntry[] = [];
  const others: ContextEntry[] = [];
  const result: MaterializeResult = { entries: 0, linked: 0, copied: 0 };
  // A shared store fetches what this machine lacks first, and only what is written here.
  await store.ensureLocal(entries.filter((e) => isRegular(e) && (!opts.include || opts.include(e.path))).map((e) => e.digest));
  // Directories first, in order (parents before children), each made once; their modes are
  // applied last so they stay writable until all children exist.
  const made = new Set<string>([dest]);
  const makeDir = async (dir: string) => {
    if (made.has(dir)) return;
    await mkdir(dir, { recursive: true });
    made.add(dir);
  };
  for (const e of entries) {
    if (opts.include && !opts.include(e.path)) continue;
    result.entries++;
    if (isDirectory(e)) {
      await makeDir(join(dest, e.path));
      dirs.push(e);
    } else {
      await makeDir(dirname(join(dest, e.path)));
      others.push(e);
    }
  }
  // A hard link is made to its file's first name once that is written here; when `include`
  // left the first name out, the group's first included name carries the content instead.
  const { links, firsts } = hardlinkGroups(others);
  // Every blob's stat, then the links, each as one batch on the file thread (through libuv's
  // pool each call is a promise and a wake-up on the worker's main thread: 20,000 stats and
  // links cost it ~0.5 s of CPU); what cannot be linked is copied below.
  const regular = others.filter(isRegular);
  const digests = [...new Set(regular.map((e) => e.digest))];
  const stats = await statEach(digests.map((d) => store.content.path(d)));
  const blobInfo = new Map<string, FileStat>();
  digests.forEach((d, i) => { if (stats[i]) blobInfo.set(d, stats[i]); });
  const missing = regular.find((e) => !blobInfo.has(e.digest));
  if (missing) throw new ContextError(`context ${contextId}: content ${missing.digest} of ${JSON.stringify(missing.path)} is missing from the store; upload the context again`);
  const linkable = opts.copy ? [] : regular.filter((e) => {
    const info = blobInfo.get(e.digest)!;
    // An entry with attributes of its own gets its own inode: they would be the blob's. So
    // does a file with several names: links are only ever between names of this tree.
    return info.dev === destDev && (info.mode & 0o7777) === (e.mode & 0o7777) && info.mtimeNs === (e.modTime || '0') && !e.xattrs?.length && !firsts.has(e.path) && !links.has(e);
  });
  const linkErrors = await linkEach(linkable.map((e) => [store.content.path(e.digest), join(dest, e.path)]));
  // EXDEV on bind mounts, EMLINK on busy blobs: copying is always correct.
  const linked = new Set(linkable.filter((_, i) => linkErrors[i] === ''));
  result.linked += linked.size;
  // Copies and symlinks as batches on the file threads: per file a few small syscalls, which as
  // promises on libuv's pool cost the worker's main thread more than the kernel's work (2,000
  // files of 10 KB: ~550 ms at 16 at a time). A batch per thread at a time, so other builds'
  // stats and links wait for one batch at most; the first failure stops the rest, and all have
  // stopped before it is thrown (the caller then removes the tree, which nothing late may
  // recreate parts of).
  const placed: PlacedEntry[] = [];
  for (const e of others) {
    if (linked.has(e) || links.has(e)) continue;
    const path = join(dest, e.path);
    const time = modTimeSeconds(e);
    if (isSymlink(e)) placed.push({ path, time, linkTarget: e.linkTarget });
    else if (isRegular(e)) {
      const perm = e.mode & 0o7777;
      // The copy has the blob's mode already (the store writes 0644, as most files are).
      placed.push({ path, time, from: store.content.path(e.digest), ...((blobInfo.get(e.digest)!.mode & 0o7777) !== perm ? { mode: perm } : {}) });
    }
  }
  const batchSize = Math.min(PLACE_BATCH, Math.ceil(placed.length / FILE_THREADS));
  let next = 0;
  let failed = false;
  const settled = await Promise.allSettled(Array.from({ length: FILE_THREADS }, async () => {
    while (!failed && next < placed.length) {
      const batch = placed.slice(next, (next += batchSize));
      try {
        await placeEach(batch);
      } catch (err) {
        failed = true;
        throw err;
      }
    }
  }));
  const failure = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failure) throw failure.reason;
  result.copied += placed.filter((p) => 'from' in p).length;
  // After every first name is in place (the links' batches do not wait for each other's).
  await hardlinkEach([...links].map(([e, first]) => [join(dest, first), join(dest, e.path)]));
  result.linked += links.size;
  // A link's attributes are its first name's (one inode).
  if (opts.setXattrs) for (const e of others) if (e.xattrs?.length && !links.has(e)) opts.setXattrs(join(dest, e.path), xattrValues(e.xattrs));
  await finishDirectories(dest, dirs, opts.setXattrs);
  return result;
}

const PLACE_BATCH = 1000;

/**
 * The hard links among `entries` (regular files and symlinks about to be written): each name to
 * link with the name it links to (its hardlinkTo, else, when that is not among `entries`, the
 * first of its group that is), and the set of those names (`firsts`), which are written.
 */
function hardlinkGroups(entries: readonly ContextEntry[]): { links: Map<ContextEntry, string>; firsts: Set<string> } {
  const links = new Map<ContextEntry, string>();
  const firsts = new Set<string>();
  // A group's name in this tree by its manifest target.
  const here = new Map<string, string>();
  for (const e of entries) if (e.hardlinkTo === undefined && isRegular(e)) here.set(e.path, e.path);
  for (const e of entries) {
    if (e.hardlinkTo === undefined) continue;
    const first = here.get(e.hardlinkTo);
    if (first === undefined) {
      here.set(e.hardlinkTo, e.path);
      continue;
    }
    links.set(e, first);
    firsts.add(first);
  }
  return { links, firsts };
}

/** Deepest first, after all children exist, so writing into a directory does not bump its time. */
async function finishDirectories(dest: string, dirs: readonly ContextEntry[], setXattrs: MaterializeOptions['setXattrs']): Promise<void> {
  for (const d of [...dirs].reverse()) {
    if (setXattrs && d.xattrs?.length) setXattrs(join(dest, d.path), xattrValues(d.xattrs));
    await chmod(join(dest, d.path), d.mode & 0o7777);
    await utimes(join(dest, d.path), modTimeSeconds(d), modTimeSeconds(d));
  }
}

const HEX_ID = /^[a-f0-9]{64}$/;

/** The directory holding a context path ('' for the context's root). */
function parentPath(path: string): string {
  const slash = path.lastIndexOf('/');
  return slash < 0 ? '' : path.slice(0, slash);
}

/**
 * Hardlinks the newest sibling context's tree into `dest` (one `cp -al`, far cheaper than a
 * Node call per file), then removes what differs and writes the new manifest's differing
 * entries; undefined when no sibling fits (then the caller materialises from scratch). Linking
 * a file of any sibling is as safe as linking the store's blob: same digest, same bytes, and
 * only entries equal in mode and time to the new one are kept.
 */
async function fromSibling(store: ContextStore, contextId: string, entries: readonly ContextEntry[], dest: string, opts: MaterializeOptions): Promise<MaterializeResult | undefined> {
  const inPlace = opts.updateFrom;
  const parent = dirname(dest);
  // Only whole trees: a materialisation is named by its id once complete (renamed from a
  // partial name). The newest by ctime, which the rename set, is most likely the last build's.
  const names = inPlace ? [] : (await readdir(parent)).filter((n) => HEX_ID.test(n) && n !== contextId.slice('sha256:'.length));
  const dated = await Promise.all(names.map(async (hex) => ({ hex, st: await stat(join(parent, hex)).catch(() => undefined) })));
  const newest = inPlace ? { hex: inPlace.slice('sha256:'.length) } : dated.filter((d) => d.st?.isDirectory()).sort((a, b) => b.st!.ctimeMs - a.st!.ctimeMs)[0];
  if (newest) {
    const { hex } = newest;
    const sibling = join(parent, hex);
    // Its paths are removed from dest below: checked as the new manifest is (an invalid one
    // makes this throw, and the caller materialises from scratch).
    const before = manifestIndex(await checkedManifest(store, `sha256:${hex}`)).byPath;
    // A file with several names is kept only when none of its names changed (which includes
    // joining or leaving it): otherwise all of them are written again, as one new inode, so
    // the tree's links stay exactly the manifest's and none is shared with a sibling's group.
    const rewritten = new Set<string>();
    for (const e of entries) {
      const b = before.get(e.path);
      if (isRegular(e) && !(b !== undefined && sameEntry(e, b))) rewritten.add(e.hardlinkTo ?? e.path);
    }
    const same = (a: ContextEntry, b: ContextEntry | undefined) => b !== undefined && sameEntry(a, b) && !rewritten.has(a.hardlinkTo ?? a.path);
    // One pass over the new entries: what is kept as the tree has it, what is written, and
    // which directories are new or changed their own mode or time.
    let kept = 0;
    const changed: ContextEntry[] = [];
    const newDirs: ContextEntry[] = [];
    const restamped: ContextEntry[] = [];
    for (const e of entries) {
      const b = before.get(e.path);
      if (!isDirectory(e)) {
        if (same(e, b)) kept++;
        else changed.push(e);
      } else if (b === undefined || !isDirectory(b)) {
        newDirs.push(e);
      } else if (!sameXattrs(e.xattrs, b.xattrs)) {
        // Nothing here removes an attribute from a kept directory: start afresh (rare).
        return undefined;
      } else {
        kept++;
        if (b.mode !== e.mode || (b.modTime ?? '0') !== (e.modTime ?? '0')) restamped.push(e);
      }
    }
    // Mostly different: linking the tree and deleting most of it costs more than it saves.
    if (kept * 2 < entries.length) return undefined;
    if (!inPlace) {
      await mkdir(dest, { recursive: true });
      await new Promise<void>((res, rej) => execFile('cp', ['-a', '-l', `${sibling}/.`, dest], (err) => (err ? rej(err) : res())));
    }
    const now = manifestIndex(entries).byPath;
    // The directories whose mode and time are set again at the end: those a removal, a write or
    // a new directory changed (their mtime moved), new ones, and those whose own mode or time
    // differs. The others are as the kept tree has them (cp -a keeps times), which is right.
    const touched = new Set<string>(restamped.map((e) => e.path));
    // Gone or different: removed (a directory only when it is no longer a directory).
    for (const [path, b] of before) {
      const e = now.get(path);
      if (isDirectory(b) ? (e === undefined || !isDirectory(e)) : !(e && same(e, b))) {
        await rm(join(dest, path), { recursive: true, force: true });
        touched.add(parentPath(path));
      }
    }
    for (const e of changed) touched.add(parentPath(e.path));
    for (const e of newDirs) {
      await mkdir(join(dest, e.path), { recursive: true });
      touched.add(parentPath(e.path));
      touched.add(e.path);
    }
    const written = await writeEntries(store, contextId, changed, dest, { setXattrs: opts.setXattrs });
    await finishDirectories(dest, entries.filter((e) => isDirectory(e) && touched.has(e.path)), opts.setXattrs);
    // A sibling removed while it was linked (a worker's GC) leaves a tree with holes that cp
    // need not notice: the tree must hold exactly the manifest's entries. A tree handed over
    // (renamed to dest) was whole and nothing else touches it, so it needs no such count (a
    // walk of 20,000 entries on a one-file change).
    if (!inPlace) {
      const count = await new Promise<number>((res, rej) => execFile('find', [dest, '-mindepth', '1', '-printf', '.'], { maxBuffer: 64 << 20 }, (err, out) => (err ? rej(err) : res(out.length))));
      if (count !== entries.length) return undefined;
    }
    return { entries: entries.length, linked: entries.length - written.entries + written.linked, copied: written.copied, reusedFrom: `sha256:${hex}` };
  }
  return undefined;
}
