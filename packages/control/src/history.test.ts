// Build history over real Redis: refs (id, prefix, ^N), step counts from the event stream,
// removal of records, streams and names, and tenant isolation as an attacker would try it.
import { test, before, after, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { status } from '@grpc/grpc-js';
import { BuildRecords, redisKeys, type RedisKeys } from '@buildyard/contracts';
import { ProgressWriter, progressStreamKey, type VertexRef } from '@buildyard/progress';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { claimBuildId, internalBuildId } from './buildIds.js';
import { BuildHistory } from './history.js';

let service: RedisService;
let redis: Redis;
let keys: RedisKeys;
let records: BuildRecords;
let history: BuildHistory;
let prefixes = 0;

before(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
});
after(async () => {
  redis?.disconnect();
  await service?.stop();
});
// Each test has its own key prefix: tests share the server, never each other's records.
beforeEach(() => {
  keys = redisKeys(`hist${++prefixes}`);
  records = new BuildRecords(redis, keys, { retentionMs: 3_600_000 });
  history = new BuildHistory(redis, keys, records);
});

const vertex = (digest: string, name: string): VertexRef => ({ digest, name, platform: 'linux/amd64', stage: '0', step: 1, steps: 2, workerId: 'w1', emulated: false });

/** A build as the frontend records it: claimed name, record, events, final state. */
async function build(tenant: string, name: string, outcome: 'succeeded' | 'failed' | 'running', extra: { target?: string } = {}): Promise<string> {
  const id = (await claimBuildId(redis, keys, tenant, name, (i) => records.get(i), records.retentionMs))!;
  await records.create({ buildId: id, tenant, platforms: ['linux/amd64'], coordinator: 'test', context: '/src/app', dockerfile: 'Dockerfile', target: extra.target ?? '', buildArgs: { A: '1' }, noCache: false, network: 'default' });
  const w = new ProgressWriter(redis, id, { keys, ttlSeconds: 3600 });
  await w.emit({ type: 'build.accepted', buildId: id, platforms: ['linux/amd64'] });
  await w.cached(vertex('sha256:a', '[1/3] FROM busybox'));
  await w.started(vertex('sha256:b', '[2/3] RUN make'), 10);
  w.log('sha256:b', Buffer.from('compiling\n'), 1);
  if (outcome === 'running') { await w.flush(); return id; }
  if (outcome === 'failed') {
    await w.failed(vertex('sha256:b', '[2/3] RUN make'), 10, 'exit code: 2');
    await w.emit({ type: 'build.error', message: 'exit code: 2' });
    await records.update(id, { status: 'failed', finishedMs: Date.now(), error: 'exit code: 2' });
  } else {
    await w.finished(vertex('sha256:b', '[2/3] RUN make'), 10);
    await w.started(vertex('sha256:c', '[3/3] COPY . .'), 20);
    await w.finished(vertex('sha256:c', '[3/3] COPY . .'), 20);
    await w.emit({ type: 'build.result', buildId: id, digest: 'sha256:idx', images: [{ platform: 'linux/amd64', manifestDigest: 'sha256:m', configDigest: 'sha256:c' }], pushed: ['r/app:1'], metadata: {}, verticesTotal: 3, verticesCached: 1, durationMs: 5 });
    await records.update(id, { status: 'succeeded', finishedMs: Date.now(), digest: 'sha256:idx', pushed: ['r/app:1'], verticesTotal: 3, verticesCached: 1 });
  }
  await w.close();
  return id;
}

/** Records are listed by creation time (ms): consecutive builds get distinct times. */
async function later(): Promise<void> {
  const t = Date.now();
  while (Date.now() === t) await new Promise((r) => setImmediate(r));
}

async function rejects(p: Promise<unknown>, code: number, message: RegExp): Promise<void> {
  await assert.rejects(p, (err: Error & { code?: number }) => {
    assert.equal(err.code, code, err.message);
    assert.match(err.message, message);
    return true;
  });
}

test('ls lists the tenant\'s records newest first with what each build was asked for', async () => {
  await build('alice', 'first', 'succeeded', { target: 'app' });
  await later();
  await build('alice', 'second', 'failed');
  const res = await history.list('alice', { ref: '', limit: 0, details: false, completedOnly: false });
  assert.deepEqual(res.records.map((r) => r.buildId), ['second', 'first']);
  const first = res.records[1];
  assert.equal(first.status, 'succeeded');
  assert.equal(first.context, '/src/app');
  assert.equal(first.target, 'app');
  assert.deepEqual(first.buildArgs, { A: '1' });
  assert.deepEqual([first.stepsTotal, first.stepsCompleted, first.stepsCached], [3, 3, 1]);
  assert.ok(res.nowMs >= first.finishedMs);
});

