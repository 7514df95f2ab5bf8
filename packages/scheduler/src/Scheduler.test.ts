// Integration tests: real Redis (testkit), real BullMQ, real StageConsumers (one in a child
// process for the SIGKILL case). Timing knobs are shrunk so every test runs in seconds.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Queue } from 'bullmq';
import { startRedis, startRedisCluster, until, type RedisClusterService, type RedisService } from '@buildyard/testkit';
import { connectRedis, type RedisTarget } from './connectRedis.js';
import { schedulerKeys } from '@buildyard/contracts';
import { StageStore } from './StageStore.js';
import { Dispatcher } from './Dispatcher.js';
import { WorkerRegistry } from './WorkerRegistry.js';
import { relay } from './relay.test-util.js';
import { NoWorkerError, Scheduler, StageConsumer, platformQueueName, stageRef, workerQueueName, type LostWakeUp, type StageJob, type StageSpec } from './index.js';

let redis: RedisService;
let prefixSeq = 0;
// BUILDYARD_TEST_REDIS_CLUSTER=1 (Scheduler.cluster.test.ts) runs the suite on a 3-master Redis Cluster.
const onCluster = process.env.BUILDYARD_TEST_REDIS_CLUSTER === '1';
let redisCluster: RedisClusterService | undefined;
let target: RedisTarget;
before(async () => {
  if (onCluster) {
    redisCluster = await startRedisCluster();
    target = { url: redisCluster.url, cluster: true };
  } else {
    redis = await startRedis();
    target = redis.url;
  }
});
after(async () => { await redis?.stop(); await redisCluster?.stop(); });
/** A connection of the test's own (a cluster client on the cluster). */
const probeRedis = () => connectRedis(target);

// Short polls, but 5 s before a silent worker counts as dead: with 1 s, a CPU-starved but live
// consumer was taken for dead (swept from the registry, losing its drain flag, or leaving a
// platform with no worker at submit, or its job run twice).
const FAST = { heartbeatMs: 200, heartbeatTtlMs: 5000, lockDurationMs: 5000, stalledIntervalMs: 300, pollMs: 200 };
const AMD = 'linux/amd64';

interface Run { worker: string; buildId: string; stageId: string; start: number; end: number; emulated: boolean; aborted: boolean; job: StageJob }

/** A scheduler plus consumers in a private key prefix; everything is closed when the test ends. */
function setup(t: TestContext, opts: { tenantLimit?: number; redis?: RedisTarget; prefix?: string; tickMs?: number } = {}) {
  const prefix = opts.prefix ?? `t${process.pid}-${++prefixSeq}`;
  const redisTarget = opts.redis ?? target;
  const scheduler = new Scheduler(redisTarget, { prefix, tickMs: opts.tickMs ?? 200, heartbeatTtlMs: FAST.heartbeatTtlMs, tenantLimit: opts.tenantLimit });
  const consumers: StageConsumer[] = [];
  const runs: Run[] = [];
  const errors: Error[] = [];
  t.after(async () => {
    await Promise.all(consumers.map((c) => c.close()));
    await scheduler.close();
  });
  type Behaviour = (job: StageJob, signal: AbortSignal, worker: string) => Promise<unknown>;
  async function consumer(id: string, w: { native?: string[]; emulated?: string[]; capacity?: number; pollMs?: number; onLostWakeUp?: (d: LostWakeUp) => void; redis?: RedisTarget; lockDurationMs?: number }, behaviour?: Behaviour) {
    const c = new StageConsumer({
      redis: w.redis ?? redisTarget, prefix, ...FAST, pollMs: w.pollMs ?? FAST.pollMs, lockDurationMs: w.lockDurationMs ?? FAST.lockDurationMs, onError: (e) => errors.push(e), onLostWakeUp: w.onLostWakeUp,
      worker: { id, nativePlatforms: w.native ?? [AMD], emulatedPlatforms: w.emulated ?? [], capacity: w.capacity ?? 1 },
      handler: async (job, signal) => {
        const run: Run = { worker: id, buildId: job.buildId, stageId: job.stageId, start: performance.now(), end: 0, emulated: job.emulated, aborted: false, job };
        runs.push(run);
        try {
          return behaviour ? await behaviour(job, signal, id) : { stage: job.stageId, by: id };
        } finally {
          run.end = performance.now();
          run.aborted = signal.aborted;
        }
      },
    });
    consumers.push(c);
    await c.start();
    return c;
  }
  return { prefix, scheduler, consumer, runs, errors };
}

const stage = (id: string, dependsOn: string[] = [], payload: unknown = { id }, cacheKey = ''): StageSpec => ({ id, dependsOn, cacheKey, payload });

/** A promise with its resolve function: a handler holds on it until the test lets it go. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => { open = r; });
  return { opened, open };
}

/** Bounds a hang only: far above what a build of a few stages takes on a loaded machine. */
function timeout<T>(p: Promise<T>, ms = 60_000, what = 'build'): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`${what} did not finish in ${ms} ms`)), ms); });
  return Promise.race([p, expired]).finally(() => clearTimeout(timer));
}

test('a diamond runs its independent stages at once on different workers, in dependency order', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  const started = new Set<string>();
  const behaviour = async (job: StageJob, _s: AbortSignal, by: string) => {
    started.add(job.stageId);
    // a and b each wait for the other to start: they only both finish if they overlap.
    if (job.stageId === 'a' || job.stageId === 'b') await until('a and b to overlap', () => started.has('a') && started.has('b'));
    return { stage: job.stageId, by, inputs: job.inputs };
  };
  await consumer('w1', {}, behaviour);
  await consumer('w2', {}, behaviour);
  await scheduler.submitBuild({ buildId: 'd1', tenant: 't1', priority: 10, traceContext: { traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01' },
    platforms: [{ platform: AMD, stages: [stage('base'), stage('a', ['base']), stage('b', ['base']), stage('final', ['a', 'b'])] }] });
  const state = await timeout(scheduler.waitForBuild('d1'));
  assert.equal(state.status, 'done', state.error);
  const by = (id: string) => runs.find((r) => r.stageId === id)!;
  const [base, a, b, final] = ['base', 'a', 'b', 'final'].map(by);
  assert.notEqual(a.worker, b.worker, 'a and b ran on different workers');
  assert.ok(a.start < b.end && b.start < a.end, 'a and b overlapped');
  assert.ok(base.end <= a.start && base.end <= b.start, 'base finished before a and b started');
  assert.ok(final.start >= a.end && final.start >= b.end, 'final started after a and b');
  assert.deepEqual(Object.keys(final.job.inputs).sort(), ['a', 'b']);
  assert.deepEqual((final.job.inputs.a as { by: string }).by, a.worker);
  assert.equal(final.job.traceContext.traceparent, '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01');
  assert.equal(runs.length, 4);
  const finalState = state.stages.find((s) => s.stageId === 'final')!;
  assert.equal(finalState.worker, final.worker);
  assert.equal(finalState.emulated, false);
  assert.deepEqual(finalState.result, { stage: 'final', by: final.worker, inputs: final.job.inputs });
});

