// Issue 18 item 3: a one-file change to the multi-stage example (two platforms) schedules only the
// stages the change reaches. The frontend answers the others from the cache itself (the base
// and client stages), hands their results to the scheduled ones, and the image is the one a
// build done wholly by the fleet gives (another tenant's, whose cache is empty). A frontend that
// takes such a build over answers the same stages again and waits for the scheduled ones.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { credentials } from '@grpc/grpc-js';
import { ControlClient, type SolveEvent } from '@buildyard/proto';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { DEFAULT_KEYS, type RedisClient } from '@buildyard/contracts';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { bearer, solve, vertexSummary, type SolveOutcome } from './grpcClient.js';
import { startGates, type Gates } from './gate.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster whose workers run runc)';
let cluster: Cluster;
let redis: RedisClient;
let work: string;
let gates: Gates;

before(async () => {
  if (skip) return;
  gates = await startGates();
  cluster = await startCluster({ workers: 2, tenants: ['fleet'] });
  redis = cluster.openRedis();
  work = mkdtempSync(join(tmpdir(), 'buildyard-e2e-partial-cache-'));
});
// Gates first: a step still held at one fails at once instead of keeping a worker busy.
after(async () => {
  await gates?.stop();
  redis?.disconnect();
  await cluster?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// SOURCE_DATE_EPOCH with rewrite-timestamp pins every time in the images and layers: equal inputs
// give equal digests whichever cache (or none) a build started from.
const EPOCH = '1700000000';

async function build(dir: string, token?: string, request: { platforms?: string[]; buildArgs?: Record<string, string>; buildId?: string } = {}): Promise<SolveOutcome & { result: NonNullable<SolveOutcome['result']> }> {
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64', 'linux/arm64'], outputs: [{ type: 'image', attrs: { 'rewrite-timestamp': 'true' } }], ...request, buildArgs: { BASE: cluster.busybox.reference, SOURCE_DATE_EPOCH: EPOCH, ...request.buildArgs } }, { token });
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

test('a frontend taking over a partly answered build answers the same stages again, waits for the scheduled ones and gives the fleet\'s image', { skip, timeout: 300_000 }, async () => {
  const dir = join(work, 'takeover');
  mkdirSync(dir);
  const gate = (n: number) => `takeover-${n}-${randomBytes(6).toString('hex')}`;
  const [opened, held] = [gate(1), gate(2)];
  // The slow stage's RUN waits at the gate its build arg names (a new one reruns it): the
  // frontend dies while the second build's is held there.
  writeFileSync(join(dir, 'Dockerfile'), `ARG BASE
FROM \${BASE} AS base
RUN echo base > /base
FROM base AS slow
ARG GATE
RUN ${gates.wait('GATE').replace(/GATE$/, '$GATE')} && echo "$GATE" > /slow
FROM \${BASE}
COPY --from=base /base /base
COPY --from=slow /slow /slow
`);
  const platforms = ['linux/amd64'];
  gates.open(opened);
  const first = await build(dir, undefined, { platforms, buildArgs: { GATE: opened } });
  assert.equal(await stageJobs(first.result.buildId), 3);

  // The gate reaches the slow stage and the final one: the base stage is answered, the others scheduled.
  const buildId = `takeover-${randomBytes(6).toString('hex')}`;
  const orphaned = build(dir, undefined, { platforms, buildArgs: { GATE: held }, buildId });
  orphaned.catch(() => undefined); // its client loses the frontend; the build itself goes on
  await gates.arrived(held, { unless: orphaned });
  assert.equal(await stageJobs(buildId), 2, 'the slow and final stages are scheduled, the base stage is not');
  await cluster.restartFrontend();
  gates.open(held);
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  const events: SolveEvent[] = [];
  try {
    // The dead coordinator's heartbeat expires, the new frontend claims the build and finishes it.
    for await (const e of control.attach({ buildId, fromStart: true, cancelOnLeave: true }, bearer(cluster.token))) events.push(e as SolveEvent);
  } finally {
    control.close();
  }
  assert.equal(events.find((e) => e.error)?.error?.message, undefined, 'the taken-over build ends without an error');
  assert.ok(events.some((e) => /another frontend took the build over/.test(e.warning?.message ?? '')), 'the takeover is in the build\'s progress');
  const result = events.find((e) => e.result)?.result;
  assert.ok(result, 'the taken-over build ends with its result');
  assert.equal(await stageJobs(buildId), 2, 'the takeover scheduled nothing more');

  const fleet = await build(dir, cluster.tokens.fleet, { platforms, buildArgs: { GATE: held } });
  assert.equal(await stageJobs(fleet.result.buildId), 3, 'another tenant\'s build (an empty cache) is the fleet\'s alone');
  assert.equal(result.digest, fleet.result.digest, 'the taken-over build gives the image the fleet builds');
});
