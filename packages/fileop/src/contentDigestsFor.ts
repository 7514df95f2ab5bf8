import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { FileOpError } from './FileOpError.js';
import { planCopy, type SourceSelection } from './planCopy.js';
import { entriesTree, fsTree, type EntryType, type TreeEntry } from './SourceTree.js';

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
}

/**
 * What a copy with the same selection would read, for cache keys: entries grouped by source in
 * the order given, each group in path order (bytewise), so the list is deterministic.
 */
export async function contentDigestsFor(opts: ContentDigestOptions): Promise<ContentDigest[]> {
  if ((opts.srcRoot === undefined) === (opts.entries === undefined)) throw new FileOpError('EBADARG', 'contentDigestsFor needs exactly one of srcRoot or entries');
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
    out.push(item);
  }
  return out;
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