test('a chain stays on the worker that holds its inputs', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  await consumer('w1', {});
  await consumer('w2', {});
  await scheduler.submitBuild({ buildId: 'c1', tenant: 't1', priority: 0,
    platforms: [{ platform: AMD, stages: [stage('s1'), stage('s2', ['s1']), stage('s3', ['s2']), stage('s4', ['s3'])] }] });
  const state = await timeout(scheduler.waitForBuild('c1'));
  assert.equal(state.status, 'done');
  assert.equal(new Set(runs.map((r) => r.worker)).size, 1, `all on one worker: ${runs.map((r) => r.worker).join(',')}`);
  assert.ok(state.stages.slice(1).every((s) => s.queue?.startsWith('stages-w-')), 'dependent stages went to the worker queue');
  // the event stream replays from the start and ends with build-done
  const events = [];
  for await (const ev of scheduler.events('c1')) events.push(ev);
  assert.deepEqual(events.filter((e) => e.type !== 'build-done').map((e) => `${e.type}:${'stageId' in e ? e.stageId : ''}`), [
    'stage-queued:s1', 'stage-started:s1', 'stage-completed:s1', 'stage-queued:s2', 'stage-started:s2', 'stage-completed:s2',
    'stage-queued:s3', 'stage-started:s3', 'stage-completed:s3', 'stage-queued:s4', 'stage-started:s4', 'stage-completed:s4']);
  assert.equal(events.at(-1)?.type, 'build-done');
  const started = events.find((e) => e.type === 'stage-started');
  assert.ok(started?.type === 'stage-started' && started.worker === runs[0].worker && started.emulated === false && started.attempt === 1);
  const completed = events.find((e) => e.type === 'stage-completed');
  assert.deepEqual(completed?.type === 'stage-completed' && completed.result, { stage: 's1', by: runs[0].worker });
  await assert.rejects(scheduler.waitForBuild('nope'), /build nope not found; check the build id/);
});

test('a platform without workers fails the build at once', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  await consumer('w1', {});
  await assert.rejects(scheduler.submitBuild({ buildId: 'x1', tenant: 't1', priority: 0,
    platforms: [{ platform: AMD, stages: [stage('a')] }, { platform: 'linux/s390x', stages: [stage('a')] }] }),
  (err: unknown) => err instanceof NoWorkerError && err.message === 'no worker can build linux/s390x');
  const state = await scheduler.getBuild('x1');
  assert.equal(state?.status, 'failed');
  assert.equal(state?.error, 'no worker can build linux/s390x');
  // The marker: a later build on the same queue and worker (capacity 1) runs after anything
  // of x1's that had been queued, so once it is done nothing of x1 can still start.
  await scheduler.submitBuild({ buildId: 'x1-marker', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('m')] }] });
  assert.equal((await timeout(scheduler.waitForBuild('x1-marker'))).status, 'done');
  assert.deepEqual(runs.map((r) => r.buildId), ['x1-marker'], 'nothing of the failed build ran');
});

test('native workers are preferred; emulation is used when no native worker is alive', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  const native = await consumer('arm', { native: ['linux/arm64'], capacity: 1 });
  await consumer('emu', { native: [AMD], emulated: ['linux/arm64'], capacity: 2 });
  await scheduler.submitBuild({ buildId: 'n1', tenant: 't1', priority: 0,
    platforms: [{ platform: 'linux/arm64', stages: [stage('a'), stage('b'), stage('c')] }] });
  assert.equal((await timeout(scheduler.waitForBuild('n1'))).status, 'done');
  assert.deepEqual(runs.map((r) => [r.worker, r.emulated]), [['arm', false], ['arm', false], ['arm', false]]);
  await native.close();
  await scheduler.submitBuild({ buildId: 'n2', tenant: 't1', priority: 0, platforms: [{ platform: 'linux/arm64', stages: [stage('a')] }] });
  const state = await timeout(scheduler.waitForBuild('n2'));
  assert.equal(state.status, 'done');
  assert.deepEqual([state.stages[0].worker, state.stages[0].emulated, runs[3].emulated], ['emu', true, true]);
});

test('a stage runs on its runPlatform: an arm64 build\'s $BUILDPLATFORM stages go to native amd64 workers, never to arm64 emulation (#19)', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  await consumer('emu', { native: ['linux/s390x'], emulated: ['linux/arm64'], capacity: 2 });
  await consumer('amd', { native: [AMD], capacity: 2 });
  const onAmd = (id: string, deps: string[] = []): StageSpec => ({ ...stage(id, deps), runPlatform: AMD });
  await scheduler.submitBuild({ buildId: 'rp1', tenant: 't1', priority: 0,
    platforms: [{ platform: 'linux/arm64', stages: [onAmd('build1'), onAmd('build2'), onAmd('tools', ['build1', 'build2']), stage('final', ['tools'])] }] });
  const state = await timeout(scheduler.waitForBuild('rp1'));
  assert.equal(state.status, 'done');
  const by = new Map(state.stages.map((s) => [s.stageId, s]));
  for (const id of ['build1', 'build2', 'tools']) {
    assert.deepEqual([by.get(id)?.platform, by.get(id)?.runPlatform, by.get(id)?.worker, by.get(id)?.emulated], ['linux/arm64', AMD, 'amd', false], id);
  }
  // The stage whose platform is the target's still needs the arm64 (here emulating) worker.
  assert.deepEqual([by.get('final')?.runPlatform, by.get('final')?.worker, by.get('final')?.emulated], ['linux/arm64', 'emu', true]);
  assert.deepEqual(runs.filter((r) => r.worker === 'emu').map((r) => r.stageId), ['final']);
  // Identity is unchanged: the job and the stage ref carry the target platform.
  assert.ok(runs.every((r) => r.job.platform === 'linux/arm64'));
  assert.deepEqual(await scheduler.stagePlacement(stageRef('rp1', 'linux/arm64', 'tools')), { worker: 'amd', emulated: false });
});

