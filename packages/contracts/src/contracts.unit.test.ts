import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  redisKeys, DEFAULT_KEYS, sealSecrets, unsealSecrets, secretsKey, stagePayloadSchema, stageResultSchema, buildRecordFromHash,
  jsonFromRedis, MalformedRedisDataError, describeQueueName, platformQueueName, workerQueueName, workerHashSchema, fromRedis,
  placementViewSchema, parseRedisUrl, openRedis,
} from './index.js';

test('every key lives under the one configured prefix', () => {
  const k = redisKeys('team-a:by');
  const all = [k.builds, k.build('b'), k.buildCancels, k.buildSecrets('b'), k.frontend('f'), k.progress('b'), k.cache.blobRefs, k.cache.records('t'), k.cache.lru('t'),
    k.leases.expiries, k.leases.build('b'), k.leases.ended('b'), k.scheduler.build('b'), k.scheduler.bullPrefix, k.scheduler.workerBeats,
    k.scheduler.platformWorkers('linux/amd64', 'native'), k.scheduler.idleConsumers('stages-w-w'), k.scheduler.wakeChannel('w')];
  // The scheduler's keys wrap their prefix in a hash tag (one Redis Cluster slot): `{team-a:by:sched}:...`.
  for (const key of all) assert.ok(key.replace(/^\{([^{}]+)\}/, '$1').startsWith('team-a:by:'), key);
  const sched = [k.scheduler.build('b'), k.scheduler.stage('b|p|s'), k.scheduler.bullPrefix, k.scheduler.workerBeats, k.scheduler.config,
    k.scheduler.idleConsumers('q'), k.scheduler.tenantLimit('t'), k.scheduler.queues];
  for (const key of sched) assert.ok(key.startsWith('{team-a:by:sched}:'), key);
  assert.equal(k.cache.tenantOfLru(k.cache.lru('acme')), 'acme');
  // Keys written by one MULTI or read by one pipeline share a hash tag (one Redis Cluster slot).
  const tag = (key: string) => /^\{([^{}]+)\}/.exec(key)?.[1];
  for (const key of [k.unfinishedBuilds, k.build('b'), k.build('c')]) assert.equal(tag(key), tag(k.builds), key);
  for (const key of [k.ssh.open('b'), k.ssh.conn('b', 'c', 'up')]) assert.equal(tag(key), tag(k.ssh.offer('b')), key);
  for (const key of [k.leases.build('b'), k.leases.build('b/scope'), k.leases.ended('b')]) assert.equal(tag(key), tag(k.leases.expiries), key);
  assert.notEqual(tag(k.ssh.offer('b')), tag(k.ssh.offer('c')), 'builds\' relays spread over slots');
  assert.equal(tag(k.builds), 'team-a:by:builds');
  assert.equal(DEFAULT_KEYS.build('x'), '{buildyard:builds}:build:x');
  assert.equal(DEFAULT_KEYS.leases.build('x'), '{buildyard:leases}:build:x');
  assert.equal(DEFAULT_KEYS.cache.lru('t'), '{buildyard:cache}:t:lru');
  assert.throws(() => redisKeys('bad prefix'), /invalid Redis key prefix "bad prefix"/);
});

test('queue names round-trip through describeQueueName', () => {
  assert.deepEqual(describeQueueName(platformQueueName('linux/arm64', 'emulated')), { kind: 'emulated', platform: 'linux/arm64' });
  assert.deepEqual(describeQueueName(workerQueueName('w:1')), { kind: 'worker', workerId: 'w-1' });
  assert.equal(describeQueueName('other'), undefined);
});

test('sealed secrets open only with the same key and build id', () => {
  const key = secretsKey(randomBytes(32).toString('hex'))!;
  const payload = { secrets: { tok: Buffer.from('s3cret').toString('base64') }, registryAuth: [{ registry: 'r', username: 'u', password: 'p', identityToken: '' }] };
  const sealed = sealSecrets(key, 'b1', payload);
  assert.ok(!Buffer.from(sealed, 'base64').toString('latin1').includes('s3cret'));
  assert.deepEqual(unsealSecrets(key, 'b1', sealed), payload);
  assert.throws(() => unsealSecrets(key, 'b2', sealed), /cannot open the secrets of build b2/);
  assert.throws(() => unsealSecrets(randomBytes(32), 'b1', sealed), /BUILDYARD_SECRETS_KEY differs/);
  assert.throws(() => secretsKey('abcd'), /64 hex characters/);
});

