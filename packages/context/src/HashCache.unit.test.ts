// The per-context digest cache: saves of one context directory at the same time (bake builds
// several targets sharing a context in one process) all succeed; a walk that changed little
// appends a line rather than rewriting every row, and a torn line loses only what follows it.
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { appendFile, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashCache, RACY_MARGIN_NS, msFromNs } from './HashCache.js';

/** A directory of the test's own, removed when it ends. */
async function tempDir(t: TestContext): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-hashcache-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** The digest a cache has for `path` at this exact stat (looked up as the walk does, by numbers). */
function lookup(cache: HashCache, path: string, st: { size: number; mtimeNs: string; ctimeNs: string; ino: string }): string | undefined {
  return cache.get(path, { size: st.size, mtimeMs: msFromNs(st.mtimeNs), ctimeMs: msFromNs(st.ctimeNs), ino: Number(st.ino) })?.digest;
}

test('concurrent saves of one context directory\'s cache all succeed and leave one file', async (t) => {
  const dir = await tempDir(t);
  const caches = await Promise.all(Array.from({ length: 8 }, () => HashCache.open(dir, '/some/context')));
  caches.forEach((c, i) => c.set(`file${i}`, { size: i, mtimeNs: '1', ctimeNs: '2', ino: '3' }, `sha256:${i}`, 10n ** 18n));
  await Promise.all(caches.map((c) => c.save()));
  const files = await readdir(dir);
  assert.equal(files.length, 1, `no temporary file is left: ${files.join(', ')}`);
  // Each save appended its one row as one whole line.
  const again = await HashCache.open(dir, '/some/context');
  for (let i = 0; i < 8; i++) assert.equal(lookup(again, `file${i}`, { size: i, mtimeNs: '1', ctimeNs: '2', ino: '3' }), `sha256:${i}`);
});

test('a row hashed within the racy margin of its file times is not trusted; an older one is', async (t) => {
  const dir = await tempDir(t);
  const hashedAt = 1_700_000_000_000_000_000n;
  const st = (at: bigint) => ({ size: 4, mtimeNs: String(at), ctimeNs: String(at), ino: '9' });
  const c = await HashCache.open(dir, '/ctx');
  // Written in the same tick as the read that hashed it: a second same-size write in that tick
  // would leave size, mtime, ctime and inode as they are.
  c.set('racy', st(hashedAt), 'sha256:r', hashedAt);
  c.set('ctime-racy', { ...st(hashedAt - RACY_MARGIN_NS - 1n), ctimeNs: String(hashedAt - 1n) }, 'sha256:c', hashedAt);
  c.set('old', st(hashedAt - RACY_MARGIN_NS - 1n), 'sha256:o', hashedAt);
  await c.save();
  const again = await HashCache.open(dir, '/ctx');
  assert.equal(lookup(again, 'racy', st(hashedAt)), undefined);
  assert.equal(lookup(again, 'ctime-racy', { ...st(hashedAt - RACY_MARGIN_NS - 1n), ctimeNs: String(hashedAt - 1n) }), undefined);
  assert.equal(lookup(again, 'old', st(hashedAt - RACY_MARGIN_NS - 1n)), 'sha256:o');
  // Same size and mtime, new ctime (content rewritten, mtime put back): a miss.
  assert.equal(lookup(again, 'old', { ...st(hashedAt - RACY_MARGIN_NS - 1n), ctimeNs: String(hashedAt) }), undefined);
});

test('a walk that changed one row appends one line; deleted rows drop out; many changes compact the file', async (t) => {
  const dir = await tempDir(t);
  const st = (i: number) => ({ size: i, mtimeNs: '1', ctimeNs: '2', ino: String(i) });
  const first = await HashCache.open(dir, '/ctx');
  for (let i = 0; i < 3000; i++) first.set(`f${i}`, st(i), `sha256:${i}`, 10n ** 18n);
  await first.save();
  const [file] = await readdir(dir);
  const snapshot = await readFile(join(dir, file), 'utf8');

  // f0 changed, f1 deleted, the rest hit.
  const second = await HashCache.open(dir, '/ctx');
  second.set('f0', { ...st(0), size: 7 }, 'sha256:new', 10n ** 18n);
  for (let i = 2; i < 3000; i++) assert.equal(lookup(second, `f${i}`, st(i)), `sha256:${i}`);
  await second.save();
  const appended = await readFile(join(dir, file), 'utf8');
  assert.ok(appended.startsWith(snapshot), 'the snapshot is not rewritten');
  assert.deepEqual(JSON.parse(appended.slice(snapshot.length)), [['f0', 7, '1', '2', '0', 'sha256:new'], ['f1']]);

  const third = await HashCache.open(dir, '/ctx');
  assert.equal(lookup(third, 'f0', { ...st(0), size: 7 }), 'sha256:new');
  assert.equal(lookup(third, 'f1', st(1)), undefined);
  // Half the rows changed: the file is rewritten as one snapshot line.
  for (let i = 2; i < 3000; i++) third.set(`f${i}`, { ...st(i), mtimeNs: '5' }, `sha256:${i}b`, 10n ** 18n);
  await third.save();
  const compacted = (await readFile(join(dir, file), 'utf8')).split('\n');
  assert.equal(compacted.length, 2, 'one line and its newline');
  const fourth = await HashCache.open(dir, '/ctx');
  assert.equal(lookup(fourth, 'f2', { ...st(2), mtimeNs: '5' }), 'sha256:2b');
  assert.equal(lookup(fourth, 'f1', st(1)), undefined);
});

test('a torn line and what follows it are ignored; the rows before it still hit', async (t) => {
  const dir = await tempDir(t);
  const st = { size: 1, mtimeNs: '1', ctimeNs: '2', ino: '3' };
  const c = await HashCache.open(dir, '/ctx');
  c.set('a', st, 'sha256:a', 10n ** 18n);
  await c.save();
  const [file] = await readdir(dir);
  await appendFile(join(dir, file), '{"a":[1,"1","2","3","sha256:torn\n{"b":[1,"1","2","3","sha256:b"]}\n');
  const again = await HashCache.open(dir, '/ctx');
  assert.equal(lookup(again, 'a', st), 'sha256:a');
  assert.equal(lookup(again, 'b', st), undefined);
});

test('a cache in the first format (rows keyed by path) still hits, and its next save rewrites it as lists of rows', async (t) => {
  const dir = await tempDir(t);
  const st = (i: number) => ({ size: i, mtimeNs: '1', ctimeNs: '2', ino: String(i) });
  const first = await HashCache.open(dir, '/ctx');
  first.set('seed', st(0), 'sha256:seed', 10n ** 18n);
  await first.save();
  const [file] = await readdir(dir);
  await writeFile(join(dir, file), `${JSON.stringify({ a: [1, '1', '2', '1', 'sha256:a'], b: [2, '1', '2', '2', 'sha256:b'] })}\n${JSON.stringify({ b: 0 })}\n`);
  const old = await HashCache.open(dir, '/ctx');
  assert.equal(lookup(old, 'a', st(1)), 'sha256:a');
  assert.equal(lookup(old, 'b', st(2)), undefined, 'dropped by the second line');
  await old.save();
  assert.deepEqual((await readFile(join(dir, file), 'utf8')).split('\n'), [JSON.stringify([['a', 1, '1', '2', '1', 'sha256:a']]), '']);
  assert.equal(lookup(await HashCache.open(dir, '/ctx'), 'a', st(1)), 'sha256:a');
});