test('an arm64 build whose stages all run on amd64 needs no arm64 worker; one that runs a stage on arm64 does', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  await consumer('amd', { native: [AMD], capacity: 1 });
  await scheduler.submitBuild({ buildId: 'rp2', tenant: 't1', priority: 0,
    platforms: [{ platform: 'linux/arm64', stages: [{ ...stage('a'), runPlatform: AMD }, { ...stage('b', ['a']), runPlatform: AMD }] }] });
  assert.equal((await timeout(scheduler.waitForBuild('rp2'))).status, 'done');
  assert.deepEqual(runs.map((r) => [r.stageId, r.worker, r.emulated]), [['a', 'amd', false], ['b', 'amd', false]]);
  await assert.rejects(scheduler.submitBuild({ buildId: 'rp3', tenant: 't1', priority: 0,
    platforms: [{ platform: 'linux/arm64', stages: [{ ...stage('a'), runPlatform: AMD }, stage('b', ['a'])] }] }),
  (err: unknown) => err instanceof NoWorkerError && err.platform === 'linux/arm64');
  assert.equal((await scheduler.getBuild('rp3'))?.status, 'failed');
});

test('a draining worker gets no new stages', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  await consumer('w1', { capacity: 2 });
  await consumer('w2', { capacity: 1 });
  await scheduler.registry.drain('w1');
  assert.equal((await scheduler.registry.list()).find((w) => w.id === 'w1')?.draining, true);
  await scheduler.submitBuild({ buildId: 'dr1', tenant: 't1', priority: 0,
    platforms: [{ platform: AMD, stages: [stage('a'), stage('b'), stage('c'), stage('d')] }] });
  assert.equal((await timeout(scheduler.waitForBuild('dr1'))).status, 'done');
  assert.deepEqual(runs.map((r) => r.worker), ['w2', 'w2', 'w2', 'w2']);
});

test('a draining worker swept as dead re-registers still draining', async (t) => {
  const { scheduler, consumer } = setup(t);
  await consumer('w1', {});
  await scheduler.registry.drain('w1');
  // Two heartbeats begun after the drain: the worker has read the flag from the first one's reply.
  const beatAfter = async (t0: number) => { await until('a heartbeat', async () => ((await scheduler.registry.get('w1'))?.lastHeartbeat ?? 0) > t0, 15_000); return Date.now(); };
  await beatAfter(await beatAfter(Date.now()));
  // The sweep of a worker whose heartbeat expired removes it; its next heartbeat registers again.
  await scheduler.registry.remove('w1');
  await until('the worker to register again', async () => (await scheduler.registry.get('w1')) !== null, 15_000);
  assert.equal((await scheduler.registry.get('w1'))?.draining, true);
});

test('identical stages of concurrent builds run once', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  // The shared stage runs until both builds are submitted, so the second finds it in flight.
  const submitted = gate();
  const slow = async (job: StageJob, _s: AbortSignal, by: string) => { await submitted.opened; return { key: job.cacheKey, by }; };
  await consumer('w1', {}, slow);
  await consumer('w2', {}, slow);
  const plan = (id: string) => ({ buildId: id, tenant: 't1', priority: 0,
    platforms: [{ platform: AMD, stages: [stage('x', [], { from: id }, 'ck-shared'), stage('y', ['x'], { from: id }, `ck-${id}`)] }] });
  await Promise.all([scheduler.submitBuild(plan('dd1')), scheduler.submitBuild(plan('dd2'))]);
  submitted.open();
  const [s1, s2] = await timeout(Promise.all([scheduler.waitForBuild('dd1'), scheduler.waitForBuild('dd2')]));
  assert.equal(s1.status, 'done');
  assert.equal(s2.status, 'done');
  assert.equal(runs.filter((r) => r.job.cacheKey === 'ck-shared').length, 1, 'the shared stage ran once');
  assert.equal(runs.length, 3);
  const x1 = s1.stages.find((s) => s.stageId === 'x')!;
  const x2 = s2.stages.find((s) => s.stageId === 'x')!;
  assert.deepEqual(x1.result, x2.result);
  assert.equal([x1, x2].filter((s) => s.dedupedFrom).length, 1, 'exactly one build reused the other\'s result');
  // the follower's dependent got the shared result as its input
  assert.deepEqual(runs.filter((r) => r.stageId === 'y').map((r) => r.job.inputs.x), [x1.result, x1.result]);
});

test('a failed dedupe leader fails its followers instead of leaving them waiting', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  // The leader fails only once the follower has been submitted and attached to it.
  const submitted = gate();
  await consumer('w1', {}, async () => { await submitted.opened; throw new Error('RUN make: exit code 2'); });
  const plan = (id: string) => ({ buildId: id, tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('x', [], {}, 'ck-bad')] }] });
  await scheduler.submitBuild(plan('f1'));
  await scheduler.submitBuild(plan('f2'));
  submitted.open();
  const states = await timeout(Promise.all([scheduler.waitForBuild('f1'), scheduler.waitForBuild('f2')]));
  assert.deepEqual(states.map((s) => s.status), ['failed', 'failed']);
  assert.equal(runs.length, 1);
  for (const s of states) assert.match(s.error ?? '', /^stage x \(linux\/amd64\) failed: RUN make: exit code 2$/);
});

test('cancel aborts the running handler and removes queued jobs', async (t) => {
  const { scheduler, consumer, runs, prefix } = setup(t);
  let aborted = false;
  await consumer('w1', { capacity: 1 }, async (job, signal) => {
    if (job.buildId !== 'k1') return 'marker';
    // Ends only through the abort: the handler finishing proves the cancel reached it.
    await new Promise<void>((resolve) => {
      if (signal.aborted) { aborted = true; resolve(); }
      signal.addEventListener('abort', () => { aborted = true; resolve(); });
    });
    throw new Error('aborted');
  });
  await scheduler.submitBuild({ buildId: 'k1', tenant: 't1', priority: 0,
    platforms: [{ platform: AMD, stages: [stage('a'), stage('b'), stage('c', ['a'])] }] });
  await until('a stage to start', () => runs.length === 1);
  const qConn = probeRedis();
  t.after(() => qConn.quit());
  const q = new Queue(platformQueueName(AMD, 'native'), { connection: qConn, prefix: schedulerKeys(prefix).bullPrefix });
  t.after(() => q.close());
  assert.equal(await q.getJobCountByTypes('wait', 'prioritized'), 1, 'the other stage is queued');
  assert.equal(await scheduler.cancelBuild('k1'), true);
  await until('the handler to see the abort', () => aborted);
  assert.equal(await q.getJobCountByTypes('wait', 'prioritized'), 0, 'the queued job was removed');
  const state = await timeout(scheduler.waitForBuild('k1'));
  assert.equal(state.status, 'cancelled');
  // The marker: w1 (capacity 1) takes a later build's stage only after anything of k1's still
  // queued ahead of it, so once that build is done no other stage of k1 can start.
  await scheduler.submitBuild({ buildId: 'k1-marker', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('m')] }] });
  assert.equal((await timeout(scheduler.waitForBuild('k1-marker'))).status, 'done');
  assert.deepEqual(runs.map((r) => r.buildId), ['k1', 'k1-marker'], 'no other stage of k1 started');
  assert.equal(runs[0].aborted, true);
  assert.ok(state.stages.every((s) => s.status === 'cancelled'));
  assert.equal(await scheduler.cancelBuild('k1'), false, 'a finished build cannot be cancelled again');
  const probe = probeRedis();
  t.after(() => probe.quit());
  const ttl = await probe.ttl(schedulerKeys(prefix).buildEvents('k1'));
  assert.ok(ttl > 86_000 && ttl <= 86_400, `finished build expires (ttl ${ttl})`);
});