test('build record hashes are validated and typed', () => {
  const record = buildRecordFromHash({ buildId: 'b', tenant: 't', status: 'running', platforms: '["linux/amd64"]', createdMs: '5', finishedMs: '0', digest: '', error: '', verticesTotal: '3', verticesCached: '1', pushed: '[]' });
  assert.deepEqual(record.platforms, ['linux/amd64']);
  assert.equal(record.verticesTotal, 3);
  assert.equal(record.coordinator, '');
  assert.throws(() => buildRecordFromHash({ buildId: 'b', tenant: 't', status: 'exploded', createdMs: '1' }), (err: Error) => err instanceof MalformedRedisDataError && /record of build b.*status/.test(err.message));
});

test('stage payloads, results and worker hashes are checked when read back', () => {
  const stage = { id: 'linux/amd64#0', index: 0, platform: 'linux/amd64', base: { kind: 'scratch' }, dependsOn: [], vertices: [], config: {}, history: [], cacheKey: 'k', noCache: false };
  assert.equal(jsonFromRedis(stagePayloadSchema, JSON.stringify({ stage, contextId: '', noCache: false, network: '' }), 'payload').stage.id, 'linux/amd64#0');
  assert.throws(() => jsonFromRedis(stagePayloadSchema, JSON.stringify({ stage: { ...stage, base: { kind: 'mystery' } }, contextId: '', noCache: false, network: '' }), 'the payload of stage x'), /the payload of stage x in Redis is malformed \(stage\.base\.kind/);
  assert.throws(() => jsonFromRedis(stageResultSchema, '{"stageId":1}', 'a result'), MalformedRedisDataError);
  assert.throws(() => jsonFromRedis(stageResultSchema, 'not json', 'a result'), /not JSON/);
  const w = fromRedis(workerHashSchema, { nativePlatforms: '["linux/amd64"]', capacity: '2', draining: '1' }, 'worker w');
  assert.equal(w.draining, true);
  assert.deepEqual(w.emulatedPlatforms, []);
});

test('the placement view from the registry\'s Lua script is validated, its platform lists parsed', () => {
  const text = JSON.stringify({
    platforms: { 'linux/amd64': { native: 2, emulated: 0 } },
    holders: { w1: { capacity: 4, running: 1, draining: false, nativePlatforms: '["linux/amd64"]', emulatedPlatforms: '[]', queued: 3 } },
  });
  const view = jsonFromRedis(placementViewSchema, text, 'the placement view');
  assert.deepEqual(view.holders.w1, { capacity: 4, running: 1, draining: false, nativePlatforms: ['linux/amd64'], emulatedPlatforms: [], queued: 3 });
  // cjson writes an empty Lua table as an object.
  assert.deepEqual(jsonFromRedis(placementViewSchema, '{"platforms":{},"holders":{}}', 'the placement view'), { platforms: {}, holders: {} });
  assert.throws(() => jsonFromRedis(placementViewSchema, JSON.stringify({ platforms: {}, holders: { w1: { capacity: 'x' } } }), 'the placement view'),
    (err: Error) => err instanceof MalformedRedisDataError && /the placement view in Redis is malformed \(holders\.w1\.capacity: /.test(err.message));
});

test('a redis.url names one node, or a Redis Cluster\'s seed nodes separated by commas', () => {
  assert.deepEqual(parseRedisUrl('redis://:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002/0'), {
    tls: false, nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 6379 }, { host: '::1', port: 7002 }], password: 'p@ss', db: 0,
  });
  assert.deepEqual(parseRedisUrl('rediss://user:pw@redis.example:6380'), { tls: true, nodes: [{ host: 'redis.example', port: 6380 }], username: 'user', password: 'pw', db: 0 });
  assert.deepEqual(parseRedisUrl('redis://10.0.0.3:6379/2?family=6').nodes, [{ host: '10.0.0.3', port: 6379 }]);
  assert.throws(() => parseRedisUrl('redis://:secret@a:1,b:x'), (err: Error) => /"b:x" is not host\[:port\]/.test(err.message) && !err.message.includes('secret'));
  assert.throws(() => openRedis({ url: 'redis://a:1,b:2' }), /names several nodes: set redis.cluster/);
  assert.throws(() => openRedis({ url: 'redis://a:1/2', cluster: true }), /Redis Cluster has only database 0; drop the \/2/);
});
