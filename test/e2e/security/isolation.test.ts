// Issue 9, isolation: RUN's default network cannot reach the cluster and RUN cannot see other builds; secrets never
// reach layers, logs, progress, Redis or the state directories; one tenant cannot see another
// tenant's cache, builds or logs even knowing their ids; requests without a valid token fail.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { credentials, status } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { ControlClient, type SolveEvent } from '@buildyard/proto';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { bearer, solve } from '../grpcClient.js';
import { buildStatus, diskUsage, unary } from './clusterCalls.js';
import { solveRaw } from './solveRaw.js';
import { ContextDirs } from './contextDirs.js';

let cluster: Cluster;
let contexts: ContextDirs | undefined;
const nonce = `${process.pid}${Date.now()}`;

before(async () => {
  cluster = await startCluster({ workers: 1, tenants: ['alice', 'bob'] });
  contexts = new ContextDirs('isolation');
});
after(async () => {
  await cluster?.stop();
  contexts?.remove();
});

function context(name: string, dockerfile: string): string {
  return contexts!.make(name, dockerfile);
}

test('RUN\'s default network has its own interface but no way to the cluster: the registry port cannot be reached', async () => {
  // Egress to the outside is shown in network.test.ts (issue 23); here: not the cluster.
  const port = cluster.registry.host.split(':')[1];
  const probe = (host: string, tag: string) => `(timeout 10 wget -q -O - http://${host}:${port}/v2/ && echo REACHED-${tag}-${nonce}) || echo BLOCKED-${tag}-${nonce}`;
  const dir = context('net', `FROM ${cluster.busybox.reference}\nRUN cat /proc/net/dev; ${probe('127.0.0.1', 'lo')}; ${probe('$(ip route | awk \'/default/ {print $3}\')', 'gw')}\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  const interfaces = [...outcome.logs.matchAll(/^\s*([a-z0-9]+):\s+\d/gm)].map((m) => m[1]).sort();
  assert.deepEqual(interfaces, ['eth0', 'lo'], `interfaces seen by RUN: ${outcome.logs}`);
  for (const tag of ['lo', 'gw']) assert.match(outcome.logs, new RegExp(`BLOCKED-${tag}-${nonce}`));
  assert.doesNotMatch(outcome.logs, new RegExp(`REACHED-\\w+-${nonce}`));
});

test('a RUN cannot see another build\'s files or processes while both run', async () => {
  const a = context('see-a', `FROM ${cluster.busybox.reference}\nRUN echo private > /private-${nonce} && echo a-wrote-${nonce} && sleep 4 && echo a-done\n`);
  const b = context('see-b', `FROM ${cluster.busybox.reference}\nRUN find / -name 'private-${nonce}' 2>/dev/null; echo procs: $(ls /proc | grep -c '^[0-9]'); echo b-done-${nonce}\n`);
  // b starts once a says its file is written (not after a guessed delay), so b's search can
  // only come up empty because the file is invisible, not because it did not exist yet.
  let aWrote!: () => void;
  const written = new Promise<void>((r) => { aWrote = r; });
  const buildA = solve(cluster, a, { platforms: ['linux/amd64'] }, { onEvent: (e) => { if (e.log?.data.toString().includes(`a-wrote-${nonce}`)) aWrote(); } });
  const buildB = Promise.race([written, buildA]).then(() => solve(cluster, b, { platforms: ['linux/amd64'] }));
  const [ra, rb] = await Promise.all([buildA, buildB]);
  assert.match(ra.logs, new RegExp(`a-wrote-${nonce}`));
  assert.equal(ra.error, undefined, ra.error?.message);
  assert.equal(rb.error, undefined, rb.error?.message);
  assert.match(rb.logs, new RegExp(`b-done-${nonce}`));
  assert.doesNotMatch(rb.logs, new RegExp(`/private-${nonce}`), 'the other build\'s file is invisible');
  const procs = Number(rb.logs.match(/procs: (\d+)/)?.[1]);
  assert.ok(procs > 0 && procs <= 4, `only the RUN's own processes are visible (${procs})`);
});

/** Every string value in Redis (all types), for a full scan. */
async function allRedisText(redis: Redis): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'COUNT', 500);
    cursor = next;
    for (const key of keys) {
      parts.push(key);
      const type = await redis.type(key);
      if (type === 'string') parts.push((await redis.getBuffer(key))?.toString('latin1') ?? '');
      else if (type === 'hash') parts.push(JSON.stringify(await redis.hgetall(key)));
      else if (type === 'list') parts.push(JSON.stringify(await redis.lrange(key, 0, -1)));
      else if (type === 'set') parts.push(JSON.stringify(await redis.smembers(key)));
      else if (type === 'zset') parts.push(JSON.stringify(await redis.zrange(key, 0, -1)));
      else if (type === 'stream') parts.push(JSON.stringify(await redis.xrange(key, '-', '+')));
    }
  } while (cursor !== '0');
  return parts.join('\n');
}

/** Every file under dir, decompressed when it is gzip, searched for the value. */
function filesContaining(dir: string, value: string): string[] {
  const hits: string[] = [];
  const needle = Buffer.from(value);
  const walk = (d: string) => {
    let names: import('node:fs').Dirent[];
    try { names = readdirSync(d, { withFileTypes: true }); } catch { return; }
    for (const e of names) {
      const p = join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile()) {
        let data: Buffer;
        try { data = readFileSync(p); } catch { continue; }
        if (data[0] === 0x1f && data[1] === 0x8b) { try { data = gunzipSync(data); } catch { /* not gzip after all */ } }
        if (data.includes(needle)) hits.push(p);
      }
    }
  };
  walk(dir);
  return hits;
}

