// Delta syncs against a real store and real gRPC servers (one per tenant): a change costs the
// changed entries, the result is the context a full sync gives, and a tenant can never build
// on a base, or contents, it has not proven it holds.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmod, mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SyncRequest } from '@buildyard/proto';
import { ContextStore, readManifest } from './ContextStore.js';
import { syncContext } from './syncContext.js';
import { walkContext } from './walkContext.js';
import { materializeContext } from './materializeContext.js';
import { rawSync as raw, startSyncServer, type TestSyncServer } from './syncServer.test-util.js';

let tmp: string;
let store: ContextStore;
let alice: TestSyncServer;
let mallory: TestSyncServer;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), 'buildyard-delta-'));
  store = new ContextStore({ root: join(tmp, 'store') });
  alice = await startSyncServer(store, 'alice');
  mallory = await startSyncServer(store, 'mallory');
});
after(async () => {
  await alice?.stop();
  await mallory?.stop();
  await rm(tmp, { recursive: true, force: true });
});

const sha = (b: Buffer | string) => 'sha256:' + createHash('sha256').update(b).digest('hex');

async function makeTree(name: string, dirs: number, perDir: number): Promise<string> {
  const dir = join(tmp, name);
  for (let d = 0; d < dirs; d++) {
    await mkdir(join(dir, `d${d}`), { recursive: true });
    await Promise.all(Array.from({ length: perDir }, (_, f) => writeFile(join(dir, `d${d}`, `f${f}.txt`), `${name} ${d}/${f}\n`)));
  }
  return dir;
}

test('after a first full sync, a one-file change sends one entry and one file, and gives the id a full sync gives', async () => {
  const dir = await makeTree('tree', 20, 50);
  const cacheDir = join(tmp, 'cache-tree');
  const first = await syncContext(alice.client, dir, { cacheDir });
  assert.equal(alice.results.at(-1)!.delta, false);
  assert.equal(alice.results.at(-1)!.entriesReceived, 1020);

  const same = await syncContext(alice.client, dir, { cacheDir });
  assert.equal(same.contextId, first.contextId);
  assert.equal(alice.results.at(-1)!.delta, true);
  assert.equal(alice.results.at(-1)!.entriesReceived, 0, 'nothing changed: an empty delta');

  // Same size: only the digest tells it apart.
  await writeFile(join(dir, 'd3/f7.txt'), 'tree 3/7 CHANGED!'.slice(0, 'tree 3/7\n'.length));
  const changed = await syncContext(alice.client, dir, { cacheDir });
  const r = alice.results.at(-1)!;
  assert.equal(r.delta, true);
  assert.equal(r.entriesReceived, 1);
  assert.equal(changed.bytesUploaded, 'tree 3/7\n'.length);
  assert.equal(changed.files, 1000);
  assert.equal(changed.contextId, (await syncContext(alice.client, dir, { cacheDir: false })).contextId, 'the delta gives the full sync\'s context');

  // A removal, an addition, a new directory: still a handful of entries.
  await unlink(join(dir, 'd0/f0.txt'));
  await mkdir(join(dir, 'new'));
  await writeFile(join(dir, 'new/file'), 'new file\n');
  const moved = await syncContext(alice.client, dir, { cacheDir });
  assert.ok(alice.results.at(-1)!.delta);
  assert.ok(alice.results.at(-1)!.entriesReceived <= 4, `${alice.results.at(-1)!.entriesReceived} entries`);
  assert.deepEqual(await readManifest(store, moved.contextId), await walkContext(dir, { cacheDir: false }));
});

