import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FileOpError } from './FileOpError.js';
import { planCopy, type SourceSelection } from './planCopy.js';
import { cleanRel } from './resolveScoped.js';
import { UNCLEAN_PATH, entriesTree, fsTree, type EntryType, type TreeEntry } from './SourceTree.js';

export interface ContentDigestOptions extends SourceSelection {
  /** Read a real directory... */
  srcRoot?: string;
  /** ...or a file list (e.g. from ContextSync), whose files carry their digests; not changed after the call (its tree is kept for the next). */
  entries?: readonly TreeEntry[];
}

export interface ContentDigest {
  /** The source pattern (as written) this entry was selected by. */
  source: string;
  /** Path as the copy names it: matched source path + path inside it (relative to the source root). */
  path: string;
  /** Path actually read (symlinks in the source resolved). */
  realPath: string;
  type: EntryType;
  mode: number;
  size: number;
  /** sha256 of the content for files, of the link target for symlinks; absent for directories. */
  digest?: string;
  /**
   * A listed entry's extended attributes, when it has any: BuildKit's content checksum covers
   * them (tarsum's xattr headers), so a changed attribute is a changed source.
   */
  xattrs?: [string, string][];
}

/**
 * What a copy with the same selection would read, for cache keys: entries grouped by source in
 * the order given, each group in path order (bytewise), so the list is deterministic.
 */
export async function contentDigestsFor(opts: ContentDigestOptions): Promise<ContentDigest[]> {
  if ((opts.srcRoot === undefined) === (opts.entries === undefined)) throw new FileOpError('EBADARG', 'contentDigestsFor needs exactly one of srcRoot or entries');
  const whole = opts.entries && wholeListDigests(opts.entries, opts);
  if (whole) return whole;
  const list = opts.entries ? treeOf(opts.entries) : null;
  const tree = list ?? fsTree(opts.srcRoot!);
  const plan = await planCopy(tree, opts);
  const out: ContentDigest[] = [];
  for (const e of plan.entries) {
    const m = plan.matched[e.source];
    const item: ContentDigest = { source: m.pattern, path: posix.join(m.logical, e.rel) || '.', realPath: e.real || '.', type: e.stat.type, mode: e.stat.mode, size: e.stat.size };
    if (e.stat.type === 'symlink') item.digest = sha256(await tree.readlink(e.real));
    else if (e.stat.type === 'file') {
      if (list) {
        const d = list.entry(e.real)?.digest;
        if (!d) throw new FileOpError('EBADARG', `context entry ${e.real} has no digest; the file list must carry content digests`);
        item.digest = d;
      } else {
        item.digest = await fileDigest(join(opts.srcRoot!, e.real));
      }
    }
    const xattrs = list?.entry(e.real)?.xattrs;
    if (xattrs?.length) item.xattrs = xattrs;
    out.push(item);
  }
  return out;
}

/**
 * The whole of a file list (every source the root, nothing excluded, no --parents) when the list
 * is already what planCopy's walk would make of it: clean paths in depth-first order, siblings
 * bytewise, each parent listed as a directory before its contents, files with digests and
 * symlinks with targets (a synced context's manifest is). Then the walk's result is the list
 * itself, read in one pass: at 20,000 entries the tree, the walk's promises and their objects
 * were most of a plan (~50 ms). Undefined otherwise (the general path decides).
 */
function wholeListDigests(entries: readonly TreeEntry[], sel: SourceSelection): ContentDigest[] | undefined {
  if (sel.parents || (sel.exclude?.length ?? 0) > 0 || sel.sources.length === 0 || sel.sources.some((s) => cleanRel(s) !== '')) return undefined;
  const dirs: string[] = []; // the directories the previous entry is in, outermost first
  let previous = '';
  for (const e of entries) {
    if (UNCLEAN_PATH.test(e.path) || (previous !== '' && compareDepthFirst(previous, e.path) >= 0)) return undefined;
    if (e.type === 'file' ? !e.digest : e.type === 'symlink' && e.linkTarget === undefined) return undefined;
    const slash = e.path.lastIndexOf('/');
    const parent = slash < 0 ? '' : e.path.slice(0, slash);
    while (dirs.length > 0 && dirs[dirs.length - 1] !== parent) dirs.pop();
    if (parent !== '' && dirs.length === 0) return undefined; // its directory is not listed
    if (e.type === 'dir') dirs.push(e.path);
    previous = e.path;
  }
  const out: ContentDigest[] = [];
  for (const source of sel.sources) {
    out.push({ source, path: '.', realPath: '.', type: 'dir', mode: 0o755, size: 0 });
    for (const e of entries) {
      const item: ContentDigest = { source, path: e.path, realPath: e.path, type: e.type, mode: e.mode & 0o7777, size: e.size ?? 0 };
      if (e.type === 'file') item.digest = e.digest;
      else if (e.type === 'symlink') item.digest = sha256(e.linkTarget!);
      if (e.xattrs?.length) item.xattrs = e.xattrs;
      out.push(item);
    }
  }
  return out;
}

/** Paths in the order a depth-first walk with bytewise-sorted siblings emits them ('/' below every other byte). */
function compareDepthFirst(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x === y) continue;
    if (x === 0x2f) return -1;
    if (y === 0x2f) return 1;
    // Below the surrogates UTF-16 units order as UTF-8 bytes do; above, compare the bytes.
    if (x < 0xd800 && y < 0xd800) return x - y;
    return Buffer.compare(Buffer.from(a.replaceAll('/', '\0')), Buffer.from(b.replaceAll('/', '\0')));
  }
  return a.length - b.length;
}

// A planner asks once per COPY and bind mount, always with the same (unchanging) entry list.
const trees = new WeakMap<readonly TreeEntry[], ReturnType<typeof entriesTree>>();
function treeOf(entries: readonly TreeEntry[]): ReturnType<typeof entriesTree> {
  let tree = trees.get(entries);
  if (!tree) trees.set(entries, (tree = entriesTree(entries)));
  return tree;
}

function sha256(data: string | Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

async function fileDigest(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return `sha256:${hash.digest('hex')}`;
}
