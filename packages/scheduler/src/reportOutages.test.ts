// reportOutages (@buildyard/contracts, redisClient.ts): a Redis outage is logged once, however
// many reconnects fail, and its end once; ioredis prints nothing as unhandled meanwhile.
// untilRedisGone: work waits as long as it takes while Redis answers, and is given up once
// Redis has not answered for the grace period. abandonRedis: a client given up on fails what it
// holds and whatever comes after, even between two reconnect attempts.
import { after, before, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Redis } from 'ioredis';
import { startRedis, until, type RedisService } from '@buildyard/testkit';
import { abandonRedis, reportOutages, untilRedisGone } from '@buildyard/contracts';
import { relay } from './relay.test-util.js';

let redis: RedisService;
before(async () => { redis = await startRedis(); });
after(async () => { await redis?.stop(); });

/** A client (commands wait for Redis, as the fleet's do) connected through a relay the test may cut or freeze. */
async function clientThroughRelay(t: TestContext) {
  const proxy = await relay(new URL(redis.url));
  t.after(() => proxy.stop());
  const viaProxy = new URL(redis.url);
  viaProxy.port = String(proxy.port);
  const client = new Redis(viaProxy.toString(), { maxRetriesPerRequest: null });
  t.after(() => client.disconnect());
  client.on('error', () => undefined);
  await once(client, 'ready');
  return { proxy, client };
}

test('a Redis outage is logged once however many reconnects fail, and its end once', async (t) => {
  const target = new URL(redis.url);
  const proxy = await relay(target);
  t.after(() => proxy.stop());
  const viaProxy = new URL(redis.url);
  viaProxy.port = String(proxy.port);
  const client = new Redis(viaProxy.toString(), { maxRetriesPerRequest: null });
  t.after(() => client.disconnect());
  const warned: string[] = [];
  const told: string[] = [];
  reportOutages(client, { warn: (fields, message) => warned.push(`${message} (${fields.err})`), info: (_fields, message) => told.push(message) });
  let errors = 0;
  client.on('error', () => { errors++; });
  await once(client, 'ready');

  await proxy.cut();
  await until('three failed reconnects', () => errors >= 3, 30_000);
  assert.equal(warned.length, 1, warned.join('\n'));
  assert.match(warned[0]!, /^Redis does not answer: retrying until it does \(/);
  assert.deepEqual(told, []);

  await proxy.restore();
  assert.equal(await client.ping(), 'PONG');
  await until('the recovery logged', () => told.length > 0, 30_000);
  assert.deepEqual(told, ['Redis answers again']);
  assert.equal(warned.length, 1);
});

test('work waited for with untilRedisGone settles as it does while Redis answers, and is given up during an outage', async (t) => {
  const { proxy, client } = await clientThroughRelay(t);

  // Redis up: the work's own outcome, however it ends (a grace long enough that a busy machine's
  // late timers cannot take the probe's PING for an outage).
  assert.equal(await untilRedisGone(client, client.ping(), 30_000), 'PONG');
  await assert.rejects(untilRedisGone(client, Promise.reject(new Error('the work failed')), 30_000), /the work failed/);

  // Redis cut: work that waits on it (a command) is given up, with what happened.
  await proxy.cut();
  const pending = client.get('never-answered');
  await assert.rejects(untilRedisGone(client, pending, 50), /Redis has not answered for 50 ms/);
  await proxy.restore();
  assert.equal(await pending, null, 'the command itself goes on and gets its reply once Redis is back');
});

test('abandonRedis fails the commands a client between reconnects holds, and every later one, at once', { timeout: 20_000 }, async (t) => {
  const { proxy, client } = await clientThroughRelay(t);
  await proxy.cut();
  await once(client, 'reconnecting');
  // Queued while Redis is away: disconnect() alone would leave it waiting for ever.
  const queued = client.get('never-answered');
  abandonRedis(client, new Error('stopping without Redis'));
  await assert.rejects(queued, /stopping without Redis/);
  await assert.rejects(client.get('sent-after'), /enableOfflineQueue/);
  // Redis back: the abandoned client stays closed.
  await proxy.restore();
  await assert.rejects(client.get('sent-after-restore'), /enableOfflineQueue|Connection is closed/);
});

test('untilRedisGone gives up on a Redis that keeps the connection open but answers nothing', { timeout: 20_000 }, async (t) => {
  const { proxy, client } = await clientThroughRelay(t);
  // A stopped Redis: no connection event, no reply.
  proxy.freeze();
  const pending = client.get('never-answered');
  pending.catch(() => undefined);
  await assert.rejects(untilRedisGone(client, pending, 200), /Redis has not answered for 200 ms/);
  assert.equal(client.status, 'ready', 'the connection itself never dropped');
});
