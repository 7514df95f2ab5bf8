// Issue 9, faults: a worker killed mid-RUN, a client that goes away, a registry that is down
// during push, a full disk in a worker's state directory, Redis restarting under running
// builds, the frontend dying mid-build, and a stalled client (gRPC or BuildKit) or an
// unreachable Redis at the frontend's stop. Every accepted build ends (result or a clear error)
// within a deadline; nothing half-written is served afterwards; a stopped frontend exits.
import { test, before, after, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { execFileSync, spawnSync } from 'node:child_process';
import { createReadStream, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { buildkit, ContextSyncClient, ControlClient, gateway, SolveRequest, type SolveEvent } from '@buildyard/proto';
import { freePort, startCluster, within, type Cluster } from '@buildyard/testkit';
import { bearer, solve, type SolveOutcome } from '../grpcClient.js';
import { aliveProcesses, buildStatus, info, runcContainers } from '../security/clusterCalls.js';
import { ContextDirs } from '../security/contextDirs.js';

let cluster: Cluster;
/** A registry port nothing listens on, which builds may use (a registry that is down). */
let deadPort: number;
let contexts: ContextDirs | undefined;
const mounts: string[] = [];
const nonce = `${process.pid}${Date.now()}`;

before(async () => {
  deadPort = await freePort();
  cluster = await startCluster({ workers: 2, env: { BUILDYARD_WORKER_CAPACITY: '2' }, trustRegistries: [`127.0.0.1:${deadPort}`] });
  contexts = new ContextDirs('faults');
});
after(async () => {
  await cluster?.stop().catch(() => undefined);
  for (const m of mounts) spawnSync('umount', ['-l', m]);
  contexts?.remove();
});

function context(name: string, dockerfile: string): string {
  return contexts!.make(name, dockerfile);
}

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const c of createReadStream(path)) h.update(c as Buffer);
  return h.digest('hex');
}

async function syncOnly(dir: string, on: Cluster = cluster): Promise<string> {
  const { syncContext } = await import('@buildyard/context');
  const { ContextSyncClient } = await import('@buildyard/proto');
  const sync = new ContextSyncClient(on.address, credentials.createInsecure());
  try { return (await syncContext(sync, dir, { dockerignore: [], metadata: bearer(on.token), cacheDir: false })).contextId; } finally { sync.close(); }
}

async function waitFor<T>(what: string, ms: number, probe: () => Promise<T | undefined> | T | undefined): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

test('SIGKILL of a worker mid-RUN: the build completes elsewhere and every blob in the shared store matches its digest', { timeout: 120_000 }, async () => {
  const dir = context('kill', `FROM ${cluster.busybox.reference}\nRUN head -c 3000000 /dev/urandom > /big-${nonce} && echo written-${nonce} && sleep 3 && echo done\n`);
  let killed = '';
  const workerOf = new Map<string, string>();
  const outcome = await within(90_000, 'the build after a worker kill', solve(cluster, dir, { platforms: ['linux/amd64'] }, {
    onEvent: (e: SolveEvent) => {
      if (e.vertex?.workerId) workerOf.set(e.vertex.digest, e.vertex.workerId);
      // Kill when the RUN says its big file is written: mid-RUN, with 3 MB in its upper layer.
      if (!killed && e.log && e.log.data.toString().includes(`written-${nonce}`) && workerOf.has(e.log.digest)) {
        killed = workerOf.get(e.log.digest)!;
        cluster.workers.find((w) => w.id === killed)!.process.kill('SIGKILL');
      }
    },
  }));
  assert.ok(killed, 'a worker was killed mid-RUN');
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const blobDir = join(cluster.stateDir, 'shared/blobs/blobs/sha256');
  const names = readdirSync(blobDir);
  assert.ok(names.length > 0);
  for (const name of names) assert.equal(await sha256File(join(blobDir, name)), name, `blob ${name} verifies against its digest`);
  cluster.workers.splice(cluster.workers.findIndex((w) => w.id === killed), 1);
  await cluster.addWorker();
});

