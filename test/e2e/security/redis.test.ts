// Issue 14, item 2 (Redis): Redis always requires a password. An attacker who can reach its
// port (as a RUN with host network could) but does not know the password gets NOAUTH for every
// command: it can neither list builds, read progress logs nor plant a cache record.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { solve } from '../grpcClient.js';

let cluster: Cluster;
let work: string;
const nonce = `${process.pid}${Date.now()}`;

before(async () => {
  cluster = await startCluster({ workers: 1 });
  work = mkdtempSync(join(tmpdir(), 'buildyard-redis-attack-'));
});
after(async () => {
  try {
    await cluster?.stop();
  } finally {
    if (work) rmSync(work, { recursive: true, force: true });
  }
});

/** Sends raw RESP commands (inline form, as `nc` or `redis-cli` without -a would) and returns one reply per command. */
function rawRedis(port: number, commands: string[]): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    const replies = () => text.split('\r\n').filter(Boolean);
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(commands.map((c) => `${c}\r\n`).join('')));
    socket.on('data', (d: string) => {
      text += d;
      if (replies().length >= commands.length) { socket.destroy(); resolve(replies()); }
    });
    socket.once('error', reject);
    socket.once('close', () => resolve(replies()));
  });
}

test('Redis refuses every command from a process that knows its port but not its password', async () => {
  // A build first, so there are build records, progress streams and cache records to steal.
  const dir = join(work, 'victim');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo victim-${nonce}\n`);
  const victim = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.equal(victim.error, undefined, victim.error?.message);

  const insider = new Redis(cluster.redis.url);
  try {
    const keys = await insider.keys('*');
    assert.ok(keys.some((k) => k.includes(victim.result!.buildId)), 'the build left keys an attacker would want');
    assert.equal(((await insider.config('GET', 'protected-mode')) as string[])[1], 'yes', 'protected mode is on');
    const cacheKey = keys.find((k) => k.startsWith(DEFAULT_KEYS.cache.records('default')));
    assert.ok(cacheKey, `the build left a cache record (keys: ${keys.slice(0, 20).join(', ')})`);
    const cacheBefore = JSON.stringify(await dump(insider, cacheKey));

    const attack = [
      'PING', 'KEYS *', 'SCAN 0', 'INFO', 'CLIENT LIST', 'CONFIG GET requirepass', 'DBSIZE',
      `GET ${cacheKey}`, `HGETALL ${cacheKey}`, `SET ${cacheKey} planted-${nonce}`, `DEL ${cacheKey}`,
      `XRANGE ${DEFAULT_KEYS.progress(victim.result!.buildId)} - +`, 'SUBSCRIBE anything', 'FLUSHALL', 'SHUTDOWN NOSAVE',
    ];
    const replies = await rawRedis(cluster.redis.port, attack);
    assert.equal(replies.length, attack.length, `one reply per command: ${replies.join(' | ')}`);
    replies.forEach((reply, i) => assert.match(reply, /^-NOAUTH/, `${attack[i]} was answered: ${reply}`));

    // Guessing does not help either: wrong passwords (and the empty one) are refused.
    for (const guess of ['', 'redis', 'buildyard', 'default wrong']) {
      const [authReply, keysReply] = await rawRedis(cluster.redis.port, [`AUTH ${guess}`.trim(), 'KEYS *']);
      assert.match(authReply, /^-(WRONGPASS|ERR)/, `AUTH ${guess}`);
      assert.match(keysReply, /^-NOAUTH/, `KEYS after AUTH ${guess}`);
    }
    // ioredis without a password: the same refusal as a client library would see it.
    const noPassword = new Redis({ host: '127.0.0.1', port: cluster.redis.port, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
    noPassword.on('error', () => {});
    try {
      await noPassword.connect();
      await assert.rejects(noPassword.keys('*'), /NOAUTH/);
    } finally { noPassword.disconnect(); }

    // Nothing the attacker sent took effect: Redis still runs and holds the same keys.
    assert.equal(JSON.stringify(await dump(insider, cacheKey)), cacheBefore, 'the cache record is unchanged');
    // (The scheduler's own sets come and go as workers idle: the keys to check are the victim's.)
    const after = new Set(await insider.keys('*'));
    const targets = keys.filter((k) => k.includes(victim.result!.buildId) || k.startsWith(DEFAULT_KEYS.cache.records('default')));
    assert.deepEqual(targets.filter((k) => !after.has(k)), [], 'no key of the build or the cache was removed');
  } finally {
    insider.disconnect();
  }

  // The cluster itself (frontend and workers) reaches Redis with the password: a build still runs.
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo after-${nonce}\n`);
  const after = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.equal(after.error, undefined, after.error?.message);
  assert.match(after.logs, new RegExp(`after-${nonce}`));
});

/** A key's value whatever its type, to compare before and after the attack. */
async function dump(redis: Redis, key: string): Promise<unknown> {
  const type = await redis.type(key);
  if (type === 'hash') return redis.hgetall(key);
  if (type === 'string') return redis.get(key);
  if (type === 'zset') return redis.zrange(key, 0, -1, 'WITHSCORES');
  if (type === 'set') return (await redis.smembers(key)).sort();
  if (type === 'list') return redis.lrange(key, 0, -1);
  return type;
}
