import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { link, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { walkContext } from './walkContext.js';
import { validateEntrySet } from './validateEntries.js';
import { isRegular, sortEntries } from './ContextEntry.js';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-walk-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

test('walkContext lists sorted entries with sha256 digests, modes and link targets', () => withDir(async (dir) => {
  const ctx = join(dir, 'ctx');
  await mkdir(join(ctx, 'a'), { recursive: true });
  await writeFile(join(ctx, 'a-b'), 'dash');
  await writeFile(join(ctx, 'a/z'), 'zed');
  await symlink('a/z', join(ctx, 'link'));
  const entries = await walkContext(ctx, { cacheDir: false });
  assert.deepEqual(entries.map((e) => e.path), ['a', 'a/z', 'a-b', 'link']);
  assert.equal(entries[1].digest, sha('zed'));
  assert.equal(entries[1].size, 3);
  assert.equal(entries[0].mode & 0o170000, 0o040000);
  assert.equal(entries[3].linkTarget, 'a/z');
  assert.equal(entries[3].digest, '');
}));

test('the digest cache is used for unchanged files and ignored for changed ones', () => withDir(async (dir) => {
  const ctx = join(dir, 'ctx');
  const cacheDir = join(dir, 'cache');
  await mkdir(ctx);
  await writeFile(join(ctx, 'f'), 'one');
  // Hashing "an hour later", so the fresh file's times are not racy (see HashCache).
  const later = () => BigInt(Date.now() + 3_600_000) * 1_000_000n;
  assert.equal((await walkContext(ctx, { cacheDir, now: later }))[0].digest, sha('one'));
  // Plant a fake digest: if the walk returns it, the file was not rehashed.
  const [cacheFile] = await readdir(cacheDir);
  const rows = JSON.parse(await readFile(join(cacheDir, cacheFile), 'utf8')) as unknown[][];
  assert.equal(rows[0][0], 'f');
  rows[0][5] = sha('planted');
  await writeFile(join(cacheDir, cacheFile), JSON.stringify(rows));
  assert.equal((await walkContext(ctx, { cacheDir }))[0].digest, sha('planted'));
  await writeFile(join(ctx, 'f'), 'two');
  assert.equal((await walkContext(ctx, { cacheDir }))[0].digest, sha('two'));
}));

test('files get their exact modification times (nanoseconds) whether hashed, found in the digest cache, or changed since their row', () => withDir(async (dir) => {
  const ctx = join(dir, 'ctx');
  const cacheDir = join(dir, 'cache');
  await mkdir(join(ctx, 'sub'), { recursive: true });
  await writeFile(join(ctx, 'sub/f'), 'one');
  await symlink('sub/f', join(ctx, 'link'));
  const { lstat, utimes } = await import('node:fs/promises');
  // A time with sub-microsecond digits, as the kernel's clock writes them.
  await utimes(join(ctx, 'sub/f'), 1_600_000_000.123457, 1_600_000_000.123457);
  const exact = async (p: string) => String((await lstat(join(ctx, p), { bigint: true })).mtimeNs);
  const later = () => BigInt(Date.now() + 3_600_000) * 1_000_000n;
  for (const round of ['hashed', 'from the cache', 'changed since its row']) {
    if (round === 'changed since its row') await writeFile(join(ctx, 'sub/f'), 'two');
    const entries = await walkContext(ctx, { cacheDir, now: later });
    for (const e of entries) assert.equal(e.modTime, await exact(e.path), `${e.path}, ${round}`);
    assert.equal(entries.find((e) => e.path === 'sub/f')?.digest, sha(round === 'changed since its row' ? 'two' : 'one'));
  }
}));

test('a file rewritten in the tick it was hashed in (same size, mtime and ctime) is hashed again', () => withDir(async (dir) => {
  const ctx = join(dir, 'ctx');
  const cacheDir = join(dir, 'cache');
  await mkdir(ctx);
  await writeFile(join(ctx, 'f'), 'one');
  // Hashed by the real clock right after the write: the row is racily clean and not kept, so
  // a same-size rewrite that stat cannot tell apart is still seen.
  assert.equal((await walkContext(ctx, { cacheDir }))[0].digest, sha('one'));
  const { stat, utimes } = await import('node:fs/promises');
  const before = await stat(join(ctx, 'f'));
  await writeFile(join(ctx, 'f'), 'two');
  await utimes(join(ctx, 'f'), before.atime, before.mtime);
  assert.equal((await walkContext(ctx, { cacheDir }))[0].digest, sha('two'));
}));

test('a ! exception deep below an excluded directory is reached; excluded dirs without exceptions are pruned', () => withDir(async (dir) => {
  for (const p of ['vendor/a/b/keep.me', 'vendor/a/b/drop', 'vendor/c/drop', 'src/x.ts']) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), p);
  }
  const entries = await walkContext(dir, { cacheDir: false, dockerignore: ['vendor', '!vendor/a/b/keep.me'] });
  assert.deepEqual(entries.map((e) => e.path), ['src', 'src/x.ts', 'vendor', 'vendor/a', 'vendor/a/b', 'vendor/a/b/keep.me']);
  assert.deepEqual((await walkContext(dir, { cacheDir: false, dockerignore: ['vendor', 'src/*.ts'] })).map((e) => e.path), ['src']);
}));