test('a client that disconnects cancels its build: status cancelled, no runc container left', { timeout: 90_000 }, async () => {
  const dir = context('disconnect', `FROM ${cluster.busybox.reference}\nRUN echo start-${nonce} && sleep 60\n`);
  const buildId = `disconnect-${nonce}`;
  const contextId = await syncOnly(dir);
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const call = control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from(`FROM ${cluster.busybox.reference}\nRUN echo start-${nonce} && sleep 60\n`), dockerfileName: 'Dockerfile', contextId, platforms: ['linux/amd64'], buildId }), bearer(cluster.token));
    await within(30_000, 'the RUN step starting', new Promise<void>((resolve, reject) => {
      call.on('data', (e: SolveEvent) => { if (e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs) resolve(); });
      call.on('error', (err) => { if ((err as { code?: number }).code !== status.CANCELLED) reject(err); });
    }));
    call.cancel(); // the client goes away (as on Ctrl-C or a dropped connection)
  } finally {
    control.close();
  }
  let last = '';
  const record = await waitFor('the build record says cancelled', 30_000, async () => {
    const b = (await buildStatus(cluster, cluster.token, buildId)).builds[0];
    last = `${b.status} ${b.error}`;
    return b.status === 'cancelled' ? b : undefined;
  }).catch((err: Error) => { throw new Error(`${err.message} (last status: ${last})`); });
  assert.match(record.error, /client went away|cancel/);
  await waitFor('no runc container is left', 20_000, () => runcContainers(cluster).length === 0 || undefined);
});

test('a push to a registry that is down retries, then fails with a clear error; the next push rebuilds nothing', { timeout: 120_000 }, async () => {
  const dir = context('push', `FROM ${cluster.busybox.reference}\nRUN echo pushed-${nonce} > /p\n`);
  const started = Date.now();
  const down = await within(90_000, 'the push to a closed port', solve(cluster, dir, {
    platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name: `127.0.0.1:${deadPort}/faults/app:1`, push: 'true' } }],
  }));
  assert.ok(down.error, 'the build failed');
  assert.match(down.error.message, new RegExp(`127\\.0\\.0\\.1:${deadPort}`), 'the error names the registry');
  assert.ok(!down.error.message.includes('\n'), 'one line');
  assert.ok(Date.now() - started > 300, 'it retried before giving up');
  const up = await solve(cluster, dir, {
    platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name: `${cluster.registry.host}/faults/app:1`, push: 'true' } }],
  });
  assert.equal(up.error, undefined, up.error?.message);
  assert.equal(up.result!.verticesCached, up.result!.verticesTotal, 'every vertex came from the cache');
  assert.equal(up.result!.pushed.length, 1);
});

test('a full disk in a worker\'s state directory fails the step with a clear error; the worker keeps working', { timeout: 120_000 }, async () => {
  const id = `tiny-${nonce}`;
  const state = join(cluster.stateDir, id);
  mkdirSync(state, { recursive: true });
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=24m', 'tmpfs', state]);
  mounts.push(state);
  // Only the tiny worker may take the job: the others leave.
  const others = cluster.workers.splice(0);
  for (const w of others) await w.process.stop();
  const tiny = await cluster.addWorker(id);
  await waitFor('the old workers are forgotten', 15_000, async () => ((await info(cluster, cluster.token)).workers === 1) || undefined);
  const dir = context('disk', `FROM ${cluster.busybox.reference}\nRUN dd if=/dev/zero of=/fill bs=1M count=64 && echo filled\n`);
  const full = await within(90_000, 'the build on a full disk', solve(cluster, dir, { platforms: ['linux/amd64'] }));
  assert.ok(full.error, 'the build failed');
  assert.match(full.error.message, /space|ENOSPC|exit code|did not complete successfully/i);
  assert.ok(!full.error.message.includes('\n'), `one line: ${full.error.message}`);
  assert.equal(tiny.process.child.exitCode, null, 'the worker survived');
  const small = await within(60_000, 'a small build after the full disk', solve(cluster, context('after-disk', `FROM ${cluster.busybox.reference}\nRUN echo small-${nonce} > /s\n`), { platforms: ['linux/amd64'] }));
  assert.equal(small.error, undefined, small.error?.message);
  await cluster.addWorker();
});

