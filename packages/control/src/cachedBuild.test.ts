// A build whose every step is cached is answered by the frontend (cachedBuild.ts), on a real
// cluster (Redis, registry, frontend and a worker as processes): the scheduler never hears of
// it, every step shows CACHED under the names the worker gave it, the image has the first
// build's digest and nothing is pushed. A change schedules only the stages it reaches, the
// others answered by the frontend and handed to them, for the image a fleet builds. And no
// false hit: a changed context file, build arg or base image (its tag moved) rebuilds what it
// changes, and the result is the new image.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { RegistryClient } from '@buildyard/oci';
import type { SolveEvent, SolveRequest } from '@buildyard/proto';
import { startCluster, startRegistry, startRegistryProxy, type Cluster, type RegistryProxy, type RegistryService } from '@buildyard/testkit';
import { solve, type SolveOutcome } from '../../../test/e2e/grpcClient.js';

const skip = process.getuid?.() === 0 ? false : 'needs root (a cluster whose worker runs runc)';
let cluster: Cluster;
let proxy: RegistryProxy;
let upstream: RegistryService;
let redis: Redis;
let work: string;

before(async () => {
  if (skip) return;
  // Pushes go through a proxy that records every request: "nothing pushed" is counted there.
  upstream = await startRegistry();
  proxy = await startRegistryProxy({ upstream: upstream.host, mode: 'plain' });
  cluster = await startCluster({ workers: 1, tenants: ['fresh'], registry: upstream, trustRegistries: [proxy.host] });
  redis = new Redis(cluster.redis.url);
  work = await mkdtemp(join(tmpdir(), 'buildyard-cached-build-'));
});
after(async () => {
  redis?.disconnect();
  await proxy?.stop();
  await cluster?.stop();
  await upstream?.stop();
  if (work) await rm(work, { recursive: true, force: true });
});

/** A fresh context: a salt (every test starts cold, whatever ran before it) and one source file. */
async function context(dockerfile: string): Promise<string> {
  const dir = await mkdtemp(join(work, 'ctx-'));
  await writeFile(join(dir, 'Dockerfile'), dockerfile);
  await writeFile(join(dir, 'salt'), randomBytes(8).toString('hex'));
  await writeFile(join(dir, 'app.txt'), 'version 1\n');
  return dir;
}

const MULTI_STAGE = `ARG BASE
FROM \${BASE} AS base
WORKDIR /src
COPY salt app.txt ./
RUN cat app.txt > /built
FROM base AS other
ARG MSG=one
RUN echo "$MSG" > /msg
FROM \${BASE}
COPY --from=base /built /built
COPY --from=other /msg /msg
`;

async function build(dir: string, request: Partial<SolveRequest>, token?: string): Promise<SolveOutcome & { result: NonNullable<SolveEvent['result']> }> {
  const outcome = await solve(cluster, dir, request, { token });
  assert.equal(outcome.error, undefined, `build failed: ${outcome.error?.message}`);
  assert.ok(outcome.result, 'the build ended without a result');
  return outcome as SolveOutcome & { result: NonNullable<SolveEvent['result']> };
}

/** Whether the scheduler ever recorded this build (its stages were submitted). */
async function scheduled(buildId: string): Promise<boolean> {
  return (await redis.exists(DEFAULT_KEYS.scheduler.build(buildId))) === 1;
}

/** How many stage jobs the scheduler was given for this build. */
async function stageJobs(buildId: string): Promise<number> {
  return Number(await redis.hget(DEFAULT_KEYS.scheduler.build(buildId), 'total') ?? 0);
}

/** `platform name` of every step a worker reported, and whether each was answered from the cache. */
function workerSteps(events: SolveEvent[]): Map<string, boolean> {
  const steps = new Map<string, boolean>();
  for (const e of events) if (e.vertex?.workerId) steps.set(`${e.vertex.platform} ${e.vertex.name}`, (steps.get(`${e.vertex.platform} ${e.vertex.name}`) ?? true) && e.vertex.cached);
  return steps;
}

