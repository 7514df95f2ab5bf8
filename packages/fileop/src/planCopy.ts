// Decides what a COPY/ADD reads: wildcard expansion, scoped symlink resolution, --parents and
// --exclude. Shared by copy() and contentDigestsFor() so cache keys see exactly what copy reads.
import { FileOpError } from './FileOpError.js';
import { goMatch, hasWildcard, unescapePattern } from './goMatch.js';
import { compileDockerignore, DockerignorePatternError, type DockerignoreMatcher } from './patternmatcher.js';
import { cleanRel, resolveScoped, splitPath, TooManyLinksError } from './resolveScoped.js';
import type { SourceTree, TreeStat } from './SourceTree.js';

export interface SourceSelection {
  /** Source paths as written in the Dockerfile, relative to the source root; may hold wildcards. */
  sources: string[];
  /** --exclude patterns (.dockerignore syntax), matched against paths relative to each copied source. */
  exclude?: string[];
  /** --parents: keep each source's path (below an optional "/./" pivot) under the destination. */
  parents?: boolean;
  /** Follow a symlink named as a source (default true, as Dockerfile COPY does). */
  followSymlinks?: boolean;
  /** Treat `*`, `?`, `[` as wildcards (default true). */
  allowWildcard?: boolean;
  /** A wildcard matching nothing is not an error (default false). */
  allowEmptyWildcard?: boolean;
}

export interface MatchedSource {
  /** The source as written. */
  pattern: string;
  /** The matched path relative to the source root, as named (symlinks not resolved). */
  logical: string;
  /** The path actually read, relative to the source root, symlinks resolved inside the root. */
  real: string;
  stat: TreeStat;
  /** With --parents: the logical path below the pivot; the copy lands at dest/<parentsRel>. */
  parentsRel: string;
  /** True if the pattern held a wildcard. */
  wildcard: boolean;
}

export interface PlannedEntry {
  /** Index into `matched`. */
  source: number;
  /** Path relative to the matched source ('' for the source itself). */
  rel: string;
  /** Path read, relative to the source root. */
  real: string;
  stat: TreeStat;
}

export interface CopyPlan {
  matched: MatchedSource[];
  /** Pre-order: a directory comes before its contents; siblings sorted bytewise. */
  entries: PlannedEntry[];
}

export async function planCopy(tree: SourceTree, sel: SourceSelection): Promise<CopyPlan> {
  const allowWildcard = sel.allowWildcard ?? true;
  const follow = sel.followSymlinks ?? true;
  const exclude = sel.exclude ?? [];
  let matcher: DockerignoreMatcher | null = null;
  try {
    matcher = exclude.length > 0 ? compileDockerignore(exclude) : null;
  } catch (err) {
    if (err instanceof DockerignorePatternError) throw new FileOpError('EBADPATTERN', err.message);
    throw err;
  }
  const hasNegation = exclude.some((p) => p.trim().startsWith('!'));
  const matched: MatchedSource[] = [];
  const entries: PlannedEntry[] = [];

  for (const pattern of sel.sources) {
    let pivot = '';
    let rest = pattern;
    if (sel.parents) {
      const at = pattern.indexOf('/./');
      if (at >= 0) { pivot = pattern.slice(0, at); rest = pattern.slice(at + 3); }
    }
    const pivotParts = splitPath(cleanRel(pivot));
    const parts = [...pivotParts, ...splitPath(cleanRel(rest))];
    const wildcard = allowWildcard && parts.some(hasWildcard);
    const found = await expand(tree, parts, allowWildcard, follow, pattern);
    if (found.length === 0) {
      if (wildcard && sel.allowEmptyWildcard) continue;
      if (wildcard) throw new FileOpError('ENOSOURCE', `source "${pattern}" matched no files: check the pattern and that the files are not excluded by .dockerignore`, { missingSource: pattern });
      // BuildKit's words (its cache key is a checksum of the path); the advice follows them.
      const name = await missingName(tree, cleanRel(pattern), pattern);
      throw new FileOpError('ENOSOURCE', `failed to compute cache key: failed to calculate checksum of ref source: ${JSON.stringify('/' + name)}: not found; check the path exists in the build context (or source stage) and is not excluded by .dockerignore`, { missingSource: pattern });
    }
    for (const f of found) {
      if (f.logical !== '' && matcher?.excludes(f.logical)) continue;
      const index = matched.length;
      matched.push({ pattern, logical: f.logical, real: f.real, stat: f.stat, parentsRel: f.logical.split('/').slice(pivotParts.length).join('/'), wildcard });
      entries.push({ source: index, rel: '', real: f.real, stat: f.stat });
      if (f.stat.type === 'dir') await walk(tree, index, '', f.real, matcher, hasNegation, entries);
    }
  }
  return { matched, entries };
}

