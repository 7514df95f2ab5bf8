// Issue 5 acceptance: the distributed path with real Redis, registry, one frontend and two
// worker processes. With BUILDYARD_TEST_REDIS=cluster it runs on a Redis Cluster (issue 19).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { cpSync, writeFileSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join, resolve } from 'node:path';
import { credentials, status } from '@grpc/grpc-js';
import { ControlClient, SolveRequest, type SolveEvent } from '@buildyard/proto';
import { startCluster, type Cluster, testWorkDir } from '@buildyard/testkit';
import { DEFAULT_KEYS, scanKeys, type RedisClient } from '@buildyard/contracts';
import { startGates, type Gates } from './gate.js';
import { bearer, solve, vertexSummary } from './grpcClient.js';

const example = resolve(import.meta.dirname, '../../examples/multi-stage');
let cluster: Cluster;
let work: string;
// RUN steps wait at these instead of sleeping: the test decides when a step may finish.
let gates: Gates;

before(async () => {
  gates = await startGates();
  // One stage per worker at a time, so independent stages must spread over both workers.
  cluster = await startCluster({ workers: 2, tenants: ['other'], env: { BUILDYARD_WORKER_CAPACITY: '1' } });
  work = testWorkDir('buildyard-e2e-');
});
// Gates first: a step still held at one fails at once instead of keeping a worker busy.
after(async () => { await gates?.stop(); await cluster?.stop(); });

/** A gate name of this test run (builds of earlier runs may share the cache, never a gate). */
const gateName = (what: string) => `${what}-${randomBytes(6).toString('hex')}`;

/** The workers that ran a stage's steps (cached ones ran nowhere). */
function stageWorkers(events: SolveEvent[], stage: string): Set<string> {
  const vertices = events.map((e) => e.vertex).filter((v) => v && v.stage === stage && !v.cached && v.workerId);
  assert.ok(vertices.length > 0, `stage ${stage} reported progress`);
  return new Set(vertices.map((v) => v!.workerId));
}

const baseArg = () => ({ BASE: cluster.busybox.reference });

test('the multi-stage example builds; its two middle stages run at the same time on different workers', async () => {
  const context = join(work, 'overlap');
  cpSync(example, context, { recursive: true });
  // Each compile step first waits at a gate of its own: both gates are opened only once both
  // steps have arrived, so the build finishes only if the two stages were running at once.
  const gate = { client: gateName('client'), server: gateName('server') };
  const dockerfile = readFileSync(join(example, 'Dockerfile'), 'utf8')
    .replace(/^RUN (sh common\/build\.sh (client|server) .*)$/gm, (_, command: string, stage: 'client' | 'server') => `RUN ${gates.wait(gate[stage])} && ${command}`);
  assert.ok(dockerfile.includes(gates.wait(gate.client)) && dockerfile.includes(gates.wait(gate.server)), 'both compile steps are gated');
  writeFileSync(join(context, 'Dockerfile'), dockerfile);
  // No cache: every stage runs here even if another test built the example first.
  const building = solve(cluster, context, { platforms: ['linux/amd64'], buildArgs: baseArg(), noCache: true });
  building.catch(() => undefined); // awaited below; a failure of the wait must not leave it unhandled
  try {
    await Promise.all([gates.arrived(gate.client, { unless: building }), gates.arrived(gate.server, { unless: building })]);
  } finally {
    gates.open(gate.client);
    gates.open(gate.server);
  }
  const outcome = await building;
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.result!.digest, /^sha256:[0-9a-f]{64}$/);
  const client = stageWorkers(outcome.events, 'client');
  const server = stageWorkers(outcome.events, 'server');
  assert.equal(client.size, 1, 'one worker ran the client stage');
  assert.equal(server.size, 1, 'one worker ran the server stage');
  assert.notDeepEqual([...client], [...server], 'the compile stages ran on different workers');
  assert.match(outcome.logs, /built client/);
  assert.match(outcome.logs, /built server/);
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

/** Resolves with the first event of type `type` in any of these builds' scheduler event streams. */
async function firstSchedulerEvent(redis: RedisClient, buildIds: string[], type: string, signal: AbortSignal): Promise<string> {
  const last = new Map(buildIds.map((id) => [DEFAULT_KEYS.scheduler.buildEvents(id), '0']));
  while (!signal.aborted) {
    // A short block only so an abort is noticed; every entry is read, none is skipped.
    const res = (await redis.xread('BLOCK', 200, 'STREAMS', ...last.keys(), ...last.values())) as Array<[string, Array<[string, string[]]>]> | null;
    for (const [key, entries] of res ?? []) {
      for (const [id, fields] of entries) {
        last.set(key, id);
        for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === 'type' && fields[i + 1] === type) return key;
      }
    }
  }
  throw new Error(`stopped waiting for ${type}`);
}