test('a failing handler fails the build without a retry', async (t) => {
  const { scheduler, consumer, runs, prefix } = setup(t);
  await consumer('w1', {}, async (job) => { if (job.stageId === 'bad') throw new Error('RUN false: exit code 1'); return 'ok'; });
  await consumer('w2', {}, async (job) => { if (job.stageId === 'bad') throw new Error('RUN false: exit code 1'); return 'ok'; });
  await scheduler.submitBuild({ buildId: 'e1', tenant: 't1', priority: 0,
    platforms: [{ platform: AMD, stages: [stage('bad'), stage('after', ['bad'])] }] });
  const state = await timeout(scheduler.waitForBuild('e1'));
  assert.equal(state.status, 'failed');
  assert.equal(state.error, 'stage bad (linux/amd64) failed: RUN false: exit code 1');
  // BullMQ never runs a job again once it sits in the failed set, and nothing waits to retry it.
  const qConn = probeRedis();
  t.after(() => qConn.quit());
  const q = new Queue(platformQueueName(AMD, 'native'), { connection: qConn, prefix: schedulerKeys(prefix).bullPrefix });
  t.after(() => q.close());
  await until('the failed job to reach the failed set', async () => (await q.getJobCountByTypes('failed')) === 1);
  assert.deepEqual(await q.getJobCounts('wait', 'prioritized', 'delayed', 'active'), { wait: 0, prioritized: 0, delayed: 0, active: 0 });
  // The marker: a later build on the same queue finishes; a retry queued before it would have run.
  await scheduler.submitBuild({ buildId: 'e1-marker', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('m')] }] });
  assert.equal((await timeout(scheduler.waitForBuild('e1-marker'))).status, 'done');
  assert.equal(runs.filter((r) => r.stageId === 'bad').length, 1, 'not retried');
  assert.equal(runs.filter((r) => r.stageId === 'after').length, 0);
  assert.deepEqual(state.stages.map((s) => [s.stageId, s.status, s.attempts]), [['bad', 'failed', 1], ['after', 'cancelled', 0]]);
});

test('a tenant over its limit is held back while another tenant proceeds', async (t) => {
  const { scheduler, consumer, runs } = setup(t, { tenantLimit: 2 });
  // A's first two stages hold until both run and B's stage has started: they overlap, and B
  // has to get past the eight A stages queued ahead of it while A is at its limit.
  const bStarted = gate();
  const firstTwo = gate();
  let aStarted = 0;
  const work = async (job: StageJob) => {
    if (job.buildId === 'tb') { bStarted.open(); return job.stageId; }
    if (++aStarted > 2) return job.stageId;
    if (aStarted === 2) firstTwo.open();
    await Promise.all([bStarted.opened, firstTwo.opened]);
    return job.stageId;
  };
  await consumer('w1', { capacity: 2 }, work);
  await consumer('w2', { capacity: 2 }, work);
  const many = Array.from({ length: 10 }, (_, i) => stage(`a${i}`));
  await scheduler.submitBuild({ buildId: 'ta', tenant: 'A', priority: 0, platforms: [{ platform: AMD, stages: many }] });
  await scheduler.submitBuild({ buildId: 'tb', tenant: 'B', priority: 0, platforms: [{ platform: AMD, stages: [stage('b0')] }] });
  const [a, b] = await timeout(Promise.all([scheduler.waitForBuild('ta'), scheduler.waitForBuild('tb')]));
  assert.equal(a.status, 'done');
  assert.equal(b.status, 'done');
  const bRun = runs.find((r) => r.buildId === 'tb')!;
  const aRuns = runs.filter((r) => r.buildId === 'ta');
  assert.ok(bRun.start < Math.max(...aRuns.map((r) => r.end)), 'B started before A finished');
  // Without the limit all ten of A's stages would be queued ahead of B's.
  const aBefore = aRuns.filter((r) => r.start < bRun.start).length;
  assert.ok(aBefore <= 2, `B started after ${aBefore} of A's stages`);
  // never more than 2 of A's stages at the same time, although 4 slots exist
  // at most 2 of A's stages ran at any instant, although 4 slots existed
  const edges = aRuns.flatMap((r) => [[r.start, 1], [r.end, -1]] as const).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0;
  let peak = 0;
  for (const [, d] of edges) peak = Math.max(peak, (now += d));
  assert.equal(peak, 2, `peak of ${peak} concurrent stages of tenant A`);
});

test('idle consumers are woken by placements, not by polling', async (t) => {
  const { scheduler, consumer, runs, errors } = setup(t);
  // A poll far beyond the test's timeout: every stage below starts only because a wake-up
  // reached an idle consumer (on the platform queue, or on a worker's own queue for the chain).
  const never = 3_600_000;
  await consumer('w1', { capacity: 2, pollMs: never });
  await consumer('w2', { capacity: 1, pollMs: never });
  await consumer('w3', { capacity: 1, pollMs: never });
  for (let round = 0; round < 3; round++) {
    await scheduler.submitBuild({ buildId: `wk${round}`, tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [
      stage('a'), stage('b'), stage('c'), stage('d'), stage('e'), stage('c1', ['a']), stage('c2', ['c1']), stage('c3', ['c2'])] }] });
    assert.equal((await timeout(scheduler.waitForBuild(`wk${round}`), 30_000)).status, 'done');
  }
  assert.equal(runs.length, 24);
  assert.deepEqual(errors, []);
});