test('another tenant\'s context id is no base: the delta is dropped, nothing of it is reachable, the answer is that of an id nobody has', async () => {
  const secret = `alice's secret ${process.pid}\n`;
  const dir = join(tmp, 'alice');
  await mkdir(dir);
  await writeFile(join(dir, 'secret.txt'), secret);
  await writeFile(join(dir, 'Dockerfile'), 'FROM scratch\n');
  const victim = await syncContext(alice.client, dir, { cacheDir: join(tmp, 'cache-alice') });

  // Mallory names alice's context as her base and removes nothing but the Dockerfile: were the
  // base accepted, the result would hold alice's secret without mallory ever sending it.
  const steal: SyncRequest[] = [
    { base: { contextId: victim.contextId } },
    { entries: { entries: [], removed: ['Dockerfile'] } },
    { entriesDone: true },
  ];
  const attempt = await raw(mallory, [...steal, { uploadDone: true }]);
  assert.equal(attempt.baseUnknown, true);
  assert.equal(attempt.contextId, undefined);
  assert.match(attempt.error?.details ?? '', /upload_done before entries_done/);
  const nobodys = await raw(mallory, [{ base: { contextId: sha('no such context') } }, { entries: { entries: [], removed: ['Dockerfile'] } }, { entriesDone: true }, { uploadDone: true }]);
  assert.equal(nobodys.baseUnknown, true);
  assert.equal(nobodys.error?.details, attempt.error?.details, 'the same answer as for an id nobody has');

  // Following base_unknown with a full list that names alice's file by digest: asked for it.
  const named = { path: 'secret.txt', mode: 0o100644, size: secret.length, digest: sha(secret), linkTarget: '', modTime: '0', xattrs: [] };
  const full = await raw(mallory, [...steal, { entries: { entries: [named], removed: [] } }, { entriesDone: true }]);
  assert.equal(full.baseUnknown, true);
  assert.deepEqual(full.missing, [named.digest]);
  assert.match(full.error?.details ?? '', /requested contents were not sent/);
  assert.equal(await store.tenantHasContent('mallory', named.digest), false);

  // Mallory's own base does not let her name alice's digest either.
  const own = join(tmp, 'mallory');
  await mkdir(own);
  await writeFile(join(own, 'mine.txt'), 'mallory\n');
  const base = await syncContext(mallory.client, own, { cacheDir: false });
  const smuggle = await raw(mallory, [{ base: { contextId: base.contextId } }, { entries: { entries: [named], removed: [] } }, { entriesDone: true }]);
  assert.equal(smuggle.baseUnknown, false);
  assert.deepEqual(smuggle.missing, [named.digest]);
  assert.equal(smuggle.contextId, undefined);
  assert.equal(await store.tenantHas('mallory', victim.contextId), false);
});

test('a delta that turns a directory with entries below it into a file is refused, though it changes no path', async () => {
  const dir = await makeTree('kinds', 2, 3);
  const { contextId } = await syncContext(alice.client, dir, { cacheDir: false });
  const out = await raw(alice, [
    { base: { contextId } },
    { entries: { entries: [{ path: 'd0', mode: 0o100644, size: 1, digest: sha('x'), linkTarget: '', modTime: '0', xattrs: [] }], removed: [] } },
    { entriesDone: true },
  ], () => [{ blobs: { blobs: [{ digest: sha('x'), data: Buffer.from('x'), last: true }] } }, { uploadDone: true }]);
  assert.equal(out.contextId, undefined);
  assert.match(out.error?.details ?? '', /context entry "d0\/f0\.txt" is nested under "d0", which is not a directory/);
});