interface Found { logical: string; real: string; stat: TreeStat }

async function expand(tree: SourceTree, parts: string[], allowWildcard: boolean, follow: boolean, pattern: string): Promise<Found[]> {
  const out: Found[] = [];
  const visit = async (i: number, logical: string[]): Promise<void> => {
    if (i === parts.length) {
      const logicalPath = logical.join('/');
      const real = await resolve(tree, logicalPath, follow, pattern);
      const stat = await tree.lstat(real);
      if (stat) out.push({ logical: logicalPath, real, stat });
      return;
    }
    const c = parts[i];
    if (c === '..') { await visit(i + 1, logical.slice(0, -1)); return; }
    if (!allowWildcard || !hasWildcard(c)) {
      await visit(i + 1, [...logical, allowWildcard ? unescapePattern(c) : c]);
      return;
    }
    // A symlink loop met while expanding a wildcard is simply not a match.
    const dir = await resolveScoped(tree, logical.join('/'), true).catch((err: unknown) => {
      if (err instanceof TooManyLinksError) return null;
      throw err;
    });
    if (dir === null) return;
    const st = await tree.lstat(dir);
    if (st?.type !== 'dir') return;
    for (const name of await tree.readdir(dir)) {
      if (goMatch(c, name)) await visit(i + 1, [...logical, name]);
    }
  };
  await visit(0, []);
  return out;
}

async function resolve(tree: SourceTree, p: string, follow: boolean, pattern: string): Promise<string> {
  try {
    return await resolveScoped(tree, p, follow);
  } catch (err) {
    if (err instanceof TooManyLinksError) throw new FileOpError('ENOSOURCE', `source "${pattern}": too many levels of symbolic links; fix the symlink loop`);
    throw err;
  }
}

/**
 * The path BuildKit's not-found error names for a missing literal source: contenthash's
 * checksumFollow follows a symlink in the last component itself, joining its target to the
 * link's directory as named, so a dangling link is reported by its target (links in earlier
 * components are resolved inside the lookup and keep their names).
 */
async function missingName(tree: SourceTree, name: string, pattern: string): Promise<string> {
  for (let hops = 0; hops < 255; hops++) {
    const at = await resolve(tree, name, false, pattern);
    if ((await tree.lstat(at))?.type !== 'symlink') return name;
    const target = await tree.readlink(at);
    name = cleanRel(target.startsWith('/') ? target : `${name.split('/').slice(0, -1).join('/')}/${target}`);
  }
  return name;
}

type Matcher = DockerignoreMatcher | null;

/** Appends the contents of directory `real` (pre-order); returns whether anything was added. */
async function walk(tree: SourceTree, source: number, rel: string, real: string, matcher: Matcher, hasNegation: boolean, entries: PlannedEntry[]): Promise<boolean> {
  let added = false;
  for (const name of await tree.readdir(real)) {
    const childRel = rel === '' ? name : `${rel}/${name}`;
    const childReal = real === '' ? name : `${real}/${name}`;
    const stat = await tree.lstat(childReal);
    if (!stat) continue;
    const excluded = matcher?.excludes(childRel) ?? false;
    if (stat.type === 'dir') {
      if (excluded && !(hasNegation && matcher!.mayMatchInside(childRel))) continue;
      const at = entries.length;
      entries.push({ source, rel: childRel, real: childReal, stat });
      const inner = await walk(tree, source, childRel, childReal, matcher, hasNegation, entries);
      // An excluded directory is kept only as the parent of re-included (`!`) contents.
      if (excluded && !inner) entries.splice(at, 1);
      else added = true;
    } else if (!excluded) {
      entries.push({ source, rel: childRel, real: childReal, stat });
      added = true;
    }
  }
  return added;
}