test('symlinks may point anywhere, as BuildKit sends them: outside the context, absolute, through other links', () => {
  const link = (path: string, linkTarget: string) => ({ path, mode: 0o120777, size: 0, digest: '', linkTarget });
  assert.doesNotThrow(() => validateEntrySet(sortEntries([link('a', 'b/c'), link('up', '../../etc'), link('abs', '/etc/passwd'), link('d', '.'), link('e', 'd/..')])));
});

test('readDockerignore parses the context .dockerignore, or gives [] without one', () => withDir(async (dir) => {
  const { readDockerignore } = await import('./readDockerignore.js');
  assert.deepEqual(await readDockerignore(dir), []);
  await writeFile(join(dir, '.dockerignore'), '# comment\nnode_modules\n!node_modules/keep\n');
  const patterns = await readDockerignore(dir);
  assert.ok(patterns.includes('node_modules'));
  assert.ok(patterns.includes('!node_modules/keep'));
}));

test('the walk emits entries in comparePaths order without sorting them afterwards, non-BMP names included', () => withDir(async (dir) => {
  const ctx = join(dir, 'ctx');
  // U+FFFD sorts above a surrogate pair in UTF-16 and below it in UTF-8.
  for (const d of ['a', 'a.b', '\u{1F600}', '\uFFFD']) await mkdir(join(ctx, d, 'x'), { recursive: true });
  for (const f of ['a/x/f', 'a/x-y', 'a.b/z', 'ab', '\u{1F600}/x/1', '\uFFFD/2', 'Z']) await writeFile(join(ctx, f), f);
  const entries = await walkContext(ctx, { cacheDir: false });
  assert.deepEqual(entries.map((e) => e.path), sortEntries([...entries]).map((e) => e.path));
  assert.deepEqual(entries.slice(-6).map((e) => e.path), ['\uFFFD', '\uFFFD/2', '\uFFFD/x', '\u{1F600}', '\u{1F600}/x', '\u{1F600}/x/1']);
}));

test('a file with several names is listed once with content, its later names as hard links to its first included name', () => withDir(async (dir) => {
  const ctx = join(dir, 'ctx');
  await mkdir(join(ctx, 'd'), { recursive: true });
  await mkdir(join(ctx, 'e'));
  await writeFile(join(ctx, 'd/f'), 'linked\n');
  await link(join(ctx, 'd/f'), join(ctx, 'd/h'));
  await link(join(ctx, 'd/f'), join(ctx, 'e/across'));
  // Same bytes, another inode: not a link.
  await writeFile(join(ctx, 'd/g'), 'linked\n');
  // The first name is ignored: fsutil makes the next included name the target.
  await writeFile(join(ctx, 'a-ignored'), 'second\n');
  await link(join(ctx, 'a-ignored'), join(ctx, 'b'));
  await link(join(ctx, 'a-ignored'), join(ctx, 'c'));
  const cacheDir = join(dir, 'cache');
  for (const run of ['first walk', 'from the hash cache']) {
    const entries = await walkContext(ctx, { cacheDir, dockerignore: ['a-ignored'] });
    const view = entries.filter(isRegular).map((e) => [e.path, e.hardlinkTo, e.digest, e.size]);
    assert.deepEqual(view, [
      ['b', undefined, sha('second\n'), 7],
      ['c', 'b', sha('second\n'), 7],
      ['d/f', undefined, sha('linked\n'), 7],
      ['d/g', undefined, sha('linked\n'), 7],
      ['d/h', 'd/f', sha('linked\n'), 7],
      ['e/across', 'd/f', sha('linked\n'), 7],
    ], run);
    const byPath = new Map(entries.map((e) => [e.path, e]));
    assert.equal(byPath.get('d/h')!.modTime, byPath.get('d/f')!.modTime, run);
    assert.equal(byPath.get('d/h')!.mode, byPath.get('d/f')!.mode, run);
    validateEntrySet(entries);
  }
}));