test('Redis restarting while builds are queued and running: every accepted build ends within a deadline', {
  timeout: 120_000,
}, async () => {
  // The cluster's Redis runs with appendonly, as `buildyard up` and the deployments run it.
  const builds: Array<Promise<SolveOutcome | Error>> = [];
  let accepted = 0;
  let onReady!: () => void;
  const ready = new Promise<void>((r) => { onReady = r; });
  let running = false;
  const progressed = () => { if (accepted === 4 && running) onReady(); };
  for (let i = 0; i < 4; i++) {
    const dir = context(`redis-${i}`, `FROM ${cluster.busybox.reference}\nRUN echo r${i}-${nonce} && sleep 3\n`);
    builds.push(solve(cluster, dir, { platforms: ['linux/amd64'], buildId: `redis-${i}-${nonce}` }, {
      onEvent: (e: SolveEvent) => {
        if (e.accepted) accepted++;
        if (e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs) running = true;
        progressed();
      },
    }).catch((e: Error) => e));
  }
  // Restart once every build is accepted and one of them is running a step.
  await within(60_000, 'the builds being accepted and one RUN starting', Promise.race([ready, Promise.all(builds).then(() => { throw new Error('the builds ended before Redis restarted'); })]));
  await cluster.redis.restart();
  const outcomes = await within(45_000, 'every build accepted before the Redis restart', Promise.all(builds));
  for (const o of outcomes) {
    const message = o instanceof Error ? o.message : o.error?.message;
    if (message !== undefined) assert.ok(message.length > 0 && !message.includes('\n    at '), `a clear error: ${message}`);
  }
  const alive = aliveProcesses(cluster);
  assert.ok(alive.frontend && alive.workers.every(Boolean), `no process died: ${JSON.stringify(alive)}`);
  const after = await within(60_000, 'a build after the Redis restart', solve(cluster, context('after-redis', `FROM ${cluster.busybox.reference}\nRUN echo after-${nonce}\n`), { platforms: ['linux/amd64'] }));
  assert.equal(after.error, undefined, after.error?.message);
});

test('the frontend dying mid-build: the client gets UNAVAILABLE at once; the restarted frontend takes the build over and a re-attached client gets its result', { timeout: 180_000 }, async () => {
  const dir = context('frontend', `FROM ${cluster.busybox.reference}\nRUN sleep 20\n`);
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  const contextId = await syncOnly(dir);
  let killedAt = 0;
  try {
    const stream = control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from(`FROM ${cluster.busybox.reference}\nRUN sleep 20\n`), dockerfileName: 'Dockerfile', contextId, platforms: ['linux/amd64'], buildId: `orphan-${nonce}` }), bearer(cluster.token));
    await assert.rejects(within(30_000, 'the client noticing the frontend died', (async () => {
      for await (const e of stream) {
        if (!killedAt && (e as SolveEvent).vertex?.startedMs) { killedAt = Date.now(); cluster.frontendProcess.kill('SIGKILL'); }
      }
    })()), (err: { code?: number }) => err.code === status.UNAVAILABLE || err.code === status.INTERNAL || err.code === status.CANCELLED);
    assert.ok(killedAt > 0 && Date.now() - killedAt < 10_000, 'the client learnt of it within 10 s');
  } finally {
    control.close();
  }
  await cluster.restartFrontend();
  const again = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const events: SolveEvent[] = [];
    // The dead coordinator's heartbeat expires (10 s), the new frontend claims the build; the step still runs.
    await within(120_000, 're-attaching to the orphaned build', (async () => {
      for await (const e of again.attach({ buildId: `orphan-${nonce}`, fromStart: true, cancelOnLeave: true }, bearer(cluster.token))) events.push(e as SolveEvent);
    })());
    assert.equal(events.find((e) => e.error)?.error?.message, undefined, 'no error');
    assert.match(events.find((e) => e.warning)?.warning?.message ?? '', /another frontend took the build over/, 'the takeover is in the build\'s progress');
    assert.match(events.find((e) => e.result)?.result?.digest ?? '', /^sha256:/, 'the build ends with its result');
    assert.equal((await buildStatus(cluster, cluster.token, `orphan-${nonce}`)).builds[0].status, 'succeeded');
  } finally {
    again.close();
  }
});

