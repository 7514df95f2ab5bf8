// Issue 18 item 3: a one-file change to the multi-stage example (two platforms) schedules only the
// stages the change reaches. The frontend answers the others from the cache itself (the base
// and client stages), hands their results to the scheduled ones, and the image is the one a
// build done wholly by the fleet gives (another tenant's, whose cache is empty).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_KEYS, type RedisClient } from '@buildyard/contracts';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { solve, vertexSummary, type SolveOutcome } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster whose workers run runc)';
let cluster: Cluster;
let redis: RedisClient;
let work: string;

before(async () => {
  if (skip) return;
  cluster = await startCluster({ workers: 2, tenants: ['fleet'] });
  redis = cluster.openRedis();
  work = mkdtempSync(join(tmpdir(), 'buildyard-e2e-partial-cache-'));
});
after(async () => {
  redis?.disconnect();
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

async function build(dir: string, token?: string): Promise<SolveOutcome & { result: NonNullable<SolveOutcome['result']> }> {
  // SOURCE_DATE_EPOCH pins every time in the images and layers: equal inputs give equal digests
  // whichever cache (or none) a build started from.
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64', 'linux/arm64'], buildArgs: { BASE: cluster.busybox.reference, SOURCE_DATE_EPOCH: '1700000000' } }, { token });
  assert.equal(outcome.error, undefined, `build failed: ${outcome.error?.message}`);
  assert.ok(outcome.result, 'the build ended without a result');
  return outcome as SolveOutcome & { result: NonNullable<SolveOutcome['result']> };
}

/** The stage jobs the scheduler was given for a build. */
async function stageJobs(buildId: string): Promise<number> {
  return Number(await redis.hget(DEFAULT_KEYS.scheduler.build(buildId), 'total') ?? 0);
}

test('a one-file change to the multi-stage example schedules only the stages it reaches and gives the image the fleet alone builds', { skip }, async () => {
  const dir = join(work, 'example');
  cpSync(example, dir, { recursive: true });
  const cold = await build(dir);
  assert.equal(await stageJobs(cold.result.buildId), 8, 'the cold build schedules 4 stages on each of 2 platforms');

  appendFileSync(join(dir, 'server/main.sh'), '# changed\n');
  const edited = await build(dir);
  assert.equal(await stageJobs(edited.result.buildId), 4, 'only the server and final stages are scheduled, on each platform');
  const steps = vertexSummary(edited.events);
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    const server = steps.get(`${platform} [server 3/3] RUN sh common/build.sh server /out/server`);
    assert.ok(server && !server.cached && server.workerId, `${platform}: a worker ran the server stage's RUN`);
    const client = steps.get(`${platform} [client 3/3] RUN sh common/build.sh client /out/client`);
    assert.ok(client?.cached && !client.workerId, `${platform}: the frontend answered the client stage's RUN (CACHED, no worker)`);
  }

  const fleet = await build(dir, cluster.tokens.fleet);
  assert.equal(await stageJobs(fleet.result.buildId), 8, 'another tenant\'s build (an empty cache) is the fleet\'s alone');
  assert.deepEqual(edited.result.images, fleet.result.images, 'each platform\'s image is the one the fleet builds');
  assert.equal(edited.result.digest, fleet.result.digest);
});
