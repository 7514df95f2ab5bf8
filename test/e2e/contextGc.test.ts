// The context GC by grant age on a fleet whose blob store is a registry (issue 19): a context in
// use by a running build is never deleted, however old its grants look, while an old context
// nobody uses goes from the registry; once the build is over its context goes too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { Redis } from 'ioredis';
import { BlobLeases, collectContextGarbage, openContextStore, openSharedBlobStore } from '@buildyard/cache';
import { contextGrantKeys, syncContext } from '@buildyard/context';
import { DEFAULT_KEYS } from '@buildyard/contracts';
import { ContextSyncClient } from '@buildyard/proto';
import { startRegistry, until, type Cluster, type RegistryService } from '@buildyard/testkit';
import { startGates, type Gates } from './gate.js';
import { bearer, solve } from './grpcClient.js';
import { clusterFixture } from './security/clusterFixture.js';

const DAY = 24 * 3600_000;
let registry: RegistryService | undefined;
let gates: Gates | undefined;
const scratch = mkdtempSync(join(tmpdir(), 'buildyard-context-gc-'));
after(async () => {
  await gates?.stop();
  await registry?.stop();
  rmSync(scratch, { recursive: true, force: true });
});

const fx = clusterFixture(async () => {
  gates = await startGates();
  registry = await startRegistry();
  return {
    workers: 1, registry, tenants: ['alice', 'bob'],
    // Each process its own sharedDir: contexts reach the worker only through the registry.
    env: { BUILDYARD_BLOB_STORE: 'registry', BUILDYARD_BLOB_REPOSITORY: `${registry.host}/buildyard/blobs`, BUILDYARD_SHARED_DIR: '' },
  };
}, 'context-gc');

const sha = (data: string | Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const inRegistry = async (digest: string) => (await fetch(`${registry!.url}/v2/buildyard/blobs/blobs/${digest}`, { method: 'HEAD' })).status === 200;

/** Syncs `dir` as `token`'s tenant and answers its context id. */
async function synced(cluster: Cluster, dir: string, token: string): Promise<string> {
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  try {
    return (await syncContext(client, dir, { metadata: bearer(token), cacheDir: false })).contextId;
  } finally {
    client.close();
  }
}

/** Makes every grant of `tenant` look `ageMs` old, as if it had last synced then. */
async function age(redis: Redis, tenant: string, ageMs: number): Promise<void> {
  const k = contextGrantKeys(DEFAULT_KEYS.prefix);
  for (const key of [k.contexts(tenant), k.content(tenant)]) {
    const members = await redis.zrange(key, 0, -1);
    if (members.length) await redis.zadd(key, 'XX', ...members.flatMap((m) => [Date.now() - ageMs, m]));
  }
}

test('the context GC never deletes the context of a running build, whose grants it was made to see as old; an unused old context goes', async () => {
  const { cluster } = fx;
  const redis = new Redis(cluster.redis.url);
  try {
    // Another frontend's view of the same registry and Redis runs the GC (as any frontend may).
    const collector = openContextStore({
      root: join(scratch, 'collector/contexts'), redis, keyPrefix: DEFAULT_KEYS.prefix,
      blobs: openSharedBlobStore({ type: 'registry', repository: `${registry!.host}/buildyard/blobs`, sharedDir: join(scratch, 'collector/blobs'), localDir: join(scratch, 'collector/local') }),
    });
    const gc = () => collectContextGarbage({ store: collector, redis, keys: DEFAULT_KEYS, maxAgeMs: 7 * DAY });

    const bobDir = fx.context('bob', 'FROM scratch\n');
    const bobText = `bob's unused file ${randomBytes(6).toString('hex')}\n`;
    writeFileSync(join(bobDir, 'unused.txt'), bobText);
    const bobCtx = await synced(cluster, bobDir, cluster.tokens.bob!);

    // Alice's build waits at a gate in its first stage; its second stage copies a context file,
    // so the worker reads the context after the GC ran.
    const gate = `ctxgc-${randomBytes(6).toString('hex')}`;
    const appText = `alice's app ${randomBytes(6).toString('hex')}\n`;
    const dir = fx.context('alice', [
      `FROM ${cluster.busybox.reference} AS held`,
      `RUN ${gates!.wait(gate)} && echo waited > /w`,
      `FROM ${cluster.busybox.reference}`,
      'COPY --from=held /w /w',
      'COPY app.txt /app.txt',
      'RUN cat /app.txt /w',
      '',
    ].join('\n'));
    writeFileSync(join(dir, 'app.txt'), appText);
    const aliceCtx = await synced(cluster, dir, cluster.tokens.alice!);
    const building = solve(cluster, dir, { platforms: ['linux/amd64'], contextId: aliceCtx }, { token: cluster.tokens.alice });
    building.catch(() => undefined);
    await gates!.arrived(gate, { unless: building });

    // Both tenants' grants now look eight days old.
    await age(redis, 'alice', 8 * DAY);
    await age(redis, 'bob', 8 * DAY);
    const during = await gc();
    assert.equal(during.ran, true);
    assert.deepEqual(during.contexts, [bobCtx], 'only the unused context went');
    assert.equal(await inRegistry(bobCtx), false);
    assert.equal(await inRegistry(sha(bobText)), false);
    assert.equal(await inRegistry(aliceCtx), true, 'the running build\'s context stays');
    assert.equal(await inRegistry(sha(appText)), true, 'with its files');

    gates!.open(gate);
    const outcome = await building;
    assert.equal(outcome.error, undefined, outcome.error?.message);
    assert.match(outcome.logs, new RegExp(`alice's app [0-9a-f]{12}\\s+waited`));

    // The build over, its lease goes (the frontend releases it as the build ends): the context
    // is then as old as its grants say.
    await until('the build\'s context lease to end', async () => !(await new BlobLeases(redis, DEFAULT_KEYS).leased()).has(aliceCtx));
    const afterwards = await gc();
    assert.deepEqual(afterwards.contexts, [aliceCtx]);
    assert.equal(await inRegistry(aliceCtx), false);
    assert.equal(await inRegistry(sha(appText)), false);
  } finally {
    redis.disconnect();
  }
});
