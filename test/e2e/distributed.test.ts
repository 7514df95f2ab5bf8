// Issue 5 acceptance: the distributed path with real Redis, registry, one frontend and two
// worker processes.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { ControlClient, SolveRequest, type SolveEvent } from '@buildyard/proto';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { bearer, solve, vertexSummary } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
let cluster: Cluster;
let work: string;

before(async () => {
  // One stage per worker at a time, so independent stages must spread over both workers.
  cluster = await startCluster({ workers: 2, tenants: ['other'], env: { BUILDYARD_WORKER_CAPACITY: '1' } });
  work = mkdtempSync(join(tmpdir(), 'buildyard-e2e-'));
});
after(async () => { await cluster?.stop(); });

/** A stage's span: from its first vertex starting to its last finishing, and who ran it. */
function stageSpan(events: SolveEvent[], stage: string): { start: number; end: number; workers: Set<string> } {
  const vertices = events.map((e) => e.vertex).filter((v) => v && v.stage === stage && !v.cached);
  assert.ok(vertices.length > 0, `stage ${stage} reported progress`);
  return {
    start: Math.min(...vertices.filter((v) => v!.startedMs).map((v) => v!.startedMs)),
    end: Math.max(...vertices.map((v) => v!.completedMs)),
    workers: new Set(vertices.map((v) => v!.workerId)),
  };
}

const baseArg = () => ({ BASE: cluster.busybox.reference });

test('the multi-stage example builds; its two middle stages run at the same time on different workers', async () => {
  // No cache: the stages run here even if another test built the example first.
  const outcome = await solve(cluster, example, { platforms: ['linux/amd64'], buildArgs: baseArg(), noCache: true });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.result!.digest, /^sha256:[0-9a-f]{64}$/);
  const client = stageSpan(outcome.events, 'client');
  const server = stageSpan(outcome.events, 'server');
  assert.equal(client.workers.size, 1, 'one worker ran the client stage');
  assert.equal(server.workers.size, 1, 'one worker ran the server stage');
  assert.notDeepEqual([...client.workers], [...server.workers], 'the compile stages ran on different workers');
  assert.ok(client.start < server.end && server.start < client.end, `the compile stages overlapped in time: client ${client.start}-${client.end}, server ${server.start}-${server.end}`);
  assert.match(outcome.logs, /built client/);
});

test('after changing one context file the next build uploads only it and re-runs only what reads it', async () => {
  const context = join(work, 'incremental');
  cpSync(example, context, { recursive: true });
  const first = await solve(cluster, context, { platforms: ['linux/amd64'], buildArgs: baseArg() });
  assert.equal(first.error, undefined, first.error?.message);
  const changed = join(context, 'client/main.sh');
  writeFileSync(changed, readFileSync(changed, 'utf8') + '# changed\n');
  const second = await solve(cluster, context, { platforms: ['linux/amd64'], buildArgs: baseArg() });
  assert.equal(second.error, undefined, second.error?.message);
  assert.equal(second.bytesUploaded, statSync(changed).size, 'only the changed file was uploaded');
  const vertices = vertexSummary(second.events);
  const ran = [...vertices.entries()].filter(([, v]) => !v.cached).map(([k]) => k.replace('linux/amd64 ', ''));
  assert.deepEqual(ran.filter((n) => n.includes('RUN')), ['[client 3/3] RUN sh common/build.sh client /out/client']);
  assert.ok(vertices.get('linux/amd64 [server 3/3] RUN sh common/build.sh server /out/server')?.cached, 'the server stage was cached');
});

test('two clients building the same Dockerfile at the same moment execute each RUN once', async () => {
  const context = join(work, 'twins');
  cpSync(example, context, { recursive: true });
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo twin-${Date.now()} > /twin && sleep 1\nRUN cat /twin > /twin2\n`);
  const [a, b] = await Promise.all([
    solve(cluster, context, { platforms: ['linux/amd64'] }),
    solve(cluster, context, { platforms: ['linux/amd64'] }),
  ]);
  assert.equal(a.error, undefined, a.error?.message);
  assert.equal(b.error, undefined, b.error?.message);
  assert.equal(a.result!.digest.length, 71);
  const executed = [...a.events, ...b.events].filter((e) => e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs && !e.vertex.cached);
  assert.equal(executed.length, 2, `each of the 2 RUN steps started once: ${executed.map((e) => e.vertex!.name).join(', ')}`);
});

test('a running build leases the layers its finished stages produced; the leases go when it ends', async () => {
  const redis = new Redis(cluster.redis.url);
  const context = join(work, 'leases');
  cpSync(example, context, { recursive: true });
  // Stage "first" finishes and leases its layers while the final stage is still running.
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference} AS first\nRUN echo lease-${Date.now()} > /a\nFROM first\nRUN sleep 2\n`);
  const buildId = `leases-${Date.now()}`;
  const leaseKey = `buildyard:leases:build:${buildId}`;
  let leasedWhileRunning: Promise<string[]> | undefined;
  try {
    const outcome = await solve(cluster, context, { platforms: ['linux/amd64'], buildId }, {
      onEvent: (e) => {
        if (!leasedWhileRunning && e.vertex?.name.includes('sleep 2') && e.vertex.startedMs && !e.vertex.completedMs) leasedWhileRunning = redis.smembers(leaseKey);
      },
    });
    assert.equal(outcome.error, undefined, outcome.error?.message);
    const held = await leasedWhileRunning;
    assert.ok(held && held.length >= 2, `the first stage's layers (base and its RUN) were leased while the build ran: ${held}`);
    assert.ok(held.every((d) => /^sha256:[0-9a-f]{64}$/.test(d)));
    assert.deepEqual(await redis.smembers(leaseKey), [], 'released when the build ended');
  } finally {
    redis.disconnect();
  }
});

