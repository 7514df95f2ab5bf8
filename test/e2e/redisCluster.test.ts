// Issue 19 item 2: the fleet on a real Redis Cluster (3 masters with a replica each, from
// Debian's redis-server): the frontend, two workers and the dashboard open cluster clients
// (redis.cluster), a multi-stage build for two platforms runs through them, and a build goes on
// through the failover of the master holding the scheduler's slot. The whole distributed suite
// runs on a cluster too (distributedRedisCluster.test.ts; BUILDYARD_TEST_REDIS=cluster does the
// same for any suite on startCluster).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { BuildRecords, DEFAULT_KEYS } from '@buildyard/contracts';
import { startDashboard, type RunningDashboard } from '../../apps/dashboard/src/dashboard.test-util.js';
import type { BuildDetail, BuildSummary, CacheView } from '../../apps/dashboard/src/api/types.js';
import { startGates, type Gates } from './gate.js';
import { solve, vertexSummary } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
let cluster: Cluster;
let dash: RunningDashboard;
let gates: Gates;
let work: string;

before(async () => {
  gates = await startGates();
  cluster = await startCluster({ workers: 2, redisCluster: true });
  dash = await startDashboard({ redisUrl: cluster.redis.url, redisCluster: true });
  work = mkdtempSync(join(tmpdir(), 'buildyard-e2e-redis-cluster-'));
});
after(async () => {
  await gates?.stop();
  await dash?.close();
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

const gateName = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;

// Multi-stage and small: the arm64 half runs under emulation, where the example's build loops
// take minutes on a loaded machine.
const TWO_PLATFORM_DOCKERFILE = `ARG BASE
FROM \${BASE} AS base
RUN echo "base for $(uname -m)" > /base
FROM base AS client
RUN echo "built client for $(uname -m)" | tee /client
FROM base AS server
RUN echo "built server for $(uname -m)" | tee /server
FROM \${BASE}
COPY --from=client /client /usr/share/client
COPY --from=server /server /usr/share/server
COPY --from=base /base /usr/share/base
`;

test('a multi-stage build for two platforms runs through frontend, workers and dashboard on a Redis Cluster', async () => {
  const context = join(work, 'two-platforms');
  mkdirSync(context);
  writeFileSync(join(context, 'Dockerfile'), TWO_PLATFORM_DOCKERFILE);
  const buildId = gateName('two-platforms');
  const outcome = await solve(cluster, context, { buildId, platforms: ['linux/amd64', 'linux/arm64'], buildArgs: { BASE: cluster.busybox.reference } });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.result!.digest, /^sha256:[0-9a-f]{64}$/);
  const vertices = [...vertexSummary(outcome.events).entries()];
  for (const platform of ['linux/amd64', 'linux/arm64']) {
    for (const stage of ['base', 'client', 'server']) {
      const run = vertices.find(([key]) => key.startsWith(`${platform} [${stage} `) && key.includes('RUN'))?.[1];
      assert.ok(run?.completedMs && !run.error && run.workerId, `${platform} ${stage} ran on a worker`);
    }
  }
  for (const line of ['built client for x86_64', 'built server for x86_64', 'built client for aarch64', 'built server for aarch64']) assert.ok(outcome.logs.includes(line), line);

  // The record, the scheduler's state and the cache index are where every process finds them.
  const redis = cluster.openRedis();
  try {
    const record = await new BuildRecords(redis).get(buildId);
    assert.equal(record?.status, 'succeeded');
    assert.equal(record?.digest, outcome.result!.digest);
    assert.equal(await redis.hget(DEFAULT_KEYS.scheduler.build(buildId), 'state'), 'done');
    assert.ok(await redis.zcard(DEFAULT_KEYS.cache.lru('default')) > 0, 'the build filled the cache index');
  } finally {
    redis.disconnect();
  }
  // The dashboard, on its own cluster client, lists the build and shows its stages and cache.
  const { builds } = await (await dash.api('/api/builds')).json() as { builds: BuildSummary[] };
  assert.equal(builds.find((b) => b.buildId === buildId)?.status, 'succeeded');
  const detail = await (await dash.api(`/api/builds/${buildId}`)).json() as BuildDetail;
  assert.equal(detail.scheduler?.status, 'done');
  assert.deepEqual(detail.platforms.map((p) => p.platform).sort(), ['linux/amd64', 'linux/arm64']);
  const stages = detail.platforms.flatMap((p) => p.stages);
  assert.ok(stages.length === 8 && stages.every((s) => s.status === 'done'), JSON.stringify(stages.map((s) => [s.platform, s.name, s.status])));
  const cache = await (await dash.api('/api/cache')).json() as CacheView;
  assert.ok(cache.tenants.some((t) => t.tenant === 'default'), 'the cache view found the tenant (SCAN on every master)');
});

test('the master holding the scheduler\'s slot fails over in the middle of a build: the build finishes', async () => {
  const context = join(work, 'failover');
  cpSync(example, context, { recursive: true });
  const gate = gateName('failover');
  // The first stage is held at the gate while the master dies; the stages after it are queued,
  // run and complete on the promoted replica.
  writeFileSync(join(context, 'Dockerfile'), readFileSync(join(example, 'Dockerfile'), 'utf8')
    .replace(/^RUN mkdir -p \/out /m, `RUN ${gates.wait(gate)} && mkdir -p /out `));
  const building = solve(cluster, context, { platforms: ['linux/amd64'], buildArgs: { BASE: cluster.busybox.reference }, noCache: true });
  building.catch(() => undefined); // awaited below
  let killed: { port: number } | undefined;
  try {
    await gates.arrived(gate, { unless: building });
    killed = await cluster.redisCluster!.killMasterFor(DEFAULT_KEYS.scheduler.config);
  } finally {
    gates.open(gate);
  }
  const outcome = await building;
  assert.ok(killed, 'a master was killed');
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.result!.digest, /^sha256:[0-9a-f]{64}$/);
  assert.match(outcome.logs, /built client/);
  assert.match(outcome.logs, /built server/);
  const owner = await cluster.redisCluster!.masterFor(DEFAULT_KEYS.scheduler.config);
  assert.notEqual(owner.port, killed!.port, 'a replica serves the scheduler\'s slot now');
});
