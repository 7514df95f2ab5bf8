// Taking a build over from a frontend that is gone (real Redis): frontends racing for one
// orphan never both win, an ended build is never claimed, and the stored request comes back
// whole (secrets included) although its key holds none.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import { BuildRecords, BuildSecrets, DEFAULT_KEYS, redisKeys } from '@buildyard/contracts';
import { SolveRequest } from '@buildyard/proto';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { BuildRequests } from './buildTakeover.js';

let service: RedisService;
let redis: Redis;
let records: BuildRecords;
let secrets: BuildSecrets;
let requests: BuildRequests;
before(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
  records = new BuildRecords(redis, DEFAULT_KEYS);
  secrets = new BuildSecrets(redis, randomBytes(32).toString('hex'), DEFAULT_KEYS);
  requests = new BuildRequests(redis, DEFAULT_KEYS, secrets);
});
after(async () => {
  redis?.disconnect();
  await service?.stop();
});

test('of frontends racing to take over an orphaned build exactly one wins; an ended build is never claimed', async () => {
  await records.create({ buildId: 'orphan', tenant: 't', platforms: [], coordinator: 'gone' });
  const won = await Promise.all(Array.from({ length: 6 }, (_, i) => requests.claim('orphan', 'gone', `frontend-${i}`)));
  assert.equal(won.filter(Boolean).length, 1);
  assert.equal((await records.get('orphan'))?.coordinator, `frontend-${won.indexOf(true)}`);
  assert.equal(await requests.claim('orphan', 'gone', 'late'), false, 'the record no longer names the dead frontend');

  await records.create({ buildId: 'ended', tenant: 't', platforms: [], coordinator: 'gone' });
  await records.update('ended', { status: 'succeeded' });
  assert.equal(await requests.claim('ended', 'gone', 'frontend-0'), false);
  assert.equal((await records.get('ended'))?.coordinator, 'gone');
});

test('a stored request comes back with its secrets and logins; the stored key holds neither', async () => {
  const req = SolveRequest.fromPartial({
    dockerfile: Buffer.from('FROM scratch\n'), platforms: ['linux/amd64'], outputs: [{ type: 'image', attrs: { name: 'r/x', push: 'true' } }],
    secrets: [{ id: 'token', value: Buffer.from('s3cr3t-value') }],
    registryAuth: [{ registry: 'r.example', username: 'u', password: 'registry-password', identityToken: '' }],
  });
  // The runner seals the secrets; the frontend stores the request.
  await secrets.put('b1', { secrets: { token: Buffer.from('s3cr3t-value').toString('base64') }, registryAuth: req.registryAuth }, 60_000);
  await requests.save('b1', req);
  const stored = (await redis.get(DEFAULT_KEYS.buildRequest('b1')))!;
  const plain = Buffer.from(stored, 'base64').toString('latin1');
  assert.ok(!plain.includes('s3cr3t-value') && !plain.includes('registry-password'), 'no secret in the stored request');
  const back = (await requests.load('b1'))!;
  assert.deepEqual(back.dockerfile.toString(), 'FROM scratch\n');
  assert.deepEqual(back.outputs, req.outputs);
  assert.deepEqual(back.secrets.map((s) => [s.id, Buffer.from(s.value).toString()]), [['token', 's3cr3t-value']]);
  assert.deepEqual(back.registryAuth, req.registryAuth);
  await requests.delete('b1');
  assert.equal(await requests.load('b1'), undefined);
});

test('the orphan sweep reads unfinished builds from their set: ended ones leave it, records left there by a killed process are dropped, and builds of older frontends join it', async () => {
  const keys = redisKeys('sweep');
  const sweep = new BuildRecords(redis, keys);
  await sweep.create({ buildId: 'a', tenant: 't', platforms: [], coordinator: 'f' });
  await sweep.create({ buildId: 'b', tenant: 't', platforms: [], coordinator: 'f' });
  await sweep.update('b', { status: 'running' });
  await sweep.create({ buildId: 'c', tenant: 't', platforms: [], coordinator: 'f' });
  await sweep.update('c', { status: 'failed', finishedMs: Date.now() });
  assert.deepEqual((await redis.smembers(keys.unfinishedBuilds)).sort(), ['a', 'b'], 'an ended build left the set when it ended');

  // A process killed between ending a record and leaving the set, and a record that expired.
  await redis.hset(keys.build('a'), 'status', 'succeeded');
  await redis.sadd(keys.unfinishedBuilds, 'expired');
  // A build an older frontend started: in the build list, not in the set.
  await redis.hset(keys.build('old'), { buildId: 'old', tenant: 't', status: 'running', platforms: '[]', createdMs: Date.now(), pushed: '[]', coordinator: 'f' });
  await redis.zadd(keys.builds, Date.now(), 'old');

  assert.deepEqual((await sweep.unfinished()).map((r) => r.buildId).sort(), ['b', 'old']);
  assert.deepEqual((await redis.smembers(keys.unfinishedBuilds)).sort(), ['b', 'old'], 'stale ids were dropped, the older build joined');
  await sweep.remove(['b', 'old']);
  assert.deepEqual(await redis.smembers(keys.unfinishedBuilds), []);
});
