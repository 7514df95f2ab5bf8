import assert from 'node:assert/strict';
import { test } from 'node:test';
import { contentDigestsFor } from './contentDigestsFor.js';
import { FileOpError } from './FileOpError.js';
import { planCopy } from './planCopy.js';
import { resolveScoped } from './resolveScoped.js';
import { entriesTree, type TreeEntry } from './SourceTree.js';

const D = (n: number) => `sha256:${String(n).repeat(64).slice(0, 64)}`;
const ENTRIES: TreeEntry[] = [
  { path: 'a.txt', type: 'file', mode: 0o644, size: 1, digest: D(1) },
  { path: 'b.md', type: 'file', mode: 0o644, size: 2, digest: D(2) },
  { path: 'src/x.ts', type: 'file', mode: 0o644, digest: D(3) },
  { path: 'src/y.ts', type: 'file', mode: 0o644, digest: D(4) },
  { path: 'src/deep/z.ts', type: 'file', mode: 0o755, digest: D(5) },
  { path: 'src/deep/skip.log', type: 'file', mode: 0o644, digest: D(6) },
  { path: 'link-to-src', type: 'symlink', mode: 0o777, linkTarget: '../../src' },
  { path: 'abs-link', type: 'symlink', mode: 0o777, linkTarget: '/src/x.ts' },
  { path: 'loop', type: 'symlink', mode: 0o777, linkTarget: 'loop' },
];

test('resolveScoped keeps .. and symlinks inside the root', async () => {
  const tree = entriesTree(ENTRIES);
  assert.equal(await resolveScoped(tree, '../../a.txt'), 'a.txt');
  assert.equal(await resolveScoped(tree, 'link-to-src/x.ts'), 'src/x.ts');
  assert.equal(await resolveScoped(tree, '/abs-link'), 'src/x.ts');
  assert.equal(await resolveScoped(tree, 'abs-link', false), 'abs-link');
  await assert.rejects(resolveScoped(tree, 'loop'), /too many levels/);
});

test('planCopy expands wildcards per path component, sorted', async () => {
  const plan = await planCopy(entriesTree(ENTRIES), { sources: ['*.txt', 'src/*.ts', '*/deep/*.ts'] });
  assert.deepEqual(plan.matched.map((m) => m.logical), ['a.txt', 'src/x.ts', 'src/y.ts', 'link-to-src/deep/z.ts', 'src/deep/z.ts']);
  assert.ok(plan.matched.every((m) => m.wildcard));
});

test('planCopy walks directories and applies --exclude relative to the source', async () => {
  const plan = await planCopy(entriesTree(ENTRIES), { sources: ['src'], exclude: ['**/*.log', 'y.ts'] });
  assert.deepEqual(plan.entries.map((e) => e.rel), ['', 'deep', 'deep/z.ts', 'x.ts']);
});

test('planCopy: --exclude with ! re-includes below an excluded directory', async () => {
  const plan = await planCopy(entriesTree(ENTRIES), { sources: ['src'], exclude: ['deep', '!deep/z.ts'] });
  assert.deepEqual(plan.entries.map((e) => e.rel), ['', 'deep', 'deep/z.ts', 'x.ts', 'y.ts']);
});

test('planCopy --parents computes the path below the /./ pivot', async () => {
  const plan = await planCopy(entriesTree(ENTRIES), { sources: ['src/./deep/*.ts', 'src/x.ts'], parents: true });
  assert.deepEqual(plan.matched.map((m) => [m.logical, m.parentsRel]), [['src/deep/z.ts', 'deep/z.ts'], ['src/x.ts', 'src/x.ts']]);
});

test('planCopy follows a symlink named as source, scoped to the root', async () => {
  const plan = await planCopy(entriesTree(ENTRIES), { sources: ['link-to-src'] });
  assert.equal(plan.matched[0].real, 'src');
  assert.equal(plan.matched[0].stat.type, 'dir');
  const noFollow = await planCopy(entriesTree(ENTRIES), { sources: ['link-to-src'], followSymlinks: false });
  assert.equal(noFollow.matched[0].stat.type, 'symlink');
});

