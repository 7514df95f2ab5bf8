// keepSubscribed (@buildyard/contracts, redisClient.ts): a consumer's wake-up channel must stay subscribed through
// whatever ioredis does to the connection, or the consumer sits in idle sets no wake-up reaches.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { startRedis, until, type RedisService } from '@buildyard/testkit';
import { keepSubscribed } from '@buildyard/contracts';

let redis: RedisService;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

async function subscribers(probe: Redis, channel: string): Promise<number> {
  return Number(((await probe.pubsub('NUMSUB', channel)) as [string, number])[1]);
}

test('a subscription written during the connection handshake survives the reconnect it causes (redis/ioredis#2037)', async (t) => {
  const probe = new Redis(redis.url);
  const sub = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: null });
  t.after(() => { sub.disconnect(); probe.disconnect(); });
  const errors: Error[] = [];
  sub.on('error', (err: Error) => errors.push(err));
  // What StageConsumer.start() did when it got to its subscribe() before the connection was
  // ready: ioredis writes the SUBSCRIBE at once, its ready check then fails (INFO in subscriber
  // mode), it reconnects, and the new connection has no subscription.
  sub.once('connect', () => { sub.subscribe('wake').catch(() => undefined); });
  let confirmed = 0;
  const subscribed = keepSubscribed(sub, ['wake'], (err) => errors.push(err), () => { confirmed++; });
  await sub.connect().catch(() => undefined);
  await subscribed;
  // The failed ready check, then the connection that came back ready: subscribed on it (ioredis
  // alone leaves it with none).
  assert.ok(errors.some((e) => /subscriber mode/.test(e.message)), `the handshake's SUBSCRIBE did not fail ioredis' ready check: ${errors.map((e) => e.message).join('; ')}`);
  assert.equal(confirmed, 1);
  assert.equal(await subscribers(probe, 'wake'), 1);
  const got = once(sub, 'message');
  await probe.publish('wake', 'q');
  assert.deepEqual(await got, ['wake', 'q']);
});

test('a subscriber connection killed by the server is subscribed again, and each subscription is reported', async (t) => {
  const probe = new Redis(redis.url);
  const sub = new Redis(redis.url, { maxRetriesPerRequest: null, connectionName: 'keep-subscribed-kill' });
  t.after(() => { sub.disconnect(); probe.disconnect(); });
  sub.on('error', () => undefined);
  let confirmed = 0;
  await keepSubscribed(sub, ['wake2'], () => undefined, () => { confirmed++; });
  const before = confirmed;
  await probe.client('KILL', 'TYPE', 'pubsub');
  await until('subscribed again after the kill', async () => confirmed > before && sub.status === 'ready' && await subscribers(probe, 'wake2') === 1);
  const got = once(sub, 'message');
  await probe.publish('wake2', 'again');
  assert.deepEqual(await got, ['wake2', 'again']);
});