test('ls reads a failed build\'s steps from its events once, then from the summary kept beside its record', async () => {
  const id = await build('alice', 'broken', 'failed');
  const ls = async () => (await history.list('alice', { ref: '', limit: 0, details: false, completedOnly: false })).records[0];
  const first = await ls();
  assert.deepEqual([first.stepsTotal, first.stepsCompleted, first.stepsCached], [2, 2, 1]);
  const summaryKey = `${keys.build(id)}:steps`;
  const ttl = await redis.pttl(summaryKey);
  assert.ok(ttl > 0 && ttl <= await redis.pttl(keys.build(id)) + 1000, `the summary goes with the record (TTL ${ttl})`);
  // Without the stream, ls still shows the counts: they come from the summary now.
  await redis.del(progressStreamKey(id, keys));
  const again = await ls();
  assert.deepEqual([again.stepsTotal, again.stepsCompleted, again.stepsCached], [2, 2, 1]);
  await history.remove('alice', { refs: [id], all: false });
  assert.equal(await redis.exists(summaryKey), 0, 'rm removes the summary with the record');
});

test('details count steps from the event stream, failed builds too, with images and the failed step', async () => {
  const ok = await build('alice', 'ok', 'succeeded');
  const bad = await build('alice', 'bad', 'failed');
  const running = await build('alice', 'run', 'running');
  const one = async (ref: string) => (await history.list('alice', { ref, limit: 0, details: true, completedOnly: false })).records[0];
  const okRec = await one(ok);
  assert.deepEqual([okRec.stepsTotal, okRec.stepsCompleted, okRec.stepsCached], [3, 3, 1]);
  assert.deepEqual(okRec.images, [{ platform: 'linux/amd64', manifestDigest: 'sha256:m', configDigest: 'sha256:c' }]);
  assert.equal(okRec.logsKept, true);
  const badRec = await one(bad);
  assert.deepEqual([badRec.stepsTotal, badRec.stepsCompleted, badRec.stepsCached], [2, 2, 1]);
  assert.equal(badRec.errorStep, '[2/3] RUN make');
  assert.equal(badRec.error, 'exit code: 2');
  const runRec = await one(running);
  assert.deepEqual([runRec.stepsTotal, runRec.stepsCompleted], [2, 1], 'the running step is not completed');
});

test('refs: an exact id, a unique prefix, ^N from the latest; ambiguous and unknown refs are one-line errors', async () => {
  const a = await build('alice', 'web-frontend', 'succeeded');
  await later();
  const b = await build('alice', 'web-backend', 'succeeded');
  await later();
  const c = await build('alice', 'worker', 'succeeded');
  assert.equal((await history.resolve('alice', 'web-frontend')).buildId, a);
  assert.equal((await history.resolve('alice', 'web-b')).buildId, b);
  assert.equal((await history.resolve('alice', '^0')).buildId, c);
  assert.equal((await history.resolve('alice', '^2')).buildId, a);
  await rejects(history.resolve('alice', 'web-'), status.INVALID_ARGUMENT, /matches several builds \(web-backend, web-frontend\)/);
  await rejects(history.resolve('alice', '^3'), status.NOT_FOUND, /no build found at offset \^3/);
  await rejects(history.resolve('alice', '^x'), status.INVALID_ARGUMENT, /\^N takes a number/);
  await rejects(history.resolve('alice', 'nothing'), status.NOT_FOUND, /no build found for ref "nothing"/);
});

test('rm removes the record, its event stream and its name (which can be used again); a running build is refused', async () => {
  const id = await build('alice', 'gone', 'succeeded');
  const running = await build('alice', 'busy', 'running');
  assert.equal(await redis.exists(progressStreamKey(id, keys)), 1);
  const res = await history.remove('alice', { refs: ['gone'], all: false });
  assert.deepEqual(res.deleted, ['gone']);
  assert.equal(await records.get(id), undefined);
  assert.equal(await redis.exists(progressStreamKey(id, keys)), 0);
  await rejects(history.resolve('alice', 'gone'), status.NOT_FOUND, /no build found/);
  assert.equal(await claimBuildId(redis, keys, 'alice', 'gone', (i) => records.get(i)), 'gone', 'the name is free again');
  await rejects(history.remove('alice', { refs: ['busy'], all: false }), status.FAILED_PRECONDITION, /build busy is still queued: wait for it to finish or cancel it/);
  assert.ok(await records.get(running));
  // A bad ref among good ones removes nothing.
  const kept = await build('alice', 'kept', 'succeeded');
  await rejects(history.remove('alice', { refs: ['kept', 'nope'], all: false }), status.NOT_FOUND, /nope/);
  assert.ok(await records.get(kept));
  // --all: every finished build, not the running one.
  const all = await history.remove('alice', { refs: [], all: true });
  assert.deepEqual(all.deleted, ['kept']);
  assert.ok(await records.get(running));
});