test('a client holding a stream open cannot keep the frontend from stopping: on SIGTERM its call ends with UNAVAILABLE and the process exits', { timeout: 120_000 }, async () => {
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  const call = client.sync(bearer(cluster.token));
  const ended = new Promise<{ code?: number }>((resolve) => { call.on('error', resolve); call.on('end', () => resolve({})); });
  try {
    // An upload that stops halfway: the frontend asks for its one file, which never comes.
    const asked = once(call, 'data');
    const digest = `sha256:${createHash('sha256').update(`stalled-${nonce}`).digest('hex')}`;
    call.write({ entries: { entries: [{ path: 'stalled', mode: 0o100644, size: 20, digest, linkTarget: '', modTime: '0', xattrs: [] }], removed: [] } });
    call.write({ entriesDone: true });
    await asked;
    const exited = once(cluster.frontendProcess.child, 'exit');
    cluster.frontendProcess.kill('SIGTERM');
    const [code] = await within(60_000, 'the frontend exiting on SIGTERM with a stream open', exited);
    assert.equal(code, 0, 'a clean exit');
    assert.equal((await ended).code, status.UNAVAILABLE, 'the stalled client is told the frontend went away');
  } finally {
    call.cancel();
    client.close();
    await cluster.restartFrontend();
  }
});

/** A cluster of its own (its Redis, a frontend, no workers unless asked; the file's registry): the test may stop its Redis. */
async function ownCluster(t: TestContext, env: Record<string, string> = {}, workers = 0): Promise<Cluster> {
  const own = await startCluster({ workers, registry: cluster.registry, env });
  t.after(() => own.stop());
  return own;
}

test('Redis unreachable cannot keep the frontend from stopping: on SIGTERM it exits and logs what it gave up', { timeout: 120_000 }, async (t) => {
  const own = await ownCluster(t);
  await own.redis.stop();
  const exited = once(own.frontendProcess.child, 'exit');
  own.frontendProcess.kill('SIGTERM');
  await within(30_000, 'the frontend exiting on SIGTERM with Redis down', exited);
  assert.match(own.frontendProcess.output(), /Redis did not answer DEL.*removing the coordinator heartbeat failed/, 'the log says what it gave up and why');
  assert.match(own.frontendProcess.output(), /Redis does not answer: retrying until it does/, 'the outage is logged');
  assert.doesNotMatch(own.frontendProcess.output(), /Unhandled error event/, 'no Redis client of the frontend is left without an error listener');
});

/**
 * Starts a build on `own` whose one RUN step echoes `marker` and sleeps a minute; resolves with
 * the worker running that step once it has started.
 */
async function buildHeldMidRun(t: TestContext, own: Cluster, marker: string): Promise<string> {
  const dockerfile = `FROM ${own.busybox.reference}\nRUN echo ${marker} && sleep 60\n`;
  const contextId = await syncOnly(context(marker, dockerfile), own);
  const control = new ControlClient(own.address, credentials.createInsecure());
  t.after(() => control.close());
  const call = control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from(dockerfile), dockerfileName: 'Dockerfile', contextId, platforms: ['linux/amd64'] }), bearer(own.token));
  call.on('error', () => { /* the cluster goes away */ });
  return within(60_000, 'the RUN step starting', new Promise<string>((resolve) => {
    call.on('data', (e: SolveEvent) => { if (e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs && e.vertex.workerId) resolve(e.vertex.workerId); });
  }));
}

