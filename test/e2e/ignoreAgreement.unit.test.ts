// Differential test of the two places .dockerignore-style patterns select files: the client's
// context walk (@buildyard/context, which decides what is sent) and fileop's COPY selection
// (planCopy with --exclude, which also chooses the files a COPY's cache key reads). BuildKit
// runs both through one patternmatcher and one walker rule, so for any tree and any pattern list
// they must keep the same paths: files, symlinks, and an excluded directory only as the parent
// of re-included (`!`) contents. It lives here because it spans two packages that do not
// depend on each other.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import fc from 'fast-check';
import { walkContext, isDirectory, isSymlink, type ContextEntry } from '@buildyard/context';
import { entriesTree, fsTree, planCopy, type SourceTree, type TreeEntry } from '@buildyard/fileop';

// Names that the patterns below can hit in several ways (prefixes, suffixes, character classes).
const PATHS = [
  'a.txt', 'b.md', '.hidden', 'a/a.txt', 'a/b.md', 'a/c/a.txt', 'a/c/d/e.md', 'b/a.txt', 'b/c/b.md',
  'c/c', 'c/x.txt', 'ab/a.txt', 'd.txt/f', 'a/c/.keep',
];
const LINKS: Record<string, string> = { 'l.txt': 'a.txt', 'a/lc': 'c', 'b/out': '../../elsewhere' };
const PATTERNS = [
  '*', '*.txt', '*.md', '**', '**/*.txt', '**/*.md', '**/c', 'a', 'a/', 'a/*', 'a/**', 'a/c', 'a/c/**/e.md',
  'b', 'c', '?', '?.txt', '[ab]', '[ab]/*.txt', 'a*', '.*', '*/c', '*/*/*', 'd.txt', 'l.txt', 'a/lc',
  '/a/c', './b', 'a/../b', 'x/**', '**/.keep', 'c/c',
];
const pattern = fc.tuple(fc.boolean(), fc.constantFrom(...PATTERNS)).map(([negate, p]) => (negate ? `!${p}` : p));

async function makeTree(paths: string[], links: string[]): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'ignore-agreement-'));
  for (const p of paths) {
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), p);
  }
  for (const l of links) {
    await mkdir(dirname(join(root, l)), { recursive: true });
    await symlink(LINKS[l], join(root, l));
  }
  return root;
}

function walked(entries: readonly ContextEntry[]): string[] {
  return entries.map((e) => `${e.path}${isDirectory(e) ? '/' : isSymlink(e) ? '@' : ''}`).sort();
}

async function copied(tree: SourceTree, exclude: string[]): Promise<string[]> {
  const plan = await planCopy(tree, { sources: ['.'], exclude, followSymlinks: false });
  return plan.entries.filter((e) => e.rel !== '').map((e) => `${e.rel}${e.stat.type === 'dir' ? '/' : e.stat.type === 'symlink' ? '@' : ''}`).sort();
}

function treeEntries(entries: readonly ContextEntry[]): TreeEntry[] {
  return entries.map((e) => ({
    path: e.path, mode: e.mode & 0o7777, linkTarget: e.linkTarget,
    type: isDirectory(e) ? 'dir' : isSymlink(e) ? 'symlink' : 'file',
  }));
}

test('the context walk and COPY --exclude keep the same paths for any tree and .dockerignore', async () => {
  await fc.assert(fc.asyncProperty(
    fc.subarray(PATHS, { minLength: 1 }), fc.subarray(Object.keys(LINKS)), fc.array(pattern, { maxLength: 5 }),
    async (paths, links, patterns) => {
      // A file and a directory cannot share a path: keep the first of the two.
      const files = paths.filter((p) => !paths.some((q) => q.startsWith(`${p}/`)));
      const kept = links.filter((l) => !files.some((f) => f === l || f.startsWith(`${l}/`)));
      const root = await makeTree(files, kept);
      try {
        const sent = walked(await walkContext(root, { dockerignore: patterns, cacheDir: false }));
        // fileop over the real directory (what run-local's COPY reads) ...
        assert.deepEqual(await copied(fsTree(root), patterns), sent, 'COPY --exclude over the directory');
        // ... and over the listing of the whole context (what the planner's cache keys read).
        const all = await walkContext(root, { cacheDir: false });
        assert.deepEqual(await copied(entriesTree(treeEntries(all)), patterns), sent, 'COPY --exclude over the context listing');
      } finally {
        await rm(root, { recursive: true, force: true });
      }
    },
  ), { numRuns: 200 });
});

test('the agreement check sees a difference: a pattern only one side gets changes the result', async () => {
  const root = await makeTree(['a/a.txt', 'a/b.md', 'b.md'], []);
  try {
    const sent = walked(await walkContext(root, { dockerignore: ['**/*.md'], cacheDir: false }));
    assert.deepEqual(sent, ['a/', 'a/a.txt']);
    assert.notDeepEqual(await copied(fsTree(root), ['*.md']), sent);
    assert.deepEqual(await copied(fsTree(root), ['**/*.md']), sent);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
