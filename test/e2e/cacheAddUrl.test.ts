// A cache export holds the steps after an ADD <url> without --checksum too. Those steps are
// stored under keys the solver resolves when it runs them (from what the URL served), not the
// plan's provisional keys; the stage result carries them so --cache-to (type=registry and
// inline) exports those records, and a brand-new cluster importing the cache runs nothing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startCluster, startRegistry, type Cluster, type RegistryService } from '@buildyard/testkit';
import { solve, vertexSummary, type SolveOutcome } from './grpcClient.js';
import { ContextDirs } from './security/contextDirs.js';
import { startOutside, type Outside } from './security/outsideNetwork.js';
import { UrlServer } from './urlServerControl.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster and a network namespace)';

let registry: RegistryService;
let outside: Outside;
let server: UrlServer;
let contexts: ContextDirs;
const clusters: Cluster[] = [];

before(async () => {
  if (skip) return;
  registry = await startRegistry();
  outside = await startOutside();
  server = await UrlServer.start(outside);
  contexts = new ContextDirs('cache-add-url');
});
after(async () => {
  await Promise.allSettled(clusters.map((c) => c.stop()));
  server?.stop();
  await outside?.stop();
  await registry?.stop();
  contexts?.remove();
});

async function freshCluster(): Promise<Cluster> {
  await Promise.all(clusters.splice(0).map((c) => c.stop()));
  const cluster = await startCluster({ workers: 1, registry });
  clusters.push(cluster);
  return cluster;
}

/** Step names that ran (not from the cache). */
function ran(outcome: SolveOutcome): string[] {
  return [...vertexSummary(outcome.events).entries()].filter(([, v]) => !v.cached).map(([name]) => name);
}

test('steps after an ADD <url> are exported to a registry cache and inline, and a fresh cluster reuses them', { skip }, async () => {
  const url = `${server.base}/cached-${outside.nonce}.txt`;
  await server.serve({ body: `served ${outside.nonce}\n`, etag: '"c1"' });
  const cacheRef = `${registry.host}/cache/addurl:buildcache`;
  const image = `${registry.host}/cache/addurl-image:1`;
  let cluster = await freshCluster();
  const dockerfile = `FROM ${cluster.busybox.reference}
ADD ${url} /fetched
RUN cp /fetched /copied && echo ran-${outside.nonce}
COPY Dockerfile /Dockerfile.copy
`;
  const dir = contexts.make('app', dockerfile);
  const request = { platforms: ['linux/amd64'], buildArgs: { SOURCE_DATE_EPOCH: '1700000000' } };
  const built = await solve(cluster, dir, {
    ...request,
    outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }],
    cacheTo: [{ type: 'registry', attrs: { ref: cacheRef, mode: 'max' } }, { type: 'inline', attrs: {} }],
  });
  assert.equal(built.error?.message, undefined, built.logs);
  assert.equal(built.result!.verticesCached, 0);

  // From the registry cache: every step (the ADD, the RUN and the COPY after it) is a hit.
  cluster = await freshCluster();
  const fromRegistry = await solve(cluster, dir, { ...request, cacheFrom: [{ type: 'registry', attrs: { ref: cacheRef } }] });
  assert.equal(fromRegistry.error?.message, undefined, fromRegistry.logs);
  assert.deepEqual(ran(fromRegistry).filter((n) => /ADD|RUN|COPY/.test(n)), [], 'nothing ran');
  // The config (layers' diff ids, history): the manifest of the first build also holds the inline cache.
  assert.equal(fromRegistry.result!.images[0]!.configDigest, built.result!.images[0]!.configDigest);

  // From the image's inline cache (mode=min: the target chain, which is every step here).
  cluster = await freshCluster();
  const fromInline = await solve(cluster, dir, { ...request, cacheFrom: [{ type: 'registry', attrs: { ref: image } }] });
  assert.equal(fromInline.error?.message, undefined, fromInline.logs);
  assert.deepEqual(ran(fromInline).filter((n) => /ADD|RUN|COPY/.test(n)), [], 'nothing ran');
  assert.equal(fromInline.result!.images[0]!.configDigest, built.result!.images[0]!.configDigest);

  // The URL now serves something else: the imported records do not apply to it.
  await server.serve({ body: `changed ${outside.nonce}\n`, etag: '"c2"' });
  const changed = await solve(cluster, dir, { ...request, cacheFrom: [{ type: 'registry', attrs: { ref: cacheRef } }] });
  assert.equal(changed.error?.message, undefined, changed.logs);
  assert.ok(ran(changed).some((n) => n.includes('RUN cp /fetched')), `the RUN ran again: ${ran(changed)}`);
});