test('two clients building the same Dockerfile at the same moment execute each RUN once', async () => {
  const context = join(work, 'twins');
  cpSync(example, context, { recursive: true });
  const gate = gateName('twin');
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo ${gate} > /twin && ${gates.wait(gate)}\nRUN cat /twin > /twin2\n`);
  const ids = [gateName('twin-a'), gateName('twin-b')];
  const redis = cluster.openRedis();
  const stopWatching = new AbortController();
  try {
    const builds = Promise.all(ids.map((buildId) => solve(cluster, context, { platforms: ['linux/amd64'], buildId })));
    builds.catch(() => undefined); // awaited below
    // The step is held at the gate until one build runs it and the other waits for that run
    // (its stage deduped), or until a second arrival shows both ran it.
    const deduped = firstSchedulerEvent(redis, ids, 'stage-deduped', stopWatching.signal);
    deduped.catch(() => undefined);
    try {
      await Promise.race([deduped, gates.arrived(gate, { count: 2, unless: builds })]);
    } finally {
      gates.open(gate);
    }
    const [a, b] = await builds;
    assert.equal(a!.error, undefined, a!.error?.message);
    assert.equal(b!.error, undefined, b!.error?.message);
    assert.equal(a!.result!.digest.length, 71);
    assert.equal(gates.arrivals(gate), 1, 'the gated RUN ran once');
    const executed = [...a!.events, ...b!.events].filter((e) => e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs && !e.vertex.cached);
    assert.equal(executed.length, 2, `each of the 2 RUN steps started once: ${executed.map((e) => e.vertex!.name).join(', ')}`);
  } finally {
    stopWatching.abort();
    redis.disconnect();
  }
});

test('a running build leases the layers its finished stages produced; the leases go when it ends', async () => {
  const redis = cluster.openRedis();
  const context = join(work, 'leases');
  cpSync(example, context, { recursive: true });
  // Stage "first" finishes and leases its layers while the final stage is held at a gate.
  const gate = gateName('lease');
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference} AS first\nRUN echo ${gate} > /a\nFROM first\nRUN ${gates.wait(gate)}\n`);
  const buildId = gate;
  const leaseKey = DEFAULT_KEYS.leases.build(buildId);
  try {
    const building = solve(cluster, context, { platforms: ['linux/amd64'], buildId });
    building.catch(() => undefined); // awaited below
    let held: string[];
    try {
      await gates.arrived(gate, { unless: building });
      held = await redis.smembers(leaseKey);
    } finally {
      gates.open(gate);
    }
    const outcome = await building;
    assert.equal(outcome.error, undefined, outcome.error?.message);
    assert.ok(held.length >= 2, `the first stage's layers (base and its RUN) were leased while the build ran: ${held}`);
    assert.ok(held.every((d) => /^sha256:[0-9a-f]{64}$/.test(d)));
    assert.deepEqual(await redis.smembers(leaseKey), [], 'released when the build ended');
  } finally {
    redis.disconnect();
  }
});