test('a chain on a fleet with idle slots looks at its queues about once per stage: a freed slot or a job just taken does not look again while idle', { skip: onCluster && 'counts one node\'s commands' }, async (t) => {
  const { scheduler, consumer, errors } = setup(t);
  const never = 3_600_000;
  await consumer('w1', { capacity: 2, pollMs: never });
  await consumer('w2', { capacity: 2, pollMs: never });
  const probe = probeRedis();
  t.after(() => probe.quit());
  // Every look at a queue is one BullMQ moveToActive, which runs one RPOPLPUSH (it fetches only
  // there: jobs are completed without fetching the next).
  const looks = async () => Number(/cmdstat_rpoplpush:calls=(\d+)/.exec(await probe.info('commandstats'))?.[1] ?? 0);
  const chain = (id: string, n: number) => ({ buildId: id, tenant: 't1', priority: 0, platforms: [{ platform: AMD,
    stages: Array.from({ length: n }, (_, i) => stage(`s${i}`, i === 0 ? [] : [`s${i - 1}`])) }] });
  // Past the consumers' first looks.
  await scheduler.submitBuild(chain('warm', 1));
  assert.equal((await timeout(scheduler.waitForBuild('warm'), 30_000)).status, 'done');
  const n = 12;
  const before = await looks();
  await scheduler.submitBuild(chain('idle-chain', n));
  assert.equal((await timeout(scheduler.waitForBuild('idle-chain'), 30_000)).status, 'done');
  const used = (await looks()) - before;
  // Each next stage goes to its holder's own queue and wakes it in process: one look takes it.
  // A look on every freed slot and after every take (both find nothing here) made it ~5 per stage.
  assert.ok(used <= 2 * n, `${used} queue looks for a chain of ${n} stages`);
  assert.deepEqual(errors, []);
});

test('a completion claims the stages it makes ready itself: with no tick and no poll, chains and a deduped stage\'s dependent run, each stage once', async (t) => {
  // Nothing else dispatches here: no scheduler tick, no consumer poll. A completion sends its
  // claim right behind it; a leader's completion first asks for its followers' keys (changing
  // nothing on that call), so the claim sent with it finds nothing and must be sent again.
  const { scheduler, consumer, runs, errors } = setup(t, { tickMs: 0 });
  const never = 3_600_000;
  const submitted = gate();
  const behaviour = async (job: StageJob, _s: AbortSignal, by: string) => {
    if (job.cacheKey === 'ck-shared') await submitted.opened;
    return { stage: job.stageId, by };
  };
  await consumer('w1', { capacity: 2, pollMs: never }, behaviour);
  await consumer('w2', { capacity: 1, pollMs: never }, behaviour);
  const plan = (id: string, tenant: string) => ({ buildId: id, tenant, priority: 0, platforms: [{ platform: AMD, stages: [
    stage('x', [], { from: id }, 'ck-shared'), stage('y', ['x'], { from: id }),
    stage('c1'), stage('c2', ['c1']), stage('c3', ['c2']), stage('c4', ['c3']), stage('c5', ['c4'])] }] });
  await Promise.all([scheduler.submitBuild(plan('cc1', 't1')), scheduler.submitBuild(plan('cc2', 't2'))]);
  // The shared stage completes last: only its own claims can place the two y stages.
  await until('both chains to finish', () => runs.filter((r) => r.stageId === 'c5' && r.end > 0).length === 2);
  submitted.open();
  const states = await timeout(Promise.all([scheduler.waitForBuild('cc1'), scheduler.waitForBuild('cc2')]), 30_000);
  assert.deepEqual(states.map((s) => s.status), ['done', 'done'], states.map((s) => s.error ?? '').join('; '));
  assert.equal(states.flatMap((s) => s.stages).filter((s) => s.dedupedFrom).length, 1, 'one build followed the other\'s shared stage');
  const ran = runs.map((r) => `${r.buildId}/${r.stageId}`).sort();
  assert.deepEqual(ran, [...new Set(ran)], 'no stage ran twice');
  assert.equal(ran.length, 13);
  assert.deepEqual(errors, []);
});

test('a wake-up for a shared queue that its consumer cannot use goes on to another idle consumer', async (t) => {
  const { prefix, scheduler, consumer, runs, errors } = setup(t);
  // No polling: a stage starts only on a wake-up. The waker's choice (SPOP of the queue's idle
  // set) is random, so the test takes consumers out of idle sets itself to make that choice:
  // worker A is woken for the shared queue y waits on while its own queue holds x1, which it
  // takes first and which fills it; B, idle on the shared queue, must get the wake-up.
  const never = 3_600_000;
  const keys = schedulerKeys(prefix);
  const probe = probeRedis();
  t.after(() => probe.quit());
  const shared = platformQueueName(AMD, 'native');
  const gates = new Map([['x0', gate()], ['xb', gate()]]);
  const yStarted = gate();
  const testOver = gate(); // lets x1 end when y never starts, so the consumers can close
  const started = new Map<string, string>();
  const startedGate = new Map([['x0', gate()], ['xb', gate()]]);
  const work = async (job: StageJob, _s: AbortSignal, by: string) => {
    started.set(job.stageId, by);
    startedGate.get(job.stageId)?.open();
    await gates.get(job.stageId)?.opened;
    if (job.stageId === 'y') yStarted.open();
    // x1 holds A's only slot until y has started elsewhere.
    if (job.stageId === 'x1') await Promise.race([yStarted.opened, testOver.opened]);
    return job.stageId;
  };
  await consumer('w1', { pollMs: never }, work);
  await consumer('w2', { pollMs: never }, work);
  // x0 and xb go to one worker each; x1 needs both, and its placement prefers x0's worker (A).
  await scheduler.submitBuild({ buildId: 'wx', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [
    stage('x0'), stage('xb'), stage('x1', ['x0', 'xb'])] }] });
  await Promise.all([startedGate.get('x0')!.opened, startedGate.get('xb')!.opened]);
  const a = started.get('x0')!;
  const b = started.get('xb')!;
  assert.notEqual(a, b);
  const idle = async (q: string, id: string) => (await probe.sismember(keys.idleConsumers(q), id)) === 1;
  gates.get('x0')!.open();
  await until('A idle after x0', async () => await idle(shared, a) && await idle(workerQueueName(a), a));
  // As if wakers had chosen A: out of both idle sets (A still counts itself in them).
  await probe.srem(keys.idleConsumers(shared), a);
  await probe.srem(keys.idleConsumers(workerQueueName(a)), a);
  gates.get('xb')!.open();
  // B's completion places x1 on A's own queue; its wake-up finds A in no idle set.
  await until('x1 queued for A and B idle', async () => {
    const st = await scheduler.getBuild('wx');
    return st?.stages.find((s) => s.stageId === 'x1')?.queue === workerQueueName(a) && await idle(shared, b);
  });
  // y waits on the shared queue, placed while no consumer was in its idle set.
  await probe.srem(keys.idleConsumers(shared), b);
  await scheduler.submitBuild({ buildId: 'wy', tenant: 't2', priority: 0, platforms: [{ platform: AMD, stages: [stage('y')] }] });
  await probe.sadd(keys.idleConsumers(shared), b);
  // The waker's message for y goes to A.
  await probe.publish(keys.wakeChannel(a), shared);
  const [x, y] = await timeout(Promise.all([scheduler.waitForBuild('wx'), scheduler.waitForBuild('wy')]), 30_000, 'builds')
    .finally(() => testOver.open());
  assert.equal(x.status, 'done');
  assert.equal(y.status, 'done');
  assert.equal(runs.find((r) => r.stageId === 'x1')?.worker, a);
  assert.equal(runs.find((r) => r.stageId === 'y')?.worker, b);
  assert.deepEqual(errors, []);
});

