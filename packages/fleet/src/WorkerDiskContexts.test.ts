// A worker's kept context trees against a real context store on a real directory tree: the
// next build of a directory starts from the tree of the last one of the same tenant, gets
// exactly its own manifest (removed files, changed modes, a file turned into a directory),
// never another tenant's tree, and the GC bounds what is kept. Also the eviction of local
// layer copies, least recently used first.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { ContextStore, isRegular, manifestIndex, materializeContext, readManifest, sortEntries, walkContext, type MaterializeResult } from '@buildyard/context';
import { FsContentStore } from '@buildyard/oci';
import { WorkerDisk } from './WorkerDisk.js';

const du = (path: string) => Number(execFileSync('du', ['-s', '-B1', '-x', path], { encoding: 'utf8' }).split('\t')[0]);

function setup(t: { after(fn: () => void): void }) {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-kept-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const store = new ContextStore({ root: join(root, 'store') });
  const running = new Set<string>();
  const disk = new WorkerDisk({
    stateDir: join(root, 'state'),
    buildRunning: async (id) => running.has(id),
    contextPaths: async (id) => manifestIndex(await store.manifest(id)).byPath,
  });
  /** Stores a client directory as a context of `tenant`, as a sync does. */
  const sync = async (dir: string, tenant: string): Promise<string> => {
    const entries = await walkContext(dir, { cacheDir: false });
    await store.putBlobs(entries.filter(isRegular).map((e) => ({ digest: e.digest, data: readFileSync(join(dir, e.path)) })));
    return store.putManifest(sortEntries(entries), tenant);
  };
  /** One stage of build `buildId` using the context, start to end (the build ends too unless `buildGoesOn`). */
  const stage = async (tenant: string, contextId: string, buildId: string, buildGoesOn = false) => {
    let result: MaterializeResult | undefined;
    running.add(buildId);
    // As FleetWorker materialises.
    const got = await disk.acquireContext(tenant, contextId, buildId, async (dir, updateFrom) => {
      result = await materializeContext(store, contextId, dir, updateFrom ? { updateFrom } : { reuseSiblings: true });
    });
    got.release();
    if (!buildGoesOn) running.delete(buildId);
    return { dir: got.dir, result };
  };
  /** Every materialised tree on disk, relative to the contexts dir (`tenant/lineage/hex`). */
  const trees = () => {
    const out: string[] = [];
    const walk = (d: string, depth: number) => {
      for (const n of existsSync(d) ? readdirSync(d) : []) {
        if (depth === 2) out.push(relative(disk.contextsDir, join(d, n)));
        else walk(join(d, n), depth + 1);
      }
    };
    walk(disk.contextsDir, 0);
    return out.sort();
  };
  return { root, store, disk, sync, stage, trees, running };
}

/** A client directory of `n` small files with fixed times, plus what `extra` adds. */
function clientDir(dir: string, n: number, extra: (dir: string) => void = () => {}): string {
  mkdirSync(join(dir, 'sub'), { recursive: true });
  for (let i = 0; i < n; i++) writeFileSync(join(dir, `f${i}.txt`), `file ${i}\n`);
  writeFileSync(join(dir, 'sub', 'c.txt'), 'c\n');
  extra(dir);
  for (const p of ['sub/c.txt', ...Array.from({ length: n }, (_, i) => `f${i}.txt`)]) if (existsSync(join(dir, p))) utimesSync(join(dir, p), 1_600_000_000, 1_600_000_000);
  return dir;
}

/** Entries as `walkContext` lists them, times to the microsecond (as utimes sets them). */
const listing = async (dir: string) => (await walkContext(dir, { cacheDir: false })).map((e) => ({ ...e, modTime: String(BigInt(e.modTime ?? '0') / 1000n) }));
const manifestListing = async (store: ContextStore, id: string) => (await readManifest(store, id)).map((e) => ({ ...e, modTime: String(BigInt(e.modTime ?? '0') / 1000n) }));
const inodes = (dir: string) => new Set((execFileSync('find', [dir, '-type', 'f', '-printf', '%i\\n'], { encoding: 'utf8' })).trim().split('\n'));