/** `platform name` -> cached, of every numbered Dockerfile step (all platforms), whoever reported it. */
function steps(events: SolveEvent[]): Map<string, boolean> {
  const out = new Map<string, boolean>();
  for (const e of events) {
    const v = e.vertex;
    if (!v || v.step === 0 || / FROM /.test(v.name)) continue;
    const key = `${v.platform} ${v.name}`;
    out.set(key, (out.get(key) ?? false) || v.cached);
  }
  return out;
}

test('a no-change rebuild of every stage and platform submits no stage, shows every step CACHED, pushes nothing and gives the same digest', { skip }, async () => {
  const dir = await context(MULTI_STAGE);
  const request = {
    platforms: ['linux/amd64', 'linux/arm64'], buildArgs: { BASE: cluster.busybox.reference },
    outputs: [{ type: 'image', attrs: { name: `${proxy.host}/cached/multi:1`, push: 'true' } }],
  };
  const first = await build(dir, request);
  assert.ok(await scheduled(first.result.buildId), 'the first build must go through the scheduler (or this test proves nothing)');
  const ran = workerSteps(first.events);
  assert.equal(ran.size, 2 * 6, `a worker reports 6 steps per platform: ${[...ran.keys()].join('; ')}`);
  assert.ok([...ran.values()].some((cached) => !cached), 'the first build runs its steps');

  const pushesBefore = proxy.requests.length;
  const again = await build(dir, request);
  const pushRequests = proxy.requests.slice(pushesBefore);
  assert.equal(await scheduled(again.result.buildId), false, 'the no-change rebuild reached the scheduler');
  assert.equal(workerSteps(again.events).size, 0, 'a worker reported steps of the no-change rebuild');
  const shown = steps(again.events);
  assert.deepEqual([...shown.keys()].sort(), [...ran.keys()].sort(), 'the rebuild shows the same steps under the same names');
  for (const [name, cached] of shown) assert.ok(cached, `${name} is not shown CACHED`);
  assert.equal(again.result.verticesCached, again.result.verticesTotal);
  assert.equal(again.result.verticesTotal, 12);
  assert.equal(again.result.digest, first.result.digest, 'a no-change rebuild pushes the same image');
  assert.deepEqual(pushRequests.filter((r) => r.method !== 'GET' && r.method !== 'HEAD'), [], 'the no-change rebuild wrote to the registry');
  assert.deepEqual(again.result.pushed, first.result.pushed);
});