test('a consumer out of an idle set it counts itself in is put back by its next poll; a job only a poll finds is reported', async (t) => {
  const { prefix, consumer, errors } = setup(t);
  const keys = schedulerKeys(prefix);
  const probe = probeRedis();
  t.after(() => probe.quit());
  const lost: LostWakeUp[] = [];
  const c = await consumer('w1', { pollMs: 300, onLostWakeUp: (d) => lost.push(d) });
  const own = workerQueueName('w1');
  const shared = platformQueueName(AMD, 'native');
  const idleIn = async (q: string) => (await probe.sismember(keys.idleConsumers(q), 'w1')) === 1;
  await until('w1 idle on both queues', async () => await idleIn(own) && await idleIn(shared));
  // As if wakers had taken w1 out of both sets and their messages were lost: w1 still counts
  // itself in them, so its looks would never enter them again, and no placement could wake it.
  await probe.srem(keys.idleConsumers(own), 'w1');
  await probe.srem(keys.idleConsumers(shared), 'w1');
  await until('a poll to put w1 back in both idle sets', async () => await idleIn(own) && await idleIn(shared));
  assert.equal(lost.length, 0, 'nothing was waiting');
  // A job on w1's own queue that no placement woke it for: only a poll finds it.
  const q = new Queue(own, { connection: probe, prefix: keys.bullPrefix });
  t.after(() => q.close());
  await q.add('x', { not: 'a stage' }, { jobId: 'unannounced' });
  await until('a poll to find the job', () => lost.length === 1);
  assert.equal(lost[0].queue, own);
  assert.equal(lost[0].jobId, 'unannounced');
  assert.equal(c.lostWakeUps, 1);
  // Not a stage job the scheduler wrote: failed as malformed.
  await until('the job to be refused', () => errors.length > 0);
  assert.match(errors[0].message, /stage job/);
});

test('the fleet tenant limit: tenants that wait at once share the live slots equally', async (t) => {
  const { scheduler, consumer, runs } = setup(t);
  // A and B both get their stages ready in one step: B's root follows A's (same cache key), so
  // A's completion readies ten stages of each. Four live slots, two waiting tenants: 2 each.
  const rootGate = gate();
  const fourRunning = gate();
  const work = async (job: StageJob) => {
    if (job.stageId === 'x') await rootGate.opened;
    else {
      if (runs.filter((r) => r.stageId !== 'x').length === 4) fourRunning.open();
      await fourRunning.opened;
    }
    return job.stageId;
  };
  await consumer('w1', { capacity: 2 }, work);
  await consumer('w2', { capacity: 2 }, work);
  const plan = (buildId: string, tenant: string) => ({ buildId, tenant, priority: 0, platforms: [{ platform: AMD, stages: [
    stage('x', [], { shared: true }, 'ck-fleet-root'), ...Array.from({ length: 10 }, (_, i) => stage(`s${i}`, ['x'], { buildId }))] }] });
  await scheduler.submitBuild(plan('fa', 'A'));
  await until('the shared root to run', () => runs.length === 1);
  await scheduler.submitBuild(plan('fb', 'B'));
  await until('B\'s root to follow A\'s', async () => (await scheduler.getBuild('fb'))?.stages.find((s) => s.stageId === 'x')?.status === 'deduped');
  rootGate.open();
  const [a, b] = await timeout(Promise.all([scheduler.waitForBuild('fa'), scheduler.waitForBuild('fb')]));
  assert.equal(a.status, 'done');
  assert.equal(b.status, 'done');
  // No stage finishes before four run, so the first four are exactly what the share allowed.
  const firstFour = runs.filter((r) => r.stageId !== 'x').slice(0, 4).map((r) => r.buildId).sort();
  assert.deepEqual(firstFour, ['fa', 'fa', 'fb', 'fb']);
  assert.equal(runs.length, 21);
});

test('a build survives the failover of the Redis Cluster master holding the scheduler\'s slot', { skip: !onCluster && 'needs a Redis Cluster (Scheduler.cluster.test.ts)' }, async (t) => {
  // A cluster of its own: a failed-over cluster is not what the other tests start from.
  const cluster = await startRedisCluster({ replicas: 1 });
  const { prefix, scheduler, consumer, runs } = setup(t, { redis: { url: cluster.url, cluster: true } });
  t.after(() => cluster.stop()); // after setup's own hooks: the scheduler and consumers close first
  const held = gate();
  const running = gate();
  const work = async (job: StageJob) => {
    if (job.stageId === 'b') { running.open(); await held.opened; }
    return job.stageId;
  };
  await consumer('w1', { capacity: 2 }, work);
  await consumer('w2', { capacity: 2 }, work);
  await scheduler.submitBuild({ buildId: 'fo1', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [
    stage('a'), stage('b', ['a']), stage('c', ['b']), stage('d', ['b']), stage('e', ['c', 'd'])] }] });
  await timeout(running.opened, 60_000, 'stage b to start');
  // Every scheduler key is in one slot: kill the master serving it while b runs.
  const killed = await cluster.killMasterFor(schedulerKeys(prefix).config).finally(() => held.open());
  const state = await timeout(scheduler.waitForBuild('fo1'));
  assert.equal(state.status, 'done', state.error);
  assert.deepEqual([...new Set(runs.map((r) => r.stageId))].sort(), ['a', 'b', 'c', 'd', 'e']);
  assert.notEqual((await cluster.masterFor(schedulerKeys(prefix).config)).port, killed.port);
  // The cluster still takes new builds.
  await scheduler.submitBuild({ buildId: 'fo2', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('x')] }] });
  assert.equal((await timeout(scheduler.waitForBuild('fo2'))).status, 'done');
});