test('the next build of a directory starts from the kept tree of the last one (linked while in use, else updated in place) and gets exactly its own manifest', async (t) => {
  const { root, store, sync, stage, trees, disk, running } = setup(t);
  const v1 = clientDir(join(root, 'v1'), 20, (d) => {
    writeFileSync(join(d, 'gone.txt'), 'only in v1\n');
    writeFileSync(join(d, 'x'), 'x was a file\n');
  });
  const id1 = await sync(v1, 'alice');
  // Build 1 goes on (a later stage may use its tree): build 2 links from it and leaves it as it is.
  const first = await stage('alice', id1, 'build-1', true);
  assert.equal(first.result?.reusedFrom, undefined, 'nothing to start from');
  await disk.removeFinishedContexts();
  assert.equal(trees().length, 1, 'the tree of a running build stays');
  assert.ok(existsSync(join(first.dir, 'gone.txt')));

  // The same directory, edited: a file removed, modes changed, a file replaced by a directory.
  const v2 = clientDir(join(root, 'v2'), 20, (d) => {
    mkdirSync(join(d, 'x'));
    writeFileSync(join(d, 'x', 'inner'), 'x is a directory now\n');
    writeFileSync(join(d, 'f3.txt'), 'changed content\n');
    chmodSync(join(d, 'f5.txt'), 0o755);
    chmodSync(join(d, 'sub'), 0o700);
    writeFileSync(join(d, 'new-in-v2.txt'), 'new\n');
  });
  const id2 = await sync(v2, 'alice');
  const second = await stage('alice', id2, 'build-2');
  assert.equal(second.result?.reusedFrom, id1, 'started from the kept tree');
  assert.ok(second.result!.linked >= 18, `unchanged files linked from it: ${JSON.stringify(second.result)}`);
  assert.deepEqual(await listing(second.dir), await manifestListing(store, id2), 'exactly the new manifest');
  assert.equal(existsSync(join(second.dir, 'gone.txt')), false);
  assert.equal(lstatSync(join(second.dir, 'f5.txt')).mode & 0o777, 0o755);
  assert.equal(lstatSync(join(second.dir, 'sub')).mode & 0o777, 0o700);
  assert.ok(lstatSync(join(second.dir, 'x')).isDirectory());
  assert.deepEqual(await listing(first.dir), await manifestListing(store, id1), 'the running build\'s tree was not changed under its links');

  running.delete('build-1');
  await disk.removeFinishedContexts();
  assert.deepEqual(trees(), [relative(disk.contextsDir, second.dir)], 'only the newest tree of the lineage survives');

  // Back to v1: nothing uses v2's tree any more, so it becomes v1's in place: the directory x
  // a file again, modes back, gone.txt back, new-in-v2.txt gone.
  const third = await stage('alice', id1, 'build-3');
  assert.equal(third.result?.reusedFrom, id2);
  assert.equal(third.result?.copied, 4, `only the differing files written: ${JSON.stringify(third.result)}`);
  assert.equal(existsSync(second.dir), false, 'v2\'s tree was handed over');
  assert.deepEqual(await listing(third.dir), await manifestListing(store, id1));
  assert.equal(existsSync(join(third.dir, 'new-in-v2.txt')), false);
  assert.ok(lstatSync(join(third.dir, 'x')).isFile());
  await disk.removeFinishedContexts();
  assert.deepEqual(trees(), [relative(disk.contextsDir, third.dir)]);
});

test('another tenant never starts from, nor shares, a tenant\'s kept tree; other directories are lineages of their own', async (t) => {
  const { root, sync, stage, trees, disk } = setup(t);
  const secret = clientDir(join(root, 'alice'), 20, (d) => writeFileSync(join(d, 'only-alice.txt'), 'alice\'s secret\n'));
  const aliceId = await sync(secret, 'alice');
  const alice = await stage('alice', aliceId, 'a-1');
  await disk.removeFinishedContexts();

  // Bob's context: the same paths and contents but the secret.
  const bobDir = clientDir(join(root, 'bob'), 20);
  const bobId = await sync(bobDir, 'bob');
  const bob = await stage('bob', bobId, 'b-1');
  assert.equal(bob.result?.reusedFrom, undefined, 'bob\'s tree is written afresh');
  assert.equal(existsSync(join(bob.dir, 'only-alice.txt')), false);
  const shared = [...inodes(bob.dir)].filter((i) => inodes(alice.dir).has(i));
  assert.deepEqual(shared, [], 'no file of bob\'s tree is a link to alice\'s');
  // Even the very same context id gets a tree of bob's own.
  await sync(secret, 'bob');
  const same = await stage('bob', aliceId, 'b-2');
  assert.notEqual(same.dir, alice.dir);
  assert.deepEqual([...inodes(same.dir)].filter((i) => inodes(alice.dir).has(i)), []);

  // A different directory of alice's: a lineage of its own; both are kept.
  const other = join(root, 'other');
  mkdirSync(other);
  for (let i = 0; i < 5; i++) writeFileSync(join(other, `o${i}`), `other ${i}\n`);
  const otherId = await sync(other, 'alice');
  const o = await stage('alice', otherId, 'a-2');
  assert.equal(o.result?.reusedFrom, undefined);
  await disk.removeFinishedContexts();
  const alicesLineages = new Set(trees().filter((p) => p.startsWith(relative(disk.contextsDir, alice.dir).split('/')[0])).map((p) => p.split('/')[1]));
  assert.equal(alicesLineages.size, 2);
  // Bob's two contexts: bob-1 then the secret's ids share most paths, so one lineage, one tree.
  assert.equal(trees().length, 3, trees().join(' '));

  // A small context whose few paths are all in a big one (a named context beside the main
  // one) is a lineage of its own: it neither takes over nor replaces the big tree.
  const small = join(root, 'small');
  mkdirSync(small);
  writeFileSync(join(small, 'f0.txt'), 'file 0\n');
  const s = await stage('alice', await sync(small, 'alice'), 'a-3');
  assert.equal(s.result?.reusedFrom, undefined);
  await disk.removeFinishedContexts();
  assert.ok(existsSync(alice.dir), 'the big tree is still kept');
  assert.equal(trees().length, 4, trees().join(' '));
});

