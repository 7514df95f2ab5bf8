// Build ids are names within a tenant (real Redis): another tenant's use of a name changes no
// answer, the own tenant's does, and racing claims never share an id.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { BuildRecords, DEFAULT_KEYS } from '@buildyard/contracts';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { claimBuildId, internalBuildId, shownBuildId } from './buildIds.js';

let service: RedisService;
let redis: Redis;
let records: BuildRecords;
before(async () => {
  service = await startRedis();
  redis = new Redis(service.url);
  records = new BuildRecords(redis, DEFAULT_KEYS);
});
after(async () => {
  redis?.disconnect();
  await service?.stop();
});

async function start(tenant: string, name: string): Promise<string | undefined> {
  const id = await claimBuildId(redis, DEFAULT_KEYS, tenant, name, (i) => records.get(i));
  if (id) await records.create({ buildId: id, tenant, platforms: [], coordinator: 'test' });
  return id;
}

test('a name another tenant uses is free for this one; its own reuse is refused', async () => {
  assert.equal(await start('alice', 'release'), 'release');
  const bobs = await start('bob', 'release');
  assert.ok(bobs && bobs !== 'release' && shownBuildId(bobs) === 'release', `bob's build has its own id shown as his name: ${bobs}`);
  assert.equal(await internalBuildId(redis, DEFAULT_KEYS, 'bob', 'release'), bobs);
  assert.equal(await internalBuildId(redis, DEFAULT_KEYS, 'alice', 'release'), 'release');
  // What carol is told about "release" and about a name nobody used is the same.
  assert.equal(shownBuildId((await start('carol', 'release'))!), shownBuildId((await start('carol', 'fresh-name'))!).replace('fresh-name', 'release'));
  assert.equal(await start('alice', 'release'), undefined, 'alice already has a build named release');
  assert.equal(await start('bob', 'release'), undefined, 'so has bob');
});

test('a build recorded before names were claimed still holds its id', async () => {
  await records.create({ buildId: 'legacy', tenant: 'alice', platforms: [], coordinator: 'test' });
  assert.equal(await start('alice', 'legacy'), undefined);
  assert.notEqual(await start('bob', 'legacy'), 'legacy');
});

test('tenants racing for one name get different builds', async () => {
  const ids = await Promise.all(Array.from({ length: 8 }, (_, i) => start(`t${i}`, 'race')));
  assert.equal(new Set(ids).size, 8);
  assert.equal(ids.filter((id) => id === 'race').length, 1, 'exactly one holds the plain id');
  const owners = await Promise.all(ids.map(async (id) => (await records.get(id!))?.tenant));
  assert.deepEqual(owners, ids.map((_, i) => `t${i}`), 'every record belongs to the tenant that claimed it');
});