test('workers whose heartbeats a Redis outage held up are not taken for dead when sweeps resume: an idle one stays registered, a running stage runs once', { skip: onCluster && 'relays one Redis' }, async (t) => {
  // Sweeps by hand: the pause between two of them is the outage the sweep sees, as a scheduler's
  // sweeps pause while Redis answers nobody.
  const { scheduler, consumer, runs, prefix } = setup(t, { tickMs: 0 });
  const proxy = await relay(new URL(redis.url));
  t.after(() => proxy.stop());
  const viaProxy = new URL(redis.url);
  viaProxy.port = String(proxy.port);
  const held = gate();
  const running = gate();
  const work = async (job: StageJob) => {
    if (job.stageId === 'b') { running.open(); await held.opened; }
    return job.stageId;
  };
  // Job locks that outlast the outage: BullMQ's own stall recovery is not what this is about.
  for (const id of ['w1', 'w2']) await consumer(id, { redis: viaProxy.toString(), lockDurationMs: 120_000 }, work);
  // A worker that was dead long before: its expiry is in 1970.
  const keys = schedulerKeys(prefix);
  await scheduler.registry.register({ id: 'ghost', nativePlatforms: ['linux/arm64'], emulatedPlatforms: [], capacity: 1, cacheBytes: 0, version: 'test' });
  const probe = probeRedis();
  t.after(() => probe.quit());
  await probe.zadd(keys.workerBeats, 1, 'ghost');
  await scheduler.tick();
  assert.equal(await probe.exists(keys.worker('ghost')), 0, 'a worker dead before any pause is swept');
  await scheduler.registry.register({ id: 'ghost', nativePlatforms: ['linux/arm64'], emulatedPlatforms: [], capacity: 1, cacheBytes: 0, version: 'test' });
  await probe.zadd(keys.workerBeats, 1, 'ghost');
  // b follows base onto the own queue of base's worker; the other worker stays idle.
  await scheduler.submitBuild({ buildId: 'out1', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('base'), stage('b', ['base'])] }] });
  await timeout(running.opened, 60_000, 'stage b to start');
  // Redis answers neither worker: their heartbeats stop, and stay stopped past their expiry.
  proxy.freeze();
  await until('both heartbeats to expire', async () => {
    const [sec, usec] = await probe.time();
    const now = Number(sec) * 1000 + Math.floor(Number(usec) / 1000);
    const expiries = await probe.zmscore(keys.workerBeats, 'w1', 'w2');
    return expiries.every((e) => e !== null && Number(e) < now);
  }, 60_000);
  // The first sweep after the outage took both for dead: it removed the idle one from the
  // registry (and would have moved stages queued for either to other workers).
  await scheduler.tick();
  const registered = await Promise.all(['w1', 'w2', 'ghost'].map((id) => probe.exists(keys.worker(id))));
  // Thawed and let go first: the test's end closes the consumers, which waits for their stage
  // and for Redis to answer them.
  proxy.thaw();
  held.open();
  assert.deepEqual(registered, [1, 1, 0], 'both workers are still registered; the one dead before the outage is not');
  const state = await timeout(scheduler.waitForBuild('out1'));
  assert.equal(state.status, 'done', state.error);
  const holder = state.stages.find((s) => s.stageId === 'base')!.worker;
  assert.deepEqual(runs.map((r) => [r.stageId, r.worker, r.aborted]).sort(), [['b', holder, false], ['base', holder, false]]);
});

test('a stage on a SIGKILLed worker completes on another worker', async (t) => {
  const { scheduler, consumer, runs, prefix } = setup(t);
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./consumerChild.test-util.ts', import.meta.url))], {
    env: { ...process.env, REDIS_URL: redisCluster?.url ?? redis.url, REDIS_CLUSTER: onCluster ? '1' : '', PREFIX: prefix, WORKER_ID: 'doomed', PLATFORM: AMD, LIVENESS_MS: String(FAST.heartbeatTtlMs) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  await timeout(new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => { if (d.toString().includes('ready')) resolve(); });
    child.once('exit', (code) => reject(new Error(`consumer child exited early with ${code}`)));
  }), 60_000, 'the consumer child to be ready');
  // s1 comes from the shared platform queue (BullMQ stall recovery); s2 follows base onto the
  // child's own queue (recovered by the scheduler's sweep).
  await scheduler.submitBuild({ buildId: 'kill1', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [
    stage('s1', [], { hangInChild: true }), stage('base'), stage('s2', ['base'], { hangInChild: true })] }] });
  const probe = probeRedis();
  t.after(() => probe.quit());
  await until('both stages to run in the child', async () => {
    const st = await scheduler.getBuild('kill1');
    return ['s1', 's2'].every((id) => st?.stages.find((s) => s.stageId === id && s.status === 'running' && s.worker === 'doomed'));
  });
  await consumer('survivor', {});
  child.kill('SIGKILL');
  const state = await timeout(scheduler.waitForBuild('kill1'), 90_000);
  assert.equal(state.status, 'done');
  for (const id of ['s1', 's2']) {
    const s = state.stages.find((x) => x.stageId === id)!;
    assert.equal(s.worker, 'survivor', `${id} finished on the survivor`);
    assert.equal(s.attempts, 2);
  }
  assert.deepEqual(runs.map((r) => r.stageId).sort(), ['s1', 's2']);
});

test('read API: queue names from placements and live workers, a gone worker\'s idle queue forgotten, stage placement, events so far', async (t) => {
  const { scheduler, consumer } = setup(t);
  const w1 = await consumer('r1', { native: [AMD], emulated: ['linux/arm64'], capacity: 2 });
  assert.deepEqual(await scheduler.queueNames(), [platformQueueName(AMD, 'native'), platformQueueName('linux/arm64', 'emulated')], 'a live worker\'s platform queues before any placement');
  assert.deepEqual(await scheduler.eventsSoFar('q-none'), []);
  // b depends on a: it goes to the own queue of a's worker, which has a free slot.
  await scheduler.submitBuild({ buildId: 'q1', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('a'), stage('b', ['a'])] }] });
  const state = await timeout(scheduler.waitForBuild('q1'));
  assert.equal(state.status, 'done');
  assert.equal(state.stages.find((s) => s.stageId === 'b')?.queue, workerQueueName('r1'));
  assert.deepEqual(await scheduler.queueNames(), [platformQueueName('linux/arm64', 'emulated'), platformQueueName(AMD, 'native'), workerQueueName('r1')].sort());

  assert.deepEqual(await scheduler.stagePlacement(stageRef('q1', AMD, 'a')), { worker: 'r1', emulated: false });
  assert.equal(await scheduler.stagePlacement(stageRef('q1', AMD, 'missing')), null);
  const events = await scheduler.eventsSoFar('q1');
  assert.equal(events.at(-1)?.type, 'build-done', 'ends with the build\'s terminal event, without waiting for more');
  assert.deepEqual(events.filter((e) => e.type === 'stage-completed').map((e) => 'stageId' in e && e.stageId).sort(), ['a', 'b']);

  // The worker leaves: its own queue (nothing pending) is forgotten; the platform queue it
  // served stays listed because a job was placed on it.
  await w1.close();
  assert.deepEqual(await scheduler.queueNames(), [platformQueueName(AMD, 'native')]);
});