test('SIGKILL of a worker in the middle of a stage: the build still finishes, on the other worker', async () => {
  const context = join(work, 'kill');
  cpSync(example, context, { recursive: true });
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo victim-${Date.now()} && sleep 4 && echo survived > /survived\n`);
  let killed = '';
  const outcome = await solve(cluster, context, { platforms: ['linux/amd64'] }, {
    onEvent: (e: SolveEvent) => {
      if (!killed && e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs && e.vertex.workerId) {
        killed = e.vertex.workerId;
        cluster.workers.find((w) => w.id === killed)!.process.kill('SIGKILL');
      }
    },
  });
  assert.ok(killed, 'a worker was killed mid-RUN');
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const finishedBy = outcome.events.filter((e) => e.vertex?.name.includes('RUN') && e.vertex.completedMs && !e.vertex.error).map((e) => e.vertex!.workerId);
  assert.ok(finishedBy.length > 0 && finishedBy.every((w) => w !== killed), `finished on another worker (killed ${killed}, finished by ${finishedBy})`);
  await cluster.addWorker();
});

test('a request without a valid token is refused with UNAUTHENTICATED and leaves no trace in the queues', async () => {
  const redis = new Redis(cluster.redis.url);
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const keysBefore = new Set(await redis.keys('*'));
    for (const md of [undefined, bearer('not-a-token')]) {
      const stream = md ? control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from('FROM scratch\n'), buildId: 'intruder' }), md)
        : control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from('FROM scratch\n'), buildId: 'intruder' }));
      await assert.rejects(async () => { for await (const _ of stream) { /* nothing should arrive */ } }, (err: { code: number }) => err.code === status.UNAUTHENTICATED);
    }
    const newKeys = (await redis.keys('*')).filter((k) => !keysBefore.has(k));
    assert.deepEqual(newKeys.filter((k) => k.includes('intruder') || k.includes('build')), [], `no build state was created: ${newKeys}`);
  } finally {
    control.close();
    redis.disconnect();
  }
});

test('Info reports the version and the fleet\'s native and emulated platforms', async () => {
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const info = await new Promise<{ version: string; nativePlatforms: string[]; emulatedPlatforms: string[]; workers: number; tenant: string }>((done, fail) =>
      control.info({}, bearer(cluster.token), (err, res) => (err ? fail(err) : done(res))));
    assert.match(info.version, /^\d+\.\d+\.\d+/);
    assert.ok(info.nativePlatforms.includes('linux/amd64'));
    assert.ok(info.emulatedPlatforms.includes('linux/arm64'));
    assert.ok(info.workers >= 2);
    assert.equal(info.tenant, 'default');
  } finally {
    control.close();
  }
});

test('a detached build survives its client and a client re-attaches to it by id; other tenants cannot', async () => {
  const context = join(work, 'attach');
  cpSync(example, context, { recursive: true });
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo attach-${Date.now()} && sleep 2\n`);
  const buildId = `attach-${Date.now()}`;
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    // The first client leaves as soon as the build is accepted.
    await solve(cluster, context, { platforms: ['linux/amd64'], buildId, detach: true }, {
      onEvent: (e) => { if (e.accepted) throw Object.assign(new Error('leaving'), { leave: true }); },
    }).catch((err: { leave?: boolean }) => { if (!err.leave) throw err; });
    const replay: SolveEvent[] = [];
    for await (const e of control.attach({ buildId, fromStart: true }, bearer(cluster.token))) replay.push(e as SolveEvent);
    assert.ok(replay[0].accepted, 'the replay starts at the beginning');
    assert.match(replay.find((e) => e.result)?.result?.digest ?? '', /^sha256:/, 'the build finished and the re-attached client got its result');
    await assert.rejects(async () => { for await (const _ of control.attach({ buildId, fromStart: true }, bearer('not-a-token'))) { /* refused */ } },
      (err: { code: number }) => err.code === status.UNAUTHENTICATED);
    await assert.rejects(async () => { for await (const _ of control.attach({ buildId, fromStart: true }, bearer(cluster.tokens.other))) { /* hidden */ } },
      (err: { code: number }) => err.code === status.NOT_FOUND, 'another tenant cannot see the build even knowing its id');
  } finally {
    control.close();
  }
});
