// Resolves a path inside a root the way BuildKit's fs.RootPath / securejoin do: symlinks are
// followed but interpreted relative to the root, and `..` never climbs above it, so the
// result always names something inside the root.
import type { SourceTree } from './SourceTree.js';

const MAX_LINKS = 255;

export class TooManyLinksError extends Error {}

/** Splits a path into clean components (no '', '.'), keeping '..' for the resolver. */
export function splitPath(p: string): string[] {
  return p.split('/').filter((c) => c !== '' && c !== '.');
}

/** Lexically cleans a path relative to a root: '..' stops at the root. Returns '' for the root. */
export function cleanRel(p: string): string {
  const out: string[] = [];
  for (const c of splitPath(p)) {
    if (c === '..') out.pop();
    else out.push(c);
  }
  return out.join('/');
}

/**
 * Returns the clean relative path that `p` (relative to the root; a leading '/' also means the
 * root) names after following symlinks inside the root. With `followFinal` false the last
 * component is not followed. Missing components are kept as written.
 */
export async function resolveScoped(tree: Pick<SourceTree, 'lstat' | 'readlink'>, p: string, followFinal = true): Promise<string> {
  const resolved: string[] = [];
  let pending = splitPath(p);
  let links = 0;
  while (pending.length > 0) {
    const c = pending.shift()!;
    if (c === '..') { resolved.pop(); continue; }
    const candidate = [...resolved, c].join('/');
    if (pending.length === 0 && !followFinal) { resolved.push(c); break; }
    const st = await tree.lstat(candidate);
    if (st?.type !== 'symlink') { resolved.push(c); continue; }
    if (++links > MAX_LINKS) throw new TooManyLinksError(`too many levels of symbolic links resolving ${p}`);
    const target = await tree.readlink(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending = [...splitPath(target), ...pending];
  }
  return resolved.join('/');
}