/** The claimer id claimChild.test-util.ts claims under. */
const claimerOf = (pid: number) => `child-${pid}`;

test('a stage claimed by a dispatcher SIGKILLed before queueing it goes back to ready when its lease expires, and runs once', async (t) => {
  const prefix = `t${process.pid}-${++prefixSeq}`;
  const probe = probeRedis();
  t.after(() => probe.quit());
  const store = new StageStore(probe, prefix);
  // Submitted without a scheduler, so the child is the one that claims.
  await store.submit({ buildId: 'lost1', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('a'), stage('b', ['a'])] }] });
  const child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', fileURLToPath(new URL('./claimChild.test-util.ts', import.meta.url))], {
    env: { ...process.env, REDIS_URL: redisCluster?.url ?? redis.url, REDIS_CLUSTER: onCluster ? '1' : '', PREFIX: prefix, LEASE_MS: '300' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise((resolve) => child.once('exit', resolve));
  t.after(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL'); });
  const claimed = await timeout(new Promise<string[]>((resolve, reject) => {
    let out = '';
    child.stdout!.on('data', (d: Buffer) => { out += d.toString(); if (out.includes('\n')) resolve(JSON.parse(out.split('\n')[0]) as string[]); });
    child.once('exit', (code) => reject(new Error(`claiming child exited early with ${code}`)));
  }), 60_000, 'the claiming child');
  assert.deepEqual(claimed, [stageRef('lost1', AMD, 'a')]);
  child.kill('SIGKILL');
  await exited;
  // A claim touches no stage key: the stage is still 'ready' in its hash, but off its ready set and on the watch list.
  assert.equal((await store.getBuild('lost1'))?.stages[0].status, 'ready');
  assert.equal(await probe.zcard(schedulerKeys(prefix).tenantReady('t1')), 0, 'the dead claimer took it off its ready set');
  assert.equal(await probe.hget(store.claimedKey, stageRef('lost1', AMD, 'a')), claimerOf(child.pid!));
  const { scheduler, consumer, runs } = setup(t, { prefix });
  await consumer('w1', {});
  const state = await timeout(scheduler.waitForBuild('lost1'));
  assert.equal(state.status, 'done');
  assert.deepEqual(runs.map((r) => r.stageId), ['a', 'b']);
  const queued = (await scheduler.eventsSoFar('lost1')).filter((e) => e.type === 'stage-queued').map((e) => e.stageId);
  assert.deepEqual(queued, ['a', 'b'], 'each stage was queued once');
  assert.equal(await probe.hlen(store.claimedKey), 0);
});

test('a claim whose dispatcher died after adding its job is left to that job, not dispatched again', async (t) => {
  const prefix = `t${process.pid}-${++prefixSeq}`;
  const probe = probeRedis();
  t.after(() => probe.quit());
  const store = new StageStore(probe, prefix);
  await store.submit({ buildId: 'lost2', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('a')] }] });
  // A dispatcher that claimed, marked and added the job, then died before taking the stage off
  // the watch list.
  const ghost = { id: 'ghost', leaseMs: 300 };
  const [info] = await store.claim('fleet', ghost);
  const queue = platformQueueName(AMD, 'native');
  const jobId = 'sghost-1';
  assert.deepEqual(await store.markQueuedAll([{ ref: info.ref, queue, jobId }], ghost, 'd'), ['add']);
  const q = new Queue(queue, { connection: probe, prefix: schedulerKeys(prefix).bullPrefix });
  t.after(() => q.close());
  await q.add('a', { ref: info.ref, buildId: 'lost2', tenant: 't1', priority: 0, platform: AMD, stageId: 'a', cacheKey: '', traceContext: {} }, { jobId });
  const { scheduler, consumer, runs } = setup(t, { prefix });
  await until('the sweep to drop the stage from its watch list', async () => (await probe.hlen(store.claimedKey)) === 0);
  assert.equal((await store.getBuild('lost2'))?.stages[0].status, 'queued', 'its job exists: not recovered');
  await consumer('w1', {});
  assert.equal((await timeout(scheduler.waitForBuild('lost2'))).status, 'done');
  assert.deepEqual(runs.map((r) => r.stageId), ['a']);
  assert.equal((await scheduler.eventsSoFar('lost2')).filter((e) => e.type === 'stage-queued').length, 1);
});

test('a re-homing pass that dies after removing a dead worker\'s job, before queueing its stage again, leaves the stage to recovery', async (t) => {
  const prefix = `t${process.pid}-${++prefixSeq}`;
  const probe = probeRedis();
  t.after(() => probe.quit());
  const keys = schedulerKeys(prefix);
  const store = new StageStore(probe, prefix);
  await store.submit({ buildId: 'lost3', tenant: 't1', priority: 0, platforms: [{ platform: AMD, stages: [stage('a')] }] });
  // Queued on the own queue of a worker that is gone (as placement does for an input holder).
  const owner = { id: 'first', leaseMs: 30_000 };
  const [info] = await store.claim('fleet', owner);
  const queue = workerQueueName('gone');
  const jobId = 'sfirst-1';
  assert.deepEqual(await store.markQueuedAll([{ ref: info.ref, queue, jobId }], owner, 'd'), ['add']);
  const q = new Queue(queue, { connection: probe, prefix: keys.bullPrefix });
  t.after(() => q.close());
  await q.add('a', { ref: info.ref, buildId: 'lost3', tenant: 't1', priority: 0, platform: AMD, stageId: 'a', cacheKey: '', traceContext: {} }, { jobId });
  await store.jobsAdded([info.ref]);
  // A re-homing dispatcher runs the first half only (takes the job off the queue), then dies.
  const doomed = new Dispatcher(probe, keys, store, new WorkerRegistry(probe, { prefix }), { tenantLimit: 0, claimLeaseMs: 300 });
  assert.deepEqual(await doomed.takeJobs(queue), [info.ref]);
  assert.ok(!(await q.getJob(jobId)), 'its job was removed');
  assert.equal((await store.getBuild('lost3'))?.stages[0].status, 'queued', 'left queued on a job that is gone');
  // A scheduler's tick gives it back to ready once that lease expired; it then runs, once.
  const { scheduler, consumer, runs } = setup(t, { prefix });
  await consumer('w1', {});
  assert.equal((await timeout(scheduler.waitForBuild('lost3'))).status, 'done');
  assert.deepEqual(runs.map((r) => r.stageId), ['a']);
  assert.equal(await probe.hlen(store.claimedKey), 0);
});