test('a client whose base the server does not take (another token, a fresh server) falls back to the full list', async () => {
  const dir = await makeTree('fallback', 2, 5);
  const cacheDir = join(tmp, 'cache-fallback');
  await syncContext(alice.client, dir, { cacheDir });
  // Same directory, same builder address, another store behind it: the base id is unknown there.
  const fresh = new ContextStore({ root: join(tmp, 'fresh-store') });
  const other = await startSyncServer(fresh, 'alice');
  try {
    await writeFile(join(dir, 'd0/f0.txt'), 'changed\n');
    // The base is named per builder address, so point this client at the base alice's server
    // recorded by reusing its state file under the new address's key.
    const { readdir, copyFile } = await import('node:fs/promises');
    const before = new Set(await readdir(cacheDir));
    await syncContext(other.client, dir, { cacheDir });
    const added = (await readdir(cacheDir)).filter((f) => !before.has(f) && f.startsWith('base-'));
    assert.equal(added.length, 1, 'a base of its own for the other builder');
    const aliceBase = [...before].find((f) => f.startsWith('base-'))!;
    await copyFile(join(cacheDir, aliceBase), join(cacheDir, added[0]));
    await writeFile(join(dir, 'd1/f1.txt'), 'changed too\n');
    const r = await syncContext(other.client, dir, { cacheDir });
    assert.equal(other.results.at(-1)!.delta, false, 'the unknown base was dropped');
    assert.deepEqual(await readManifest(fresh, r.contextId), await walkContext(dir, { cacheDir: false }));
  } finally {
    await other.stop();
  }
});

test('blobs batches are verified one by one: a wrong or unrequested blob fails the sync', async () => {
  const good = Buffer.from('good blob\n');
  const entry = (path: string, b: Buffer) => ({ path, mode: 0o100644, size: b.length, digest: sha(b), linkTarget: '', modTime: '0', xattrs: [] });
  const wrong = await raw(alice, [{ entries: { entries: [entry('a', good), entry('b', Buffer.from('other blob'))], removed: [] } }, { entriesDone: true }],
    (missing) => { assert.equal(missing.length, 2); return [{ blobs: { blobs: [{ digest: sha(good), data: good, last: true }, { digest: sha('other blob'), data: Buffer.from('OTHER BLOB'), last: true }] } }, { uploadDone: true }]; });
  assert.match(wrong.error?.details ?? '', /does not match/);
  assert.equal(await store.tenantHasContent('alice', sha('other blob')), false);
  const unrequested = await raw(alice, [{ entries: { entries: [entry('a', good)], removed: [] } }, { entriesDone: true }],
    () => [{ blobs: { blobs: [{ digest: sha('x'), data: Buffer.from('x'), last: true }] } }, { uploadDone: true }]);
  assert.match(unrequested.error?.details ?? '', /which was not requested/);
});

test('an upload is stored whole or not at all: blobs of a sync that fails later are never visible and leave no temp files', async () => {
  const first = Buffer.from(`first blob ${process.pid}\n`);
  const second = Buffer.from(`second blob ${process.pid}\n`);
  const entry = (path: string, b: Buffer) => ({ path, mode: 0o100644, size: b.length, digest: sha(b), linkTarget: '', modTime: '0', xattrs: [] });
  // The first batch is valid and written; the second fails verification.
  const failed = await raw(alice, [{ entries: { entries: [entry('a', first), entry('b', second)], removed: [] } }, { entriesDone: true }],
    () => [{ blobs: { blobs: [{ digest: sha(first), data: first, last: true }] } }, { blobs: { blobs: [{ digest: sha(second), data: Buffer.from('not it'), last: true }] } }, { uploadDone: true }]);
  assert.match(failed.error?.details ?? '', /does not match/);
  assert.equal(await store.content.has(sha(first)), false, 'the valid blob of the failed sync is not in the store');
  // Temp files live one level down, in a subdirectory per first hex digit of their digest.
  const ingest = join(store.root, 'ingest');
  const tempFilesLeft = async () => (await Promise.all((await readdir(ingest).catch(() => [])).map((d) => readdir(join(ingest, d))))).flat();
  assert.deepEqual(await tempFilesLeft(), [], 'no temp file is left');
  // The same upload, whole: both stored, and materialised with their bytes.
  const ok = await raw(alice, [{ entries: { entries: [entry('a', first), entry('b', second)], removed: [] } }, { entriesDone: true }],
    () => [{ blobs: { blobs: [{ digest: sha(first), data: first, last: true }] } }, { blobs: { blobs: [{ digest: sha(second), data: second, last: true }] } }, { uploadDone: true }]);
  assert.equal(ok.error, undefined, ok.error?.details);
  assert.equal(await store.content.has(sha(first)), true);
  assert.deepEqual(await tempFilesLeft(), []);
  const out = join(tmp, 'whole-upload');
  await materializeContext(store, ok.contextId!, out);
  assert.deepEqual([await readFile(join(out, 'a')), await readFile(join(out, 'b'))], [first, second]);
});

