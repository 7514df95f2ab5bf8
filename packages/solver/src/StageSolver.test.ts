// A step that changes nothing still gives a layer, as in BuildKit (real overlayfs snapshotter).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { lstat, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCacheIndex } from '@buildyard/cache';
import type { FileAction, FileVertex, StagePlan } from '@buildyard/graph';
import { openLocalEngine } from './engine.js';
import { StageSolver } from './StageSolver.js';

let work: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), 'buildyard-stagesolver-'));
});
after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

function mkdirVertex(n: number): FileVertex {
  return { kind: 'file', actions: [{ op: 'mkdir', path: '/d', mode: 0o755 }], user: '', inputs: [], digest: `sha256:${String(n).repeat(64)}`, cacheKey: `empty-layer-test-${n}`, name: `[${n}/2] WORKDIR /d`, line: n };
}

// WORKDIR /d twice: the second creates nothing.
const stage: StagePlan = {
  id: 's0', index: 0, platform: 'linux/amd64', base: { kind: 'scratch' }, dependsOn: [], config: { WorkingDir: '/d' },
  vertices: [mkdirVertex(1), mkdirVertex(2)],
  history: [{ created_by: 'WORKDIR /d' }, { created_by: 'WORKDIR /d' }],
  cacheKey: 'empty-layer-test-2', noCache: false,
};

async function solver(name: string) {
  const stateDir = join(work, name);
  const engine = await openLocalEngine(stateDir);
  const cache = new LocalCacheIndex(join(stateDir, 'cache-index'));
  const s = new StageSolver({ stateDir, snapshotter: engine.snapshotter, executor: engine.executor, blobs: engine.blobs, cache, images: engine.images, compression: 'gzip' });
  return { solver: s, cache, engine, has: (digest: string) => engine.blobs.has(digest), views: async () => (await engine.snapshotter.list()).filter((i) => i.kind === 'view').map((i) => i.name) };
}

test('a file step that changes nothing exports an empty layer with a deterministic digest, and its history entry stays non-empty', async () => {
  const { solver: s, has } = await solver('fresh');
  const first = await s.solve({ stage, inputs: {} });
  assert.equal(first.layers.length, 2);
  assert.notEqual(first.layers[1].diffID, first.layers[0].diffID);
  assert.ok(await has(first.layers[1].digest));
  assert.deepEqual(first.history.map((h) => h.empty_layer ?? false), [false, false]);

  const again = await s.solve({ stage, inputs: {}, noCache: true });
  // Only the empty layer is compared: the first holds /d, whose mtime is the time it was made.
  assert.equal(again.layers[1].digest, first.layers[1].digest);
});

test('a cache record without a layer (left by solvers that dropped empty diffs) is replaced, not reused', async () => {
  const { solver: s, cache } = await solver('legacy');
  await cache.put({ key: 'empty-layer-test-2', layer: null, description: 'WORKDIR /d', platform: 'linux/amd64' });
  const result = await s.solve({ stage, inputs: {} });
  assert.equal(result.layers.length, 2);
  assert.equal(result.verticesCached, 0);
  assert.equal((await cache.get('empty-layer-test-2'))?.layer?.digest, result.layers[1].digest);

  const rebuilt = await s.solve({ stage, inputs: {} });
  assert.equal(rebuilt.verticesCached, 2);
  assert.deepEqual(rebuilt.layers, result.layers);
});

test('the views a solve mounts (the parent of each diff) are gone after it: a view left behind would hold its parent from the GC', async () => {
  const { solver: s, views } = await solver('views');
  await s.solve({ stage, inputs: {}, noCache: true });
  assert.deepEqual(await views(), []);
});

function fileVertex(n: number, action: FileAction): FileVertex {
  return { kind: 'file', actions: [action], user: '', inputs: [], digest: `sha256:${String(n).repeat(64)}`, cacheKey: `link-test-${n}`, name: `[${n}/4] COPY`, line: n };
}

const copyOf = (sources: string[], dest: string, link: boolean, chmod?: string): Extract<FileAction, { op: 'copy' }> => ({
  op: 'copy', from: { kind: 'context' }, sources, dest, parents: false, exclude: [], link, followSymlinks: true, isAdd: false, ...(chmod ? { chmod } : {}),
});