test('planCopy: missing source and empty wildcard are one-line errors naming the pattern', async () => {
  const tree = entriesTree(ENTRIES);
  await assert.rejects(planCopy(tree, { sources: ['nope.txt'] }), (e: unknown) => e instanceof FileOpError && e.code === 'ENOSOURCE' && e.message.includes('failed to calculate checksum of ref source: "/nope.txt": not found') && !e.message.includes('\n'));
  await assert.rejects(planCopy(tree, { sources: ['*.none'] }), (e: unknown) => e instanceof FileOpError && e.message.includes('"*.none" matched no files'));
  // As contenthash's checksumFollow: a link in the last component is followed and its target
  // named (joined to the link's directory, kept in the root); a link before it keeps its name.
  const links = entriesTree([...ENTRIES,
    { path: 'dangling', type: 'symlink', mode: 0o777, linkTarget: 'nowhere' },
    { path: 'src/out', type: 'symlink', mode: 0o777, linkTarget: '../../../etc/hostname' },
    { path: 'hop', type: 'symlink', mode: 0o777, linkTarget: '/dangling' },
  ]);
  const names = async (source: string) => planCopy(links, { sources: [source] }).then(() => '', (e: Error) => /checksum of ref source: "([^"]*)"/.exec(e.message)?.[1]);
  assert.deepEqual(await Promise.all(['dangling', 'src/out', 'hop', 'link-to-src/nope', 'src/../gone'].map(names)), ['/nowhere', '/etc/hostname', '/nowhere', '/link-to-src/nope', '/gone']);
  const ok = await planCopy(tree, { sources: ['*.none'], allowEmptyWildcard: true });
  assert.equal(ok.matched.length, 0);
});

test('contentDigestsFor over a file list uses the list digests and link targets', async () => {
  const list = await contentDigestsFor({ entries: ENTRIES, sources: ['src', 'abs-link'], exclude: ['deep'], followSymlinks: false });
  assert.deepEqual(list.map((d) => [d.path, d.type, d.digest]), [
    ['src', 'dir', undefined], ['src/x.ts', 'file', D(3)], ['src/y.ts', 'file', D(4)],
    ['abs-link', 'symlink', 'sha256:' + (await import('node:crypto')).createHash('sha256').update('/src/x.ts').digest('hex')],
  ]);
  await assert.rejects(contentDigestsFor({ entries: [{ path: 'f', type: 'file', mode: 0o644 }], sources: ['f'] }), /has no digest/);
});

test('entriesTree: parents are implied, and paths with empty or "." components name the same entries', async () => {
  const clean = entriesTree([{ path: 'top/mid/leaf.txt', type: 'file', mode: 0o600, digest: D(7) }, { path: 'top/other', type: 'dir', mode: 0o700 }]);
  const unclean = entriesTree([{ path: './top//mid/./leaf.txt/', type: 'file', mode: 0o600, digest: D(7) }, { path: '/top/other', type: 'dir', mode: 0o700 }, { path: '.', type: 'dir', mode: 0o755 }]);
  for (const tree of [clean, unclean]) {
    assert.deepEqual(await tree.readdir(''), ['top']);
    assert.deepEqual(await tree.readdir('top'), ['mid', 'other']);
    assert.deepEqual(await tree.readdir('top/mid'), ['leaf.txt']);
    assert.deepEqual(await tree.lstat('top/mid'), { type: 'dir', mode: 0o755, size: 0 });
    assert.deepEqual(await tree.lstat('top/other'), { type: 'dir', mode: 0o700, size: 0 });
    assert.deepEqual(await tree.lstat('top/mid/leaf.txt'), { type: 'file', mode: 0o600, size: 0 });
    assert.equal(tree.entry('top/mid/leaf.txt')?.digest, D(7));
    assert.equal(tree.entry('top/mid/leaf.txt')?.path, 'top/mid/leaf.txt');
  }
});