test('a worker materialises a changed context from the previous one: the changed entries are written, the rest linked, the previous tree untouched', async () => {
  const dir = await makeTree('mat', 5, 20);
  await symlink('d0/f0.txt', join(dir, 'link'));
  // Directories whose times the client keeps: only the worker's own writes and removals move them there.
  for (const d of ['d0', 'd1', 'd2']) await utimes(join(dir, d), 1_500_000_000, 1_500_000_000);
  const first = await syncContext(alice.client, dir, { cacheDir: false });
  // A worker's contexts dir: trees named by the hex of their id, each made under a partial name.
  const contexts = join(tmp, 'worker-contexts');
  const place = async (id: string) => {
    const partial = join(contexts, `${id.slice(7)}.partial-1`);
    const res = await materializeContext(store, id, partial, { reuseSiblings: true });
    await rename(partial, join(contexts, id.slice(7)));
    return { res, tree: join(contexts, id.slice(7)) };
  };
  const one = await place(first.contextId);
  assert.equal(one.res.reusedFrom, undefined, 'nothing to start from');

  await writeFile(join(dir, 'd1/f3.txt'), 'rewritten\n');
  await unlink(join(dir, 'd2/f0.txt'));
  await mkdir(join(dir, 'd9'));
  await writeFile(join(dir, 'd9/new'), 'new\n');
  await writeFile(join(dir, 'd0/added'), 'added\n');
  for (const d of ['d0', 'd1', 'd2']) await utimes(join(dir, d), 1_500_000_000, 1_500_000_000);
  // Directories that only changed their own mode or time.
  await chmod(join(dir, 'd3'), 0o750);
  await utimes(join(dir, 'd4'), 1_400_000_000, 1_400_000_000);
  const second = await syncContext(alice.client, dir, { cacheDir: false });
  const two = await place(second.contextId);
  assert.equal(two.res.reusedFrom, first.contextId);
  assert.equal(two.res.copied, 3, 'the three changed files are written (from the store), everything else linked');
  assert.equal(two.res.linked, two.res.entries - 3);
  // Exactly what a fresh materialisation gives (times to the microsecond, as utimes sets them).
  const fresh = join(tmp, 'mat-fresh');
  await materializeContext(store, second.contextId, fresh);
  const strip = (es: Awaited<ReturnType<typeof walkContext>>) => es.map((e) => ({ ...e, modTime: String(BigInt(e.modTime ?? '0') / 1000n) }));
  assert.deepEqual(strip(await walkContext(two.tree, { cacheDir: false })), strip(await walkContext(fresh, { cacheDir: false })));
  assert.deepEqual(strip(await walkContext(one.tree, { cacheDir: false })), strip(await readManifest(store, first.contextId)), 'the previous tree is as it was');
  assert.equal(await readFile(join(one.tree, 'd1/f3.txt'), 'utf8'), 'mat 1/3\n');
});