test('kept trees count in the disk figure; the GC removes them oldest first when over its size, a prune all of them', async (t) => {
  const { root, sync, stage, trees, disk } = setup(t);
  const dirs = ['one', 'two', 'three'].map((name) => {
    const d = join(root, name);
    mkdirSync(d);
    writeFileSync(join(d, `${name}.bin`), Buffer.alloc(64 * 1024, name.length));
    return d;
  });
  const placed: string[] = [];
  for (const [i, d] of dirs.entries()) placed.push((await stage('alice', await sync(d, 'alice'), `build-${i}`)).dir);
  await disk.removeFinishedContexts();
  assert.equal(trees().length, 3, 'three unrelated directories: three kept trees');

  const contexts = (await disk.measure(true)).find((p) => p.kind === 'contexts')!;
  assert.equal(contexts.bytes, du(disk.contextsDir));
  assert.equal(contexts.reclaimableBytes, du(disk.contextsDir), 'kept trees are reclaimable');

  // Room for two trees: the oldest goes.
  const oneTree = await disk.contextsBytes() / 3;
  const trimmed = await disk.trimKeptContexts(async () => Math.ceil(oneTree * 2));
  assert.equal(trimmed.removed.length, 1);
  assert.equal(existsSync(placed[0]), false, 'the least recently used tree went first');
  assert.ok(existsSync(placed[1]) && existsSync(placed[2]));
  assert.ok(trimmed.bytes > 64 * 1024);

  // A tree a running build uses stays whatever the budget.
  const busy = await disk.acquireContext('alice', await sync(dirs[1], 'alice'), 'running', async () => assert.fail('already materialised'));
  await disk.trimKeptContexts(async () => 0);
  assert.deepEqual(trees(), [relative(disk.contextsDir, placed[1])]);
  busy.release();
  await disk.trimKeptContexts(async () => 0);
  assert.deepEqual(trees(), [], 'a prune leaves no tree');
});

test('local layer copies are evicted least recently used first, down to the budget', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-layers-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const local = new FsContentStore(join(root, 'state', 'blobs'));
  await local.init();
  const blobs = [];
  for (const fill of [1, 2, 3, 4]) blobs.push((await local.put(Buffer.alloc(10_000, fill))).digest);
  // Written oldest first; then a stage used the oldest and the third.
  blobs.forEach((d, i) => utimesSync(local.path(d), 1_600_000_000 + i, 1_600_000_000 + i));
  const disk = new WorkerDisk({
    stateDir: join(root, 'state'), buildRunning: async () => false, contextPaths: async () => new Set<string>(),
    layerCopies: { list: () => local.list(), evict: (d) => local.delete(d) },
  });
  disk.usedLayers([blobs[0]!, blobs[2]!]);
  const cache = (await disk.measure(true)).find((p) => p.kind === 'cache')!;
  assert.equal(cache.bytes, du(join(root, 'state', 'blobs')));
  assert.equal(cache.reclaimableBytes, cache.bytes);
  const res = await disk.trimLayerCopies(20_000);
  assert.equal(res.freedBytes, 20_000);
  assert.deepEqual(await Promise.all(blobs.map((d) => local.has(d))), [true, false, true, false], 'the two unused ones went, oldest first');
  assert.equal((await disk.trimLayerCopies(0)).keptBytes, 0);
  // Without a registry blob store there are no copies of its to evict.
  assert.deepEqual(await new WorkerDisk({ stateDir: root, buildRunning: async () => false, contextPaths: async () => new Set<string>() }).trimLayerCopies(0), { freedBytes: 0, keptBytes: 0 });
});