test('attacker: another tenant\'s records are never listed, matched by id, prefix or ^N, inspected or removed', async () => {
  const victim = await build('alice', 'secret-release', 'succeeded');
  const victimUuid = await build('alice', '3f1c9a7e-0000-4000-8000-000000000001', 'failed');
  // Mallory's own history is empty of alice's builds...
  const listed = await history.list('mallory', { ref: '', limit: 0, details: true, completedOnly: false });
  assert.deepEqual(listed.records, []);
  await rejects(history.resolve('mallory', '^0'), status.NOT_FOUND, /no build found at offset/);
  // ...and every ref to them answers as for a build that never existed.
  for (const ref of ['secret-release', 'secret', 's', victimUuid, '3f1c']) {
    await rejects(history.list('mallory', { ref, limit: 0, details: true, completedOnly: false }), status.NOT_FOUND, new RegExp(`no build found for ref "${ref}"`));
    await rejects(history.remove('mallory', { refs: [ref], all: false }), status.NOT_FOUND, /no build found/);
  }
  assert.deepEqual((await history.remove('mallory', { refs: [], all: true })).deleted, []);
  // Mallory's own build of the same name is hers alone; removing it leaves alice's.
  const mine = await build('mallory', 'secret-release', 'succeeded');
  assert.notEqual(mine, victim);
  assert.equal((await history.resolve('mallory', 'secret-release')).buildId, mine);
  assert.deepEqual((await history.remove('mallory', { refs: ['secret-release'], all: false })).deleted, ['secret-release']);
  assert.equal((await records.get(victim))?.tenant, 'alice');
  assert.equal(await redis.exists(progressStreamKey(victim, keys)), 1);
  assert.equal(await internalBuildId(redis, keys, 'alice', 'secret-release'), victim, 'alice keeps her name');
  assert.equal((await history.list('alice', { ref: '', limit: 0, details: false, completedOnly: false })).records.length, 2);
});

test('records and streams are kept for the configured retention', async () => {
  const id = await build('alice', 'kept-for', 'succeeded');
  const recordTtl = await redis.pttl(keys.build(id));
  assert.ok(recordTtl > 3_500_000 && recordTtl <= 3_600_000, `record TTL ${recordTtl}`);
  const streamTtl = await redis.ttl(progressStreamKey(id, keys));
  assert.ok(streamTtl > 3500 && streamTtl <= 3600, `stream TTL ${streamTtl}`);
});

test('the attacker with a busy neighbour: a tenant\'s history and status read its own records, not every tenant\'s, and records kept from before the tenant lists are still found', async () => {
  // 1,500 records of another tenant, newest; the quiet tenant's 2 builds are older than all of them.
  const quietOld = await build('quiet', 'old-1', 'succeeded');
  await later();
  const quietNew = await build('quiet', 'old-2', 'failed');
  const pipe = redis.multi();
  const now = Date.now();
  for (let i = 0; i < 1500; i++) {
    const id = `busy-${i}`;
    pipe.hset(keys.build(id), { buildId: id, tenant: 'busy', status: 'succeeded', platforms: '[]', createdMs: now + i, finishedMs: now + i, digest: '', error: '', verticesTotal: 0, verticesCached: 0, pushed: '[]', coordinator: 'test' });
    pipe.zadd(keys.builds, now + i, id).zadd(keys.tenantBuilds('busy'), now + i, id);
  }
  await pipe.exec();
  const hgetallCalls = async () => Number(/cmdstat_hgetall:calls=(\d+)/.exec(await redis.info('commandstats'))?.[1] ?? 0);
  // A new deployment's one-time indexing of older records (below) is not what is measured.
  await records.tenantIdsNewestFirst('quiet', 0, 1);
  let before = await hgetallCalls();
  const listed = await history.list('quiet', { ref: '', limit: 0, details: false, completedOnly: false });
  assert.deepEqual(listed.records.map((r) => r.buildId), ['old-2', 'old-1']);
  assert.ok(await hgetallCalls() - before < 20, `history ls read ${await hgetallCalls() - before} records`);
  before = await hgetallCalls();
  assert.deepEqual((await records.list('quiet', 1000)).map((r) => r.buildId), [quietNew, quietOld]);
  assert.ok(await hgetallCalls() - before < 10, 'Status reads the tenant\'s own records');
  // A deployment upgraded with records from before the tenant lists: they are indexed once.
  await redis.del(keys.tenantBuilds('quiet'), keys.tenantBuildsIndexed);
  const upgraded = new BuildRecords(redis, keys, { retentionMs: 3_600_000 });
  assert.deepEqual((await upgraded.list('quiet', 1000)).map((r) => r.buildId), [quietNew, quietOld]);
  assert.deepEqual((await upgraded.list('busy', 2)).map((r) => r.buildId), ['busy-1499', 'busy-1498']);
});
