// A step that changes nothing still gives a layer, as in BuildKit (real overlayfs snapshotter).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LocalCacheIndex } from '@buildyard/cache';
import type { FileVertex, StagePlan } from '@buildyard/graph';
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

async function solver(name: string): Promise<{ solver: StageSolver; cache: LocalCacheIndex; has: (digest: string) => Promise<boolean>; views: () => Promise<string[]> }> {
  const stateDir = join(work, name);
  const engine = await openLocalEngine(stateDir);
  const cache = new LocalCacheIndex(join(stateDir, 'cache-index'));
  const s = new StageSolver({ stateDir, snapshotter: engine.snapshotter, executor: engine.executor, blobs: engine.blobs, cache, images: engine.images, compression: 'gzip' });
  return { solver: s, cache, has: (digest) => engine.blobs.has(digest), views: async () => (await engine.snapshotter.list()).filter((i) => i.kind === 'view').map((i) => i.name) };
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