test('COPY --link is made on an empty tree: its layer is only the copy, with fresh parents, and later steps see it merged over the stage', async () => {
  const { solver: s, engine } = await solver('link');
  const context = join(work, 'link-context');
  await mkdir(context);
  await writeFile(join(context, 'a.txt'), 'a\n');
  await writeFile(join(context, 'b.txt'), 'b\n');
  await symlink('/real', join(context, 'alias'));
  const linkStage: StagePlan = {
    ...stage, vertices: [
      fileVertex(1, { op: 'mkdir', path: '/tmp', mode: 0o1777 }),
      fileVertex(2, { ...copyOf(['alias'], '/', false), followSymlinks: false }),
      fileVertex(3, copyOf(['a.txt'], '/alias/', true)),
      fileVertex(4, copyOf(['b.txt'], '/tmp/c.txt', true, '600')),
      fileVertex(5, copyOf(['b.txt'], '/alias/', false)),
      fileVertex(6, copyOf(['a.txt'], '/tmp/', true)),
    ],
    history: [], cacheKey: 'link-test-6',
  };
  const result = await s.solve({ stage: linkStage, inputs: {}, contextDir: context });
  const chain = (n: number) => engine.snapshotter.ensureChain(result.layers.slice(0, n).map((l) => ({ ...l, open: () => engine.blobs.openRead(l.digest) })));
  // The layer of step 3 alone, unpacked on an empty tree: /alias is its own directory.
  const [alone] = result.layers.slice(2, 3);
  const own = await engine.snapshotter.view('link-own', await engine.snapshotter.ensureChain([{ ...alone, open: () => engine.blobs.openRead(alone.digest) }]));
  try {
    assert.deepEqual(await readdir(own.mountpoint), ['alias']);
    assert.deepEqual(await readdir(join(own.mountpoint, 'alias')), ['a.txt']);
  } finally {
    await own.release();
    await engine.snapshotter.remove('link-own');
  }
  // With --chmod, BuildKit does not merge: a plain copy, which leaves /tmp as the stage has it.
  const before = await engine.snapshotter.view('link-chmod', await chain(4));
  try {
    assert.equal((await lstat(join(before.mountpoint, 'tmp'))).mode & 0o7777, 0o1777);
  } finally {
    await before.release();
    await engine.snapshotter.remove('link-chmod');
  }
  const merged = await engine.snapshotter.view('link-merged', await chain(6));
  try {
    const root = merged.mountpoint;
    assert.ok((await lstat(join(root, 'alias'))).isDirectory(), 'the layer\'s directory replaces the symlink');
    assert.deepEqual((await readdir(join(root, 'alias'))).sort(), ['a.txt', 'b.txt'], 'a plain COPY after it writes into the merged directory');
    assert.equal(await readFile(join(root, 'tmp/a.txt'), 'utf8'), 'a\n');
    // The layer's /tmp (0755, fresh) replaces the stage's; what the stage had in it stays.
    assert.equal((await lstat(join(root, 'tmp'))).mode & 0o7777, 0o755);
    assert.equal((await lstat(join(root, 'tmp/c.txt'))).mode & 0o7777, 0o600);
  } finally {
    await merged.release();
    await engine.snapshotter.remove('link-merged');
  }
});

test('a user name on a stage with no layer yet fails as in BuildKit (its scratch has nothing to look it up in); ids do not, and once a layer holds /etc/passwd the name is looked up there', async () => {
  const { solver: s, engine } = await solver('scratch-user');
  const context = join(work, 'user-context');
  await mkdir(context);
  await writeFile(join(context, 'passwd'), 'daemon:x:7:8::/:/bin/false\n');
  const named: FileAction = { op: 'mkdir', path: '/w', mode: 0o755, chown: 'daemon' };
  const on = (...vertices: FileVertex[]): StagePlan => ({ ...stage, vertices, history: [], cacheKey: `user-test-${vertices.at(-1)!.line}` });
  await assert.rejects(s.solve({ stage: on(fileVertex(1, named)), inputs: {} }), (e: Error) => /^invalid user index: -1 \(user "daemon": /.test(e.message) && !e.message.includes('\n'));
  assert.equal((await s.solve({ stage: on(fileVertex(2, { ...named, chown: '5:6' })), inputs: {} })).layers.length, 1);
  const result = await s.solve({ stage: on(fileVertex(3, copyOf(['passwd'], '/etc/passwd', false)), fileVertex(4, named)), inputs: {}, contextDir: context });
  const view = await engine.snapshotter.view('user-view', await engine.snapshotter.ensureChain(result.layers.map((l) => ({ ...l, open: () => engine.blobs.openRead(l.digest) }))));
  try {
    const st = await lstat(join(view.mountpoint, 'w'));
    assert.deepEqual([st.uid, st.gid], [7, 8]);
  } finally {
    await view.release();
    await engine.snapshotter.remove('user-view');
  }
});