test('a secret reaches RUN but never layers, logs, progress events, Redis or any state directory', async () => {
  const secret = `s3cr3t-${nonce}-${'q'.repeat(16)}`;
  // The expected value reaches RUN as two build-arg halves, so nothing but the secret holds it whole.
  const dir = context('secret', `FROM ${cluster.busybox.reference}\nARG H1\nARG H2\nRUN --mount=type=secret,id=token test "$(cat /run/secrets/token)" = "$H1$H2" && echo SECRET-OK\nRUN ls /run/secrets 2>&1 | wc -l > /count\n`);
  const events: SolveEvent[] = [];
  const outcome = await solve(cluster, dir, {
    platforms: ['linux/amd64'], secrets: [{ id: 'token', value: Buffer.from(secret) }],
    buildArgs: { H1: secret.slice(0, 10), H2: secret.slice(10) },
  }, { onEvent: (e) => events.push(e) });
  assert.equal(outcome.error, undefined, outcome.error?.message);
  assert.match(outcome.logs, /SECRET-OK/, 'the RUN step read the secret');
  assert.ok(!JSON.stringify(events).includes(secret), 'no progress event holds the secret');
  const redis = new Redis(cluster.redis.url);
  try {
    assert.ok(!(await allRedisText(redis)).includes(secret), 'no Redis key or value holds the secret');
  } finally { redis.disconnect(); }
  assert.deepEqual(filesContaining(cluster.stateDir, secret), [], 'no file in the shared store or any worker state holds the secret');
});

test('tenants are isolated: cache, builds, cancel, logs and contexts of one are invisible to the other', async () => {
  const dir = context('tenants', `FROM ${cluster.busybox.reference}\nRUN echo alice-only-${nonce} > /a && echo LOG-${nonce}\n`);
  const buildId = `alice-${nonce}`;
  const alice = await solve(cluster, dir, { platforms: ['linux/amd64'], buildId }, { token: cluster.tokens.alice });
  assert.equal(alice.error, undefined, alice.error?.message);
  const aliceDu = await diskUsage(cluster, cluster.tokens.alice);
  assert.ok(aliceDu.records.length > 0, 'alice has cache records');
  const bobDu = await diskUsage(cluster, cluster.tokens.bob);
  // Worker snapshots and contexts (`worker/...`) are shared caches every tenant sees in aggregate.
  const aliceIds = new Set(aliceDu.records.filter((r) => !r.id.startsWith('worker/')).map((r) => r.id));
  assert.deepEqual(bobDu.records.filter((r) => aliceIds.has(r.id)), [], 'bob sees none of alice\'s cache records');
  for (const token of [cluster.tokens.bob, cluster.token]) {
    await assert.rejects(buildStatus(cluster, token, buildId), (e: { code: number }) => e.code === status.NOT_FOUND);
    await assert.rejects(unary(cluster, 'cancel', { buildId }, token), (e: { code: number }) => e.code === status.NOT_FOUND);
    const control = new ControlClient(cluster.address, credentials.createInsecure());
    try {
      await assert.rejects(async () => { for await (const _ of control.attach({ buildId, fromStart: true, cancelOnLeave: false }, bearer(token))) { /* no logs */ } },
        (e: { code: number }) => e.code === status.NOT_FOUND);
    } finally { control.close(); }
  }
  const bobList = await unary<{ builds: Array<{ buildId: string }> }>(cluster, 'status', { buildId: '', limit: 20 }, cluster.tokens.bob);
  assert.ok(!bobList.builds.some((b) => b.buildId === buildId), 'bob\'s build list omits alice\'s build');
  // The same Dockerfile for bob runs again: alice's cache entries are not bob's.
  const bob = await solve(cluster, dir, { platforms: ['linux/amd64'] }, { token: cluster.tokens.bob });
  assert.equal(bob.error, undefined, bob.error?.message);
  assert.match(bob.logs, new RegExp(`LOG-${nonce}`), 'bob\'s RUN executed instead of reusing alice\'s result');
  // Bob cannot build from alice's context id, even knowing it.
  // (A context only alice uploaded: context ids are content addresses, so bob's own upload of
  // the same files would legitimately grant him the same id.)
  const privateDir = context('alice-private', `FROM scratch\n`);
  writeFileSync(join(privateDir, 'diary.txt'), `alice's diary ${nonce}\n`);
  const aliceContext = await contextIdOf(privateDir, cluster.tokens.alice);
  const raw = await solveRaw(cluster, cluster.tokens.bob, { dockerfile: Buffer.from(`FROM ${cluster.busybox.reference}\nCOPY . /c\n`), contextId: aliceContext, platforms: ['linux/amd64'] });
  assert.match(raw.error?.message ?? '', /unknown context/, `bob was refused alice's context: ${raw.error?.message}`);
});

async function contextIdOf(dir: string, token: string): Promise<string> {
  const { syncContext } = await import('@buildyard/context');
  const { ContextSyncClient } = await import('@buildyard/proto');
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  try { return (await syncContext(client, dir, { dockerignore: [], metadata: bearer(token), cacheDir: false })).contextId; } finally { client.close(); }
}

test('requests without a token or with a wrong one are refused on every Control method', async () => {
  for (const token of [undefined, 'wrong', `${cluster.tokens.alice}x`]) {
    for (const method of ['info', 'status', 'diskUsage', 'cancel'] as const) {
      await assert.rejects(unary(cluster, method, { buildId: 'x', limit: 0, verbose: false }, token), (e: { code: number }) => e.code === status.UNAUTHENTICATED, `${method} with ${token}`);
    }
  }
});