test('SIGKILL of a worker in the middle of a stage: the build still finishes, on the other worker', async () => {
  const context = join(work, 'kill');
  cpSync(example, context, { recursive: true });
  const gate = gateName('victim');
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo ${gate} && ${gates.wait(gate)} && echo survived > /survived\n`);
  let runningOn = (_worker: string) => {};
  const started = new Promise<string>((resolve) => { runningOn = resolve; });
  const building = solve(cluster, context, { platforms: ['linux/amd64'] }, {
    onEvent: (e: SolveEvent) => {
      if (e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.completedMs && e.vertex.workerId) runningOn(e.vertex.workerId);
    },
  });
  building.catch(() => undefined); // awaited below
  let killed = '';
  try {
    try {
      // The step is inside its RUN (held at the gate) on the worker that reported starting it.
      const [worker] = await Promise.all([
        Promise.race([started, building.then(() => { throw new Error('the build ended before its RUN started'); })]),
        gates.arrived(gate, { unless: building }),
      ]);
      const victim = cluster.workers.find((w) => w.id === worker)!;
      const gone = victim.process.child.exitCode === null ? once(victim.process.child, 'exit') : Promise.resolve();
      victim.process.kill('SIGKILL');
      killed = worker;
      await gone;
    } finally {
      // Only now may the step finish: wherever it runs, the worker that started it is dead.
      gates.open(gate);
    }
    const outcome = await building;
    assert.equal(outcome.error, undefined, outcome.error?.message);
    const finishedBy = outcome.events.filter((e) => e.vertex?.name.includes('RUN') && e.vertex.completedMs && !e.vertex.error).map((e) => e.vertex!.workerId);
    assert.ok(finishedBy.length > 0 && finishedBy.every((w) => w !== killed), `finished on another worker (killed ${killed}, finished by ${finishedBy})`);
    assert.ok(gates.arrivals(gate) >= 2, `the step ran again after the kill (${gates.arrivals(gate)} arrival(s) at its gate)`);
  } finally {
    // Later tests expect two live workers.
    if (killed) await cluster.addWorker();
  }
});

test('a request without a valid token is refused with UNAUTHENTICATED and leaves no trace in the queues', async () => {
  const redis = cluster.openRedis();
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    const keysBefore = new Set(await scanKeys(redis, '*'));
    for (const md of [undefined, bearer('not-a-token')]) {
      const stream = md ? control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from('FROM scratch\n'), buildId: 'intruder' }), md)
        : control.solve(SolveRequest.fromPartial({ dockerfile: Buffer.from('FROM scratch\n'), buildId: 'intruder' }));
      await assert.rejects(async () => { for await (const _ of stream) { /* nothing should arrive */ } }, (err: { code: number }) => err.code === status.UNAUTHENTICATED);
    }
    const newKeys = (await scanKeys(redis, '*')).filter((k) => !keysBefore.has(k));
    // Build state is keyed `…:build:<id>…`, `…:build-secrets:<id>`, `…:build-request:<id>` or
    // `…:progress:<id>`; every other new key is the fleet going on meanwhile (BullMQ's checks, GC).
    const buildState = /:(build|build-secrets|build-request|progress):/;
    assert.deepEqual(newKeys.filter((k) => k.includes('intruder') || buildState.test(k)), [], `no build state was created: ${newKeys}`);
    assert.equal(await redis.zscore(DEFAULT_KEYS.builds, 'intruder'), null, 'the build list has no such build');
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
  const gate = gateName('attach');
  writeFileSync(join(context, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo ${gate} && ${gates.wait(gate)}\n`);
  const buildId = gate;
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    // The first client leaves as soon as the build is accepted.
    await solve(cluster, context, { platforms: ['linux/amd64'], buildId, detach: true }, {
      onEvent: (e) => { if (e.accepted) throw Object.assign(new Error('leaving'), { leave: true }); },
    }).catch((err: { leave?: boolean }) => { if (!err.leave) throw err; });
    // Another client attaches while the build runs on; its step finishes only after the
    // first client has gone, so the result it gets was made without any client left.
    const replaying = (async () => {
      const events: SolveEvent[] = [];
      for await (const e of control.attach({ buildId, fromStart: true, cancelOnLeave: false }, bearer(cluster.token))) events.push(e as SolveEvent);
      return events;
    })();
    replaying.catch(() => undefined); // awaited below
    try {
      await gates.arrived(gate, { unless: replaying });
    } finally {
      gates.open(gate);
    }
    const replay = await replaying;
    assert.ok(replay[0].accepted, 'the replay starts at the beginning');
    assert.match(replay.find((e) => e.result)?.result?.digest ?? '', /^sha256:/, 'the build finished and the re-attached client got its result');
    await assert.rejects(async () => { for await (const _ of control.attach({ buildId, fromStart: true, cancelOnLeave: false }, bearer('not-a-token'))) { /* refused */ } },
      (err: { code: number }) => err.code === status.UNAUTHENTICATED);
    await assert.rejects(async () => { for await (const _ of control.attach({ buildId, fromStart: true, cancelOnLeave: false }, bearer(cluster.tokens.other))) { /* hidden */ } },
      (err: { code: number }) => err.code === status.NOT_FOUND, 'another tenant cannot see the build even knowing its id');
  } finally {
    control.close();
  }
});