test('Redis unreachable with a build running cannot keep the frontend from stopping: on SIGTERM it exits and logs the build it could not hand over', { timeout: 120_000 }, async (t) => {
  const own = await ownCluster(t, {}, 1);
  await buildHeldMidRun(t, own, `held-${nonce}`);
  await own.redis.stop();
  const exited = once(own.frontendProcess.child, 'exit');
  own.frontendProcess.kill('SIGTERM');
  await within(60_000, 'the frontend exiting on SIGTERM with a build running and Redis down', exited);
  assert.match(own.frontendProcess.output(), /1 build did not hand over/, 'the log says which builds it gave up on and why');
});

test('a BuildKit client holding a Solve open cannot keep the frontend from stopping: on SIGTERM its call ends with UNAVAILABLE and the process exits', { timeout: 120_000 }, async (t) => {
  const own = await ownCluster(t, { BUILDYARD_BUILDKIT_LISTEN: '127.0.0.1:0', BUILDYARD_BUILDKIT_INSECURE: '1', BUILDYARD_BUILDKIT_TENANT: 'default' });
  const address = own.buildkit!.replace('tcp://', '');
  const control = new buildkit.ControlClient(address, credentials.createInsecure());
  const bridge = new gateway.LLBBridgeClient(address, credentials.createInsecure());
  t.after(() => { control.close(); bridge.close(); });
  const ref = `held-${nonce}`;
  // A Solve whose build function runs in the client (as buildctl's) stays open until its Return, which never comes.
  const solved = new Promise<ServiceError | null>((resolve) => control.solve(buildkit.SolveRequest.fromPartial({ Ref: ref }), (err) => resolve(err)));
  const md = new Metadata();
  md.set('buildkit-controlapi-buildid', ref);
  // The gateway answers for a build ref once the server holds its Solve.
  await within(30_000, 'the gateway answering for the held Solve', new Promise((resolve, reject) => bridge.ping({}, md, (err, pong) => (err ? reject(err) : resolve(pong)))));
  const exited = once(own.frontendProcess.child, 'exit');
  own.frontendProcess.kill('SIGTERM');
  await within(60_000, 'the frontend exiting on SIGTERM with a BuildKit Solve open', exited);
  const err = await within(10_000, 'the held Solve ending', solved);
  assert.equal(err?.code, status.UNAVAILABLE, `the held Solve is told the frontend is stopping (got ${err?.code} ${err?.details})`);
  assert.match(err?.details ?? '', /buildyardd is stopping/);
});

test('Redis unreachable cannot keep a worker from stopping: on SIGTERM it exits, stops its running step and logs what it gave up', { timeout: 180_000 }, async (t) => {
  const own = await ownCluster(t, {}, 2);
  const runningOn = await buildHeldMidRun(t, own, `held-worker-${nonce}`);
  await own.redis.stop();
  for (const w of own.workers) {
    const running = w.id === runningOn;
    const exited = once(w.process.child, 'exit');
    w.process.kill('SIGTERM');
    await within(60_000, `worker ${w.id} (${running ? 'running the step' : 'idle'}) exiting on SIGTERM with Redis down`, exited);
    assert.match(w.process.output(), new RegExp(`stopping without Redis.*: ${running ? '1 running stage stopped' : '0 running stages stopped'}`), `worker ${w.id} logs what it gave up`);
  }
  // Stopped, not left running: no process of the step, and no container in its worker's runc root.
  assert.equal(spawnSync('pgrep', ['-f', `held-worker-${nonce}`]).stdout.toString().trim(), '', 'the step\'s processes outlived its worker');
  const stepWorker = own.workers.find((w) => w.id === runningOn)!;
  assert.equal(execFileSync('runc', ['--root', join(stepWorker.stateDir, 'runc/runc'), 'list', '-q'], { encoding: 'utf8' }).trim(), '', 'the step\'s container outlived its worker');
});