test('syncs of one directory saved at once leave a base that still matches its id: the next delta gives the full sync\'s context', async () => {
  const dir = await makeTree('racing', 4, 10);
  const cacheDir = join(tmp, 'cache-racing');
  await syncContext(alice.client, dir, { cacheDir });
  const [baseFile] = (await readdir(cacheDir)).filter((f) => f.startsWith('base-'));
  // Two syncs that started from one base each append a line against it; the second line's
  // parent is then not the id the first line left. Built here from two real syncs' lines.
  await writeFile(join(dir, 'd0/f0.txt'), 'first change\n');
  await syncContext(alice.client, dir, { cacheDir });
  const journal = await readFile(join(cacheDir, baseFile), 'utf8');
  await writeFile(join(dir, 'd1/f1.txt'), 'second change\n');
  await syncContext(alice.client, dir, { cacheDir });
  const lines = (await readFile(join(cacheDir, baseFile), 'utf8')).trim().split('\n');
  assert.equal(lines.length, 3, 'a snapshot and two appended lines');
  const [snapshot, , second] = lines;
  const forked = { ...(JSON.parse(second) as Record<string, unknown>), parent: (JSON.parse(snapshot) as { id: string }).id };
  await writeFile(join(cacheDir, baseFile), `${journal}${JSON.stringify(forked)}\n`);

  await writeFile(join(dir, 'd2/f2.txt'), 'third change\n');
  const next = await syncContext(alice.client, dir, { cacheDir });
  assert.equal(next.contextId, (await syncContext(alice.client, dir, { cacheDir: false })).contextId);
  assert.deepEqual(await readManifest(store, next.contextId), await walkContext(dir, { cacheDir: false }));
  // The broken journal was rewritten whole.
  assert.equal((await readFile(join(cacheDir, baseFile), 'utf8')).trim().split('\n').length, 1);
});

test('a tree never shares an inode with the content store: no build learns from a file\'s link count or times whether another tenant holds the same content', async () => {
  const dir = join(tmp, 'no-shared-inode');
  await mkdir(dir);
  const secret = `the same bytes for both tenants ${process.pid}\n`;
  await writeFile(join(dir, 'guess.txt'), secret);
  await utimes(join(dir, 'guess.txt'), 1_600_000_000, 1_600_000_000);
  const a = await syncContext(alice.client, dir, { cacheDir: false });
  const m = await syncContext(mallory.client, dir, { cacheDir: false });
  assert.equal(m.contextId, a.contextId, 'the same entries, so the same context id');
  const blob = await stat(store.content.path(sha(secret)));
  for (const [name, id] of [['alice', a.contextId], ['mallory', m.contextId]] as const) {
    const out = join(tmp, `no-shared-inode-${name}`);
    await materializeContext(store, id, out);
    const st = await stat(join(out, 'guess.txt'));
    assert.notEqual(st.ino, blob.ino, `${name}'s file is a copy, not the store's blob`);
    assert.equal(st.nlink, 1, `${name}'s file has no other link`);
  }
  assert.equal((await stat(store.content.path(sha(secret)))).nlink, 1, 'no tree links the store\'s blob');
});

test('temp files a killed upload left in the staging dirs go once a day old; younger ones and other names stay', async () => {
  const ingest = join(store.root, 'ingest');
  await mkdir(join(ingest, 'a'), { recursive: true });
  const old = (Date.now() - 25 * 3600_000) / 1000;
  const files = { 'a/killed-upload': old, 'legacy-flat-temp': old, 'a/live-upload': Date.now() / 1000 };
  for (const [name, time] of Object.entries(files)) {
    await writeFile(join(ingest, name), 'partial');
    await utimes(join(ingest, name), time, time);
  }
  await mkdir(join(ingest, 'not-a-fanout-dir'), { recursive: true });
  await writeFile(join(ingest, 'not-a-fanout-dir', 'kept'), 'x');
  await utimes(join(ingest, 'not-a-fanout-dir', 'kept'), old, old);

  assert.equal(await store.removeStagingLeftovers(24 * 3600_000), 2);
  assert.deepEqual((await readdir(join(ingest, 'a'))).sort(), ['live-upload']);
  assert.equal((await readdir(ingest)).includes('legacy-flat-temp'), false);
  assert.deepEqual(await readdir(join(ingest, 'not-a-fanout-dir')), ['kept'], 'only the staging dirs are swept');
  await rm(join(ingest, 'a', 'live-upload'));
  await rm(join(ingest, 'not-a-fanout-dir'), { recursive: true });
});
