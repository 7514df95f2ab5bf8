// Same build, same digest (issue 15 item 3): through a real cluster, a rebuild that changes
// nothing pushes identical image and index digests, as BuildKit does by reusing its cached
// result (layer times come from the cache, not the clock); a changed file gives new ones.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { solve } from '../e2e/grpcClient.js';

let cluster: Cluster;
let dir: string;
before(async () => {
  cluster = await startCluster({ workers: 2 });
  dir = await mkdtemp(join(tmpdir(), 'buildyard-digests-'));
});
after(async () => {
  await cluster?.stop();
  if (dir) await rm(dir, { recursive: true, force: true });
});

test('a rebuild with nothing changed gives the same index digest; a change gives a new one', async () => {
  await writeFile(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nCOPY a /a\nRUN echo hi > /b\nENV X=1\n`);
  await writeFile(join(dir, 'a'), 'a\n');
  const image = `${cluster.registry.host}/digests/app:1`;
  const request = { platforms: ['linux/amd64', 'linux/arm64'], outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }] };
  const first = await solve(cluster, dir, request);
  assert.equal(first.error, undefined, first.error?.message);
  const again = await solve(cluster, dir, request);
  assert.equal(again.error, undefined, again.error?.message);
  assert.equal(again.result!.digest, first.result!.digest, 'the rebuild reused the cached result, created times included');
  await writeFile(join(dir, 'a'), 'changed\n');
  const changed = await solve(cluster, dir, request);
  assert.equal(changed.error, undefined, changed.error?.message);
  assert.notEqual(changed.result!.digest, first.result!.digest);
});
