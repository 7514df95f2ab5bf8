// Hard links in a context, end to end against a real store and gRPC server: the walk lists a
// file's later names as links to its first one, the sync and the store keep them, a worker's
// tree makes them one inode (fresh, from a sibling, or updated in place), and a client can never
// have a worker link anything but a regular file of the same tree.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, readFile, readdir, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ContextEntry as WireEntry } from '@buildyard/proto';
import { encodeManifest, S_IFREG, type ContextEntry } from './ContextEntry.js';
import { ContextError } from './ContextError.js';
import { ContextStore, readManifest } from './ContextStore.js';
import { materializeContext } from './materializeContext.js';
import { syncContext } from './syncContext.js';
import { rawSync, startSyncServer, type TestSyncServer } from './syncServer.test-util.js';
import { walkContext } from './walkContext.js';

let tmp: string;
let store: ContextStore;
let alice: TestSyncServer;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'buildyard-hardlinks-'));
  store = new ContextStore({ root: join(tmp, 'store') });
  alice = await startSyncServer(store, 'alice');
});
after(async () => {
  await alice?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');
/** One fixed time for every file, so a blob can be given it too. */
const T = 1_600_000_000;

/** d/f, d/h and e/x are one file; a few other files keep a changed tree mostly the same. */
async function makeContext(name: string): Promise<string> {
  const dir = join(tmp, name);
  await mkdir(join(dir, 'd'), { recursive: true });
  await mkdir(join(dir, 'e'));
  for (let i = 0; i < 6; i++) await writeFile(join(dir, `other${i}`), `${name} other ${i}\n`);
  await writeFile(join(dir, 'd/f'), 'shared\n');
  await link(join(dir, 'd/f'), join(dir, 'd/h'));
  await link(join(dir, 'd/f'), join(dir, 'e/x'));
  await stampFiles(dir);
  return dir;
}

/** Mode 0644 and time T on every file (directories keep theirs). */
async function stampFiles(dir: string): Promise<void> {
  for (const rel of await readdir(dir, { recursive: true })) {
    const path = join(dir, rel);
    if (!(await stat(path)).isFile()) continue;
    await chmod(path, 0o644);
    await utimes(path, T, T);
  }
}

const ino = async (path: string) => (await stat(path)).ino;
/** Entries with times to the microsecond, which is what a tree's utimes keeps. */
const micro = (entries: readonly ContextEntry[]) => entries.map((e) => ({ ...e, modTime: String(BigInt(e.modTime ?? '0') / 1000n) }));
const hardlinksOf = (entries: readonly ContextEntry[]) => entries.filter((e) => e.hardlinkTo !== undefined).map((e) => [e.path, e.hardlinkTo]);

test('a synced context keeps a file\'s names: stored as links to its first name, written as one inode that is never the store\'s', async () => {
  const dir = await makeContext('roundtrip');
  await writeFile(join(dir, 'solo'), 'solo\n');
  await stampFiles(dir);
  const { contextId } = await syncContext(alice.client, dir, { cacheDir: false });
  const manifest = await readManifest(store, contextId);
  assert.deepEqual(hardlinksOf(manifest), [['d/h', 'd/f'], ['e/x', 'd/f']]);
  assert.equal(manifest.find((e) => e.path === 'e/x')!.digest, sha('shared\n'));
  // Entries without a link encode as before, so contexts without links keep their ids.
  assert.equal(encodeManifest(manifest.filter((e) => e.hardlinkTo === undefined)).includes('hardlinkTo'), false);

  // Blobs with the entries' mode and time: a lone file is then linked from the store; a file
  // with several names must still get an inode of the tree's own.
  for (const d of [sha('shared\n'), sha('solo\n')]) {
    await chmod(store.content.path(d), 0o644);
    await utimes(store.content.path(d), T, T);
  }
  const out = join(tmp, 'roundtrip-tree');
  await materializeContext(store, contextId, out);
  const [f, h, x] = await Promise.all(['d/f', 'd/h', 'e/x'].map((p) => stat(join(out, p))));
  assert.equal(h.ino, f.ino);
  assert.equal(x.ino, f.ino);
  assert.equal(f.nlink, 3, 'the three names and nothing else');
  assert.equal(f.mtimeMs, T * 1000);
  assert.equal(await readFile(join(out, 'e/x'), 'utf8'), 'shared\n');
  const blob = await stat(store.content.path(sha('shared\n')));
  assert.notEqual(f.ino, blob.ino);
  assert.equal(blob.nlink, 1, 'no tree links the store\'s blob');
  assert.equal(await ino(join(out, 'solo')), await ino(store.content.path(sha('solo\n'))), 'the store-link path was open to them');
  // Walked again, the tree gives the same entries (so a COPY of it sees what the client had).
  assert.deepEqual(micro(await walkContext(out, { cacheDir: false })), micro(await walkContext(dir, { cacheDir: false })));

  // A consumer that writes only some names: the first one left out, the next carries the content.
  const some = join(tmp, 'roundtrip-some');
  await materializeContext(store, contextId, some, { include: (p) => p !== 'd/f' });
  assert.deepEqual((await readdir(join(some, 'd'))).sort(), ['h']);
  assert.equal(await ino(join(some, 'e/x')), await ino(join(some, 'd/h')));
  assert.equal(await readFile(join(some, 'e/x'), 'utf8'), 'shared\n');
});

test('a rebuild where one name\'s link is broken and its content changed gives two inodes with the right contents, from a sibling and in place', async () => {
  const dir = await makeContext('rebuild');
  const cacheDir = join(tmp, 'cache-rebuild');
  const first = await syncContext(alice.client, dir, { cacheDir });
  // A worker's contexts dir (trees named by id, each made under a partial name), and a tree of
  // its own that is handed over and updated in place (WorkerDisk's updateFrom).
  const contexts = join(tmp, 'rebuild-contexts');
  const fromSibling = async (id: string) => {
    const partial = join(contexts, `${id.slice(7)}.partial-1`);
    const res = await materializeContext(store, id, partial, { reuseSiblings: true });
    await rename(partial, join(contexts, id.slice(7)));
    return { res, tree: join(contexts, id.slice(7)) };
  };
  const inPlace = join(tmp, 'rebuild-in-place');
  const update = (id: string, from: string) => materializeContext(store, id, inPlace, { updateFrom: from });
  const one = await fromSibling(first.contextId);
  await materializeContext(store, first.contextId, inPlace);

  await unlink(join(dir, 'd/h'));
  await writeFile(join(dir, 'd/h'), 'changed\n');
  await stampFiles(dir);
  const second = await syncContext(alice.client, dir, { cacheDir });
  assert.equal(alice.results.at(-1)!.delta, true);
  assert.deepEqual(hardlinksOf(await readManifest(store, second.contextId)), [['e/x', 'd/f']]);
  const fresh = join(tmp, 'rebuild-fresh');
  await materializeContext(store, second.contextId, fresh);
  const two = await fromSibling(second.contextId);
  assert.equal(two.res.reusedFrom, first.contextId);
  assert.equal((await update(second.contextId, first.contextId)).reusedFrom, first.contextId);
  for (const tree of [two.tree, inPlace]) {
    assert.equal(await readFile(join(tree, 'd/h'), 'utf8'), 'changed\n', tree);
    assert.equal(await readFile(join(tree, 'd/f'), 'utf8'), 'shared\n', tree);
    assert.equal(await ino(join(tree, 'e/x')), await ino(join(tree, 'd/f')), tree);
    assert.notEqual(await ino(join(tree, 'd/h')), await ino(join(tree, 'd/f')), tree);
    assert.deepEqual(await walkContext(tree, { cacheDir: false }), await walkContext(fresh, { cacheDir: false }), tree);
  }
  // The sibling it started from is as it was: its names still one file with the old content.
  assert.equal(await readFile(join(one.tree, 'd/h'), 'utf8'), 'shared\n');
  assert.equal(await ino(join(one.tree, 'd/h')), await ino(join(one.tree, 'd/f')));

  // The name joins its file again: one inode once more, and no other tree's file is touched.
  await unlink(join(dir, 'd/h'));
  await link(join(dir, 'd/f'), join(dir, 'd/h'));
  const third = await syncContext(alice.client, dir, { cacheDir });
  assert.equal((await update(third.contextId, second.contextId)).reusedFrom, second.contextId);
  const [f, h, x] = await Promise.all(['d/f', 'd/h', 'e/x'].map((p) => ino(join(inPlace, p))));
  assert.deepEqual([h, x], [f, f]);
  assert.equal(await readFile(join(inPlace, 'd/h'), 'utf8'), 'shared\n');
  assert.equal(await readFile(join(two.tree, 'd/h'), 'utf8'), 'changed\n');
  assert.notEqual(await ino(join(two.tree, 'd/h')), await ino(join(two.tree, 'd/f')));
});

test('a name that only joins or leaves its file\'s links is a change: the delta sends that one entry and gives the full sync\'s context', async () => {
  const dir = join(tmp, 'membership');
  await mkdir(dir);
  // Same bytes, mode and time, two inodes: only the link tells them apart.
  await writeFile(join(dir, 'f'), 'same\n');
  await writeFile(join(dir, 'g'), 'same\n');
  await stampFiles(dir);
  const cacheDir = join(tmp, 'cache-membership');
  const apart = await syncContext(alice.client, dir, { cacheDir });
  await unlink(join(dir, 'g'));
  await link(join(dir, 'f'), join(dir, 'g'));
  const joined = await syncContext(alice.client, dir, { cacheDir });
  assert.deepEqual([alice.results.at(-1)!.delta, alice.results.at(-1)!.entriesReceived], [true, 1]);
  assert.notEqual(joined.contextId, apart.contextId);
  assert.equal(joined.contextId, (await syncContext(alice.client, dir, { cacheDir: false })).contextId);
  assert.deepEqual(hardlinksOf(await readManifest(store, joined.contextId)), [['g', 'f']]);
  await unlink(join(dir, 'g'));
  await writeFile(join(dir, 'g'), 'same\n');
  await stampFiles(dir);
  const left = await syncContext(alice.client, dir, { cacheDir });
  assert.deepEqual([alice.results.at(-1)!.delta, alice.results.at(-1)!.entriesReceived], [true, 1]);
  assert.equal(left.contextId, apart.contextId);
});

test('the attacker: a hard link to anything but an earlier regular file of the same context with the same metadata is refused, on upload and in a stored manifest', async () => {
  const mine = Buffer.from('mine\n');
  const file = (path: string, extra: Partial<WireEntry> = {}): WireEntry => ({ path, mode: S_IFREG | 0o644, size: mine.length, digest: sha(mine), linkTarget: '', modTime: '0', xattrs: [], ...extra });
  const dir = (path: string): WireEntry => ({ path, mode: 0o040755, size: 0, digest: '', linkTarget: '', modTime: '0', xattrs: [] });
  const symlink = (path: string, target: string): WireEntry => ({ path, mode: 0o120777, size: 0, digest: '', linkTarget: target, modTime: '0', xattrs: [] });
  const cases: [string, WireEntry[], RegExp][] = [
    ['a path outside the context', [file('a'), file('b', { hardlinkTo: '../a' })], /context entry "b" is a hard link to "\.\.\/a", which is not an entry of the context/],
    ['an absolute path', [file('a'), file('b', { hardlinkTo: '/etc/passwd' })], /context entry "b" is a hard link to "\/etc\/passwd", which is not an entry of the context/],
    ['an empty name', [file('a'), file('b', { hardlinkTo: '' })], /context entry "b" is a hard link to "", which is not an entry/],
    ['a directory', [dir('d'), file('d/f'), file('e', { hardlinkTo: 'd' })], /context entry "e" is a hard link to "d", which is a directory/],
    ['a symlink', [file('a'), symlink('s', 'a'), file('t', { hardlinkTo: 's' })], /context entry "t" is a hard link to "s", which is a symlink/],
    ['a symlink to outside', [symlink('s', '/etc/passwd'), file('t', { hardlinkTo: 's' })], /context entry "t" is a hard link to "s", which is a symlink/],
    ['itself', [file('a', { hardlinkTo: 'a' })], /context entry "a" is a hard link to itself/],
    ['a later entry', [file('a', { hardlinkTo: 'b' }), file('b')], /context entry "a" is a hard link to "b", which comes after it in walk order/],
    ['a chain', [file('a'), file('b', { hardlinkTo: 'a' }), file('c', { hardlinkTo: 'b' })], /context entry "c" is a hard link to "b", which is itself a hard link/],
    ['other content', [file('a'), file('b', { hardlinkTo: 'a', digest: sha('other'), size: 5 })], /context entry "b" is a hard link to "a" but differs from it/],
    ['another mode', [file('a'), file('b', { hardlinkTo: 'a', mode: S_IFREG | 0o4755 })], /context entry "b" is a hard link to "a" but differs from it/],
    ['another time', [file('a'), file('b', { hardlinkTo: 'a', modTime: '5' })], /context entry "b" is a hard link to "a" but differs from it/],
    ['a directory that says it is a link', [file('a'), { ...dir('d'), hardlinkTo: 'a' }], /context entry "d" is a directory with a hard link target/],
  ];
  for (const [name, entries, refused] of cases) {
    const upload = await rawSync(alice, [{ entries: { entries, removed: [] } }, { entriesDone: true }],
      () => [{ blobs: { blobs: [{ digest: sha(mine), data: mine, last: true }] } }, { uploadDone: true }]);
    assert.equal(upload.contextId, undefined, name);
    assert.match(upload.error?.details ?? '', refused, name);
    // A store that holds such a manifest (written without validation) writes nothing of it.
    const id = await store.putManifest(entries.map(({ xattrs: _none, ...e }): ContextEntry => e), 'alice');
    const dest = join(tmp, 'attacker', name.replaceAll(' ', '-'), 'tree');
    await assert.rejects(materializeContext(store, id, dest), (err: Error) => err instanceof ContextError && refused.test(err.message) && err.message.includes('the stored manifest is invalid'), name);
    assert.deepEqual(await readdir(dest).catch(() => []), [], name);
  }

  // A delta that changes a file's first name but not its other names no longer matches them.
  const base = await makeContext('attacker-base');
  const { contextId } = await syncContext(alice.client, base, { cacheDir: false });
  const changed = Buffer.from('changed\n');
  const f = (await readManifest(store, contextId)).find((e) => e.path === 'd/f')!;
  const delta = await rawSync(alice, [{ base: { contextId } }, { entries: { entries: [{ ...f, size: changed.length, digest: sha(changed), modTime: f.modTime ?? '0', xattrs: [] }], removed: [] } }, { entriesDone: true }],
    () => [{ blobs: { blobs: [{ digest: sha(changed), data: changed, last: true }] } }, { uploadDone: true }]);
  assert.equal(delta.contextId, undefined);
  assert.match(delta.error?.details ?? '', /context entry "d\/h" is a hard link to "d\/f" but differs from it/);
});
