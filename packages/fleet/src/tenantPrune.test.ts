// The attacker: any tenant's prune (Control.Prune: `buildyard prune`, `buildctl prune`) reaches
// every worker. A real worker (real Redis, its own overlayfs snapshotter and disk) holding
// alice's and bob's step snapshots (made by the real solver), snapshots every tenant shares and
// both tenants' RUN cache mounts answers bob's prune, sent as the frontend sends it: bob's own
// go, alice's and the shared ones stay. An operator's prune still reaches everything.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { LocalCacheIndex, pruneWorkers } from '@buildyard/cache';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import type { FileVertex, StagePlan } from '@buildyard/graph';
import { FsContentStore } from '@buildyard/oci';
import { OverlaySnapshotter } from '@buildyard/snapshot';
import { StageSolver, cacheMountDir, cacheMountTenant, openExecutionEngine, recordCacheMountTenant } from '@buildyard/solver';
import { startRedis } from '@buildyard/testkit';
import { FleetWorker } from './FleetWorker.js';

/** Two file steps on scratch (each a layer and, on the worker, a step snapshot), its tenant's own. */
function stageOf(tenant: string): StagePlan {
  const step = (n: number): FileVertex => ({
    kind: 'file', actions: [{ op: 'mkfile', path: `/${tenant}-${n}.txt`, content: `${tenant} ${n}\n`.repeat(4096), mode: 0o644 }], user: '', inputs: [],
    digest: `sha256:${String(n).repeat(64)}`, cacheKey: `tenant-prune-${tenant}-${n}`, name: `[${n}/2] COPY <<EOF /${tenant}-${n}.txt`, line: n,
  });
  return {
    id: 's0', index: 0, platform: 'linux/amd64', base: { kind: 'scratch' }, dependsOn: [], config: {},
    vertices: [step(1), step(2)], history: [{ created_by: 'COPY 1' }, { created_by: 'COPY 2' }], cacheKey: `tenant-prune-${tenant}-2`, noCache: false,
  };
}

test('the attacker: bob\'s prune leaves alice\'s cache mounts and step snapshots and the shared snapshots, and removes bob\'s own', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-tenant-prune-'));
  const stateDir = join(root, 'state');
  const redisService = await startRedis();
  // Hooks run in order: the worker and the client go before Redis does.
  const cleanups: Array<() => unknown> = [];
  t.after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
    await redisService.stop();
    rmSync(root, { recursive: true, force: true });
  });

  // What builds leave on a worker, made before it starts (one snapshotter owns the dir at a time).
  const engine = await openExecutionEngine(stateDir);
  const blobs = new FsContentStore(join(root, 'seed-blobs'));
  await blobs.init();
  const solve = (tenant: string) => new StageSolver({
    stateDir, snapshotter: engine.snapshotter, executor: engine.executor, blobs, cache: new LocalCacheIndex(join(root, `index-${tenant}`)), compression: 'gzip',
    images: { pull: () => Promise.reject(new Error('no image in this test')) },
  }).solve({ stage: stageOf(tenant), inputs: {}, tenant });
  const alice = await solve('alice');
  await solve('bob');
  // Another tenant building on alice's image unpacks her layers' blobs: snapshots for everyone.
  const shared = await engine.snapshotter.ensureChain(alice.layers.map((l) => ({ ...l, open: () => blobs.openRead(l.digest) })));
  const mounts: Record<string, string> = {
    alice: cacheMountDir(stateDir, 'alice', 'go-build'), bob: cacheMountDir(stateDir, 'bob', 'go-build'),
    // Made before cache mounts recorded their tenant: only the worker's GC removes it.
    old: cacheMountDir(stateDir, 'alice', 'npm'),
  };
  for (const [name, dir] of Object.entries(mounts)) {
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'data'), Buffer.alloc(256 * 1024, 7));
    if (name !== 'old') await recordCacheMountTenant(dir, name);
  }
  const snapshots = async () => {
    const all = (await new OverlaySnapshotter(join(stateDir, 'snapshots')).list()).filter((s) => s.kind === 'committed');
    return { alice: all.filter((s) => s.tenant === 'alice').length, bob: all.filter((s) => s.tenant === 'bob').length, shared: all.filter((s) => s.tenant === undefined).map((s) => s.name) };
  };
  const before = await snapshots();
  assert.deepEqual({ alice: before.alice, bob: before.bob }, { alice: 2, bob: 2 }, 'each step\'s snapshot is its tenant\'s');
  assert.ok(before.shared.length === 2 && before.shared.includes(shared), 'the unpacked chain is no one\'s');

  const worker = new FleetWorker({
    id: 'prune-worker', redisUrl: redisService.url, stateDir, sharedDir: join(root, 'shared'), secretsKey: '', capacity: 1, platforms: [],
    compression: 'gzip', insecureRegistries: [], stepTimeoutMs: 60_000, maxLogBytesPerStep: 1 << 16, heartbeatMs: 1_000, heartbeatTtlMs: 10_000,
    // A large budget and no timed GC: only the prunes below remove anything.
    version: 'test', keepStorageBytes: 1 << 30, gcIntervalMs: 3_600_000,
  });
  cleanups.push(() => worker.close());
  await worker.start();
  const redis = new Redis(redisService.url);
  cleanups.push(() => redis.disconnect());

  // Bob's `buildyard prune --all`, as the frontend sends it to every worker.
  const [bobs] = await pruneWorkers(redis, DEFAULT_KEYS.prefix, ['prune-worker'], { tenant: 'bob' }, 0, 30_000);
  assert.ok(bobs, 'the worker answered');
  assert.ok(bobs.reclaimedBytes >= 256 * 1024, `the worker reports what bob's prune reclaimed: ${bobs.reclaimedBytes}`);
  assert.deepEqual(await snapshots(), { ...before, bob: 0 }, 'bob\'s step snapshots went; alice\'s and the shared ones stay');
  assert.ok(!existsSync(mounts.bob) && (await cacheMountTenant(mounts.bob)) === undefined, 'bob\'s cache mount went, with its record');
  for (const name of ['alice', 'old']) assert.equal(readFileSync(join(mounts[name]!, 'data')).length, 256 * 1024, `the ${name} cache mount stays whole`);

  // An operator's prune (the dashboard's) still reaches everything no stage uses.
  const [everything] = await pruneWorkers(redis, DEFAULT_KEYS.prefix, ['prune-worker'], 'fleet', 0, 30_000);
  assert.ok(everything && everything.reclaimedBytes >= 2 * 256 * 1024, JSON.stringify(everything));
  assert.deepEqual(await snapshots(), { alice: 0, bob: 0, shared: [] });
  for (const dir of Object.values(mounts)) assert.ok(!existsSync(dir), `${dir} went`);
});
