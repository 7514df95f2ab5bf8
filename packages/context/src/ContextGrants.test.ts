// Both grant stores answer alike: per tenant, for context ids and for contents; Redis's also
// forgets grants older than its retention. Against a real Redis.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { startRedis, type RedisService } from '@buildyard/testkit';
import { FsContextGrants, RedisContextGrants, contextGrantKeys, type ContextGrants } from './ContextGrants.js';

let redisService: RedisService;
let redis: Redis;
let tmp: string;
before(async () => {
  redisService = await startRedis();
  redis = new Redis(redisService.url);
  tmp = await mkdtemp(join(tmpdir(), 'buildyard-grants-'));
});
after(async () => {
  redis?.disconnect();
  await redisService?.stop();
  if (tmp) await rm(tmp, { recursive: true, force: true });
});

const sha = (s: string) => 'sha256:' + createHash('sha256').update(s).digest('hex');

for (const kind of ['fs', 'redis'] as const) {
  test(`${kind} grants: per tenant, for context ids and contents; malformed ids are never granted`, async () => {
    const grants: ContextGrants = kind === 'fs' ? new FsContextGrants(join(tmp, 'fs')) : new RedisContextGrants(redis, { prefix: 'grants-test' });
    const ctx = sha(`${kind} context`);
    const files = Array.from({ length: 2500 }, (_, i) => sha(`${kind} file ${i}`));
    assert.equal(await grants.hasContext('alice', ctx), false);
    await grants.grantContext('alice', ctx);
    await grants.grantContent('alice', files);
    assert.equal(await grants.hasContext('alice', ctx), true);
    assert.equal(await grants.hasContext('bob', ctx), false);
    assert.equal(await grants.hasContext('alice', 'sha256:../../etc'), false);
    const asked = [files[0]!, sha('never'), files[2499]!, 'not a digest'];
    assert.deepEqual(await grants.hasContent('alice', asked), [true, false, true, false]);
    assert.deepEqual(await grants.hasContent('bob', asked), [false, false, false, false]);
    // Many at once (the fs store then lists each fan-out directory instead of asking each file).
    const never = Array.from({ length: 2500 }, (_, i) => sha(`${kind} never ${i}`));
    assert.deepEqual(await grants.hasContent('alice', [...never, ...files]), [...never.map(() => false), ...files.map(() => true)]);
    assert.ok((await grants.hasContent('bob', files)).every((b) => b === false), 'another tenant has none of them');
    // Tenant names that are not path- or key-like still stay apart.
    await grants.grantContext('../alice', sha('other'));
    assert.equal(await grants.hasContext('alice', sha('other')), false);
  });
}

test('redis grants older than the retention are gone, and a grant renews them', async () => {
  const grants = new RedisContextGrants(redis, { prefix: 'grants-retention', retentionMs: 3600_000 });
  const keys = contextGrantKeys('grants-retention');
  const old = sha('old file');
  // As if granted two hours ago.
  await redis.zadd(keys.content('alice'), Date.now() - 7200_000, old);
  assert.deepEqual(await grants.hasContent('alice', [old]), [false]);
  await grants.grantContent('alice', [old]);
  assert.deepEqual(await grants.hasContent('alice', [old]), [true]);
  await redis.zadd(keys.content('alice'), Date.now() - 7200_000, sha('stale'));
  await grants.grantContent('alice', [sha('fresh')]);
  assert.equal(await redis.zscore(keys.content('alice'), sha('stale')), null, 'a grant drops the expired ones');
  assert.ok((await redis.pttl(keys.content('alice'))) > 0, 'an idle tenant\'s grants expire as a whole');
});

test('fs content grants stay empty files, and granting goes on when the grant they link to is dropped', async () => {
  const root = join(tmp, 'fs-links');
  const grants = new FsContextGrants(root);
  const first = Array.from({ length: 100 }, (_, i) => sha(`linked ${i}`));
  await grants.grantContent('alice', first);
  const path = (d: string) => join(root, 'tenants', 'alice', 'content', d.slice(7, 9), d.slice(7));
  const st = await stat(path(first[50]!));
  assert.equal(st.size, 0);
  assert.ok(st.nlink > 1, 'grants share an inode (a link each, not a new file)');
  // Every grant dropped (their contents were collected), then new ones made by the same instance.
  await grants.dropContentGrants(first);
  assert.ok((await grants.hasContent('alice', first)).every((b) => b === false));
  const later = Array.from({ length: 100 }, (_, i) => sha(`later ${i}`));
  await grants.grantContent('alice', later);
  assert.ok((await grants.hasContent('alice', later)).every((b) => b === true));
  assert.ok((await grants.hasContent('alice', first)).every((b) => b === false), 'a dropped grant does not come back through a link');
  assert.ok((await grants.hasContent('bob', later)).every((b) => b === false));
});
