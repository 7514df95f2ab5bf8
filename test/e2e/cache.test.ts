// Issue 6 (parts 3-5) acceptance: a cache exported by one cluster makes a brand-new cluster
// (empty Redis, empty worker and shared state) rebuild without running a single RUN step.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { status } from '@grpc/grpc-js';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startCluster, startRegistry, type Cluster, type RegistryService } from '@buildyard/testkit';
import { solve, vertexSummary, type SolveOutcome } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
const platforms = ['linux/amd64', 'linux/arm64'];
let registry: RegistryService;
let work: string;
const clusters: Cluster[] = [];

before(async () => {
  registry = await startRegistry();
  work = mkdtempSync(join(tmpdir(), 'buildyard-e2e-cache-'));
});
after(async () => {
  await Promise.allSettled(clusters.map((c) => c.stop()));
  await registry?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** RUN vertices by name, and whether each was a cache hit. */
function runSteps(outcome: SolveOutcome): Map<string, boolean> {
  return new Map([...vertexSummary(outcome.events).entries()].filter(([name]) => name.includes(' RUN ')).map(([name, v]) => [name, !!v.cached]));
}

const imageDigests = (o: SolveOutcome) => o.result!.images.map((i) => `${i.platform} ${i.manifestDigest}`).sort();

// A local cache (type=local) lives on the client and needs the buildyard client to stream it:
// its round trip is test/e2e/security/localCache.test.ts.
test('a cache exported to a registry is reused by a fresh cluster: no RUN executes, same digests', async () => {
  const cacheRef = `${registry.host}/cache/example:buildcache`;
  // SOURCE_DATE_EPOCH pins the config's `created`, so equal layers give equal image digests.
  const request = (cluster: Cluster) => ({ platforms, buildArgs: { BASE: cluster.busybox.reference, SOURCE_DATE_EPOCH: '1700000000' } });

  const first = await startCluster({ workers: 1, registry });
  clusters.push(first);
  const built = await solve(first, example, {
    ...request(first),
    cacheTo: [{ type: 'registry', attrs: { ref: cacheRef, mode: 'max' } }],
  });
  assert.equal(built.error, undefined, built.error?.message);
  const empty = built.events.filter((e) => !e.accepted && !e.vertex && !e.log && !e.result && !e.error && !e.warning);
  assert.equal(empty.length, 0, 'the cache export\'s phases (for BuildKit clients) send Buildyard\'s client no empty events');
  const firstRuns = runSteps(built);
  assert.equal(firstRuns.size, 6, `3 RUN steps per platform: ${[...firstRuns.keys()]}`);
  assert.ok([...firstRuns.values()].every((cached) => !cached), 'the first build ran every RUN');
  await first.stop();
  clusters.length = 0;

  // A new cluster: new Redis, new shared and worker state; only the registry is the same.
  const second = await startCluster({ workers: 1, registry });
  clusters.push(second);
  // Redis and the shared store are empty, so every hit below comes from the import.
  const fromRegistry = await solve(second, example, { ...request(second), cacheFrom: [{ type: 'registry', attrs: { ref: cacheRef } }] });
  assert.equal(fromRegistry.error, undefined, fromRegistry.error?.message);
  const registryRuns = runSteps(fromRegistry);
  assert.equal(registryRuns.size, 6);
  assert.ok([...registryRuns.values()].every(Boolean), `every RUN was a cache hit: ${JSON.stringify([...registryRuns])}`);
  assert.deepEqual(imageDigests(fromRegistry), imageDigests(built));
  assert.equal(fromRegistry.result!.digest, built.result!.digest);
});

test('a bad cache spec is refused with a one-line INVALID_ARGUMENT; a missing cache is only a warning', async () => {
  const cluster = clusters[0] ?? await startCluster({ workers: 1, registry }).then((c) => (clusters.push(c), c));
  await assert.rejects(solve(cluster, example, { platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference }, cacheTo: [{ type: 'registry', attrs: {} }] }),
    (err: { code: number; details: string }) => err.code === status.INVALID_ARGUMENT && err.details === '--cache-to #1 (type=registry): missing ref: add ref=REGISTRY/REPO:TAG');
  const missing = await solve(cluster, example, { platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference }, cacheFrom: [{ type: 'registry', attrs: { ref: `${registry.host}/cache/none:nope` } }] });
  assert.equal(missing.error, undefined, missing.error?.message);
  assert.ok(missing.events.some((e) => e.warning?.message.startsWith(`cache import from ${registry.host}/cache/none:nope skipped`)), 'a warning names the missing cache');
});