test('a change reaching some stages schedules only those; the frontend answers the others, shows them CACHED and the image is the one a fleet builds', { skip }, async () => {
  const dir = await context(MULTI_STAGE);
  // SOURCE_DATE_EPOCH with rewrite-timestamp pins every time in the image and layers, so a fresh
  // build of the same inputs by another tenant (an empty cache: every stage on the fleet) has the same digest.
  const request = (msg: string) => ({ platforms: ['linux/amd64', 'linux/arm64'], buildArgs: { BASE: cluster.busybox.reference, MSG: msg, SOURCE_DATE_EPOCH: '1700000000' }, outputs: [{ type: 'image', attrs: { 'rewrite-timestamp': 'true' } }] });
  const first = await build(dir, request('one'));
  assert.equal(await stageJobs(first.result.buildId), 6, 'the cold build schedules its 3 stages on 2 platforms');
  const ran = workerSteps(first.events);

  // The build arg reaches the other stage and the final one, not the base stage.
  const edited = await build(dir, request('two'));
  assert.equal(await stageJobs(edited.result.buildId), 4, 'only the other and final stages are scheduled, on each platform');
  const onWorkers = [...workerSteps(edited.events).keys()];
  assert.ok(onWorkers.length > 0 && onWorkers.every((name) => /\[(other|stage-2) /.test(name)), `workers ran the changed stages only: ${onWorkers.join('; ')}`);
  const shown = steps(edited.events);
  assert.deepEqual([...shown.keys()].sort(), [...ran.keys()].sort(), 'the rebuild shows the same steps under the same names');
  for (const [name, cached] of shown) assert.equal(cached, !/\[(other 3\/3|stage-2 3\/3)\]/.test(name), `${name}: cached or run as the change requires`);
  assert.equal(edited.result.verticesTotal, 2 * 6);
  assert.equal(edited.result.verticesCached, 2 * 4);

  const fresh = await build(dir, request('two'), cluster.tokens.fresh);
  assert.equal(await stageJobs(fresh.result.buildId), 6, 'the other tenant\'s build is the fleet\'s alone');
  assert.equal(edited.result.digest, fresh.result.digest, 'the partly answered build gives the image a fleet builds');
});

test('no false hit: a changed context file, build arg or base image rebuilds what it changes and gives the new image', { skip }, async () => {
  const registry = new RegistryClient({ insecureHosts: [cluster.registry.host], dockerConfig: false });
  // The base is an image of our own under a tag that moves later.
  const baseDir = await context('ARG BASE\nFROM ${BASE}\nARG V\nENV BASE_VERSION=$V\n');
  const baseTag = `${cluster.registry.host}/cached/base:${randomBytes(4).toString('hex')}`;
  const pushBase = (v: string) => build(baseDir, { buildArgs: { BASE: cluster.busybox.reference, V: v }, outputs: [{ type: 'image', attrs: { name: baseTag, push: 'true' } }] });
  await pushBase('v1');
  const dir = await context(MULTI_STAGE);
  const image = `${cluster.registry.host}/cached/changes:1`;
  const request = (args: Record<string, string> = {}) => ({ buildArgs: { BASE: baseTag, ...args }, outputs: [{ type: 'image', attrs: { name: image, push: 'true' } }] });
  const envOf = async () => (await registry.resolve(image, 'linux/amd64')).config.config?.Env ?? [];
  const executed = (o: SolveOutcome) => [...steps(o.events)].filter(([, cached]) => !cached).map(([name]) => name.replace(/^linux\/amd64 /, '')).sort();

  const first = await build(dir, request());
  assert.ok((await envOf()).includes('BASE_VERSION=v1'));
  const cachedAgain = await build(dir, request());
  assert.equal(await scheduled(cachedAgain.result.buildId), false, 'an unchanged rebuild is answered by the frontend');
  assert.equal(cachedAgain.result.digest, first.result.digest);

  // A context file: the COPY that reads it and everything after it run again.
  await writeFile(join(dir, 'app.txt'), 'version 2\n');
  const edited = await build(dir, request());
  assert.ok(await scheduled(edited.result.buildId));
  assert.deepEqual(executed(edited), ['[base 3/4] COPY salt app.txt ./', '[base 4/4] RUN cat app.txt > /built', '[other 3/3] RUN echo "$MSG" > /msg', '[stage-2 2/3] COPY --from=base /built /built', '[stage-2 3/3] COPY --from=other /msg /msg'].sort());
  assert.notEqual(edited.result.digest, first.result.digest);
  // Unchanged again: the frontend answers with the edited build's image, not the first one's.
  const editedAgain = await build(dir, request());
  assert.equal(await scheduled(editedAgain.result.buildId), false);
  assert.equal(editedAgain.result.digest, edited.result.digest);

  // A build arg: the RUN that sees it and the copy of its output run again.
  const argChanged = await build(dir, request({ MSG: 'two' }));
  assert.ok(await scheduled(argChanged.result.buildId));
  assert.deepEqual(executed(argChanged), ['[other 3/3] RUN echo "$MSG" > /msg', '[stage-2 3/3] COPY --from=other /msg /msg'].sort());
  assert.notEqual(argChanged.result.digest, edited.result.digest);

  // The base image's tag moved: every step runs again on the new base, whose config the image carries.
  await pushBase('v2');
  const moved = await build(dir, request({ MSG: 'two' }));
  assert.ok(await scheduled(moved.result.buildId), 'a moved base image was answered from the old base\'s cache');
  assert.equal(executed(moved).length, 6, `every step runs on the new base: ${executed(moved).join('; ')}`);
  assert.notEqual(moved.result.digest, argChanged.result.digest);
  assert.ok((await envOf()).includes('BASE_VERSION=v2'), 'the image is built on the moved base');

  // Back to the first inputs (the base stays v2): a hit only for what the cache really holds.
  await writeFile(join(dir, 'app.txt'), 'version 1\n');
  const reverted = await build(dir, request());
  assert.ok(await scheduled(reverted.result.buildId), 'the first build\'s records are for base v1: no hit on base v2');
});
