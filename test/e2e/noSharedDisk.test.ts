// Issue 19 item 1: machines without a shared filesystem. The frontend and each worker have their
// own state dir and their own sharedDir (BUILDYARD_SHARED_DIR empty: `<stateDir>/shared`), each
// in a mount namespace where the others' dirs are not there at all, so nothing but Redis and the
// registry blob store connects them: build contexts (files and manifests) go from the frontend to
// the workers through the registry, grants through Redis.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { credentials } from '@grpc/grpc-js';
import { syncContext } from '@buildyard/context';
import { ContextSyncClient, ControlClient, PruneRequest } from '@buildyard/proto';
import { startRegistry, until, type Cluster, type RegistryService, type SupervisedProcess } from '@buildyard/testkit';
import { bearer, solve, vertexSummary, type SolveOutcome } from './grpcClient.js';
import { clusterFixture } from './security/clusterFixture.js';

let registry: RegistryService | undefined;
after(async () => { await registry?.stop(); });

// The blob repository is in a registry started first, so that the processes can be told its address.
const fx = clusterFixture(async () => ({
  workers: 1, registry: (registry = await startRegistry()), tenants: ['alice', 'bob'], privateMounts: true,
  env: {
    BUILDYARD_BLOB_STORE: 'registry', BUILDYARD_BLOB_REPOSITORY: `${registry.host}/buildyard/blobs`,
    // Empty: each process uses `<its stateDir>/shared`, a directory no other process knows.
    BUILDYARD_SHARED_DIR: '', BUILDYARD_WORKER_CAPACITY: '1',
    // The frontend's blob GC runs all along, removing what is unreferenced after a minute (a
    // shorter grace would race the frontend's own writes, which it pushes after storing them).
    BUILDYARD_GC_INTERVAL_MS: '300', BUILDYARD_GC_KEEP_DURATION_MS: '60000',
  },
}), 'no-shared-disk');

const sha = (data: string | Buffer) => `sha256:${createHash('sha256').update(data).digest('hex')}`;
const inRegistry = async (digest: string) => (await fetch(`${registry!.url}/v2/buildyard/blobs/blobs/${digest}`, { method: 'HEAD' })).status === 200;
/** Context contents this process holds in its own context store. */
const contentsOf = (stateDir: string) => {
  const dir = join(stateDir, 'shared/contexts/content/blobs/sha256');
  return new Set(existsSync(dir) ? readdirSync(dir).map((h) => `sha256:${h}`) : []);
};
const ok = (o: SolveOutcome) => assert.equal(o.error, undefined, o.error?.message);
const ranOn = (o: SolveOutcome) => new Set(o.events.filter((e) => e.vertex?.workerId && !e.vertex.cached).map((e) => e.vertex!.workerId));

test('contexts, cache and GC work across a frontend and workers that share no directory; a tenant cannot use another\'s context', async () => {
  const { cluster } = fx;
  const dir = fx.context('app', `FROM ${cluster.busybox.reference}\nCOPY . /ctx\nRUN cat /ctx/a.txt /ctx/sub/b.txt && cat /ctx/same-*.txt | wc -l\n`);
  writeFileSync(join(dir, 'a.txt'), 'alpha\n');
  writeFileSync(join(dir, 'same-1.txt'), 'same\n');
  writeFileSync(join(dir, 'same-2.txt'), 'same\n');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'sub/b.txt'), 'beta\n');
  const build = (token: string, extra: Parameters<typeof solve>[2] = {}) => solve(cluster, dir, { platforms: ['linux/amd64'], ...extra }, { token });

  // Build 1 runs on worker-1, the only worker.
  const first = await build(cluster.tokens.alice);
  ok(first);
  assert.deepEqual([...ranOn(first)], ['worker-1']);
  assert.match(first.logs, /alpha\s+beta/);

  // The context's files went once each (same-1/same-2 share a content) into the registry
  // repository, and reached the worker through it into its own dir.
  const contents = ['alpha\n', 'same\n', 'beta\n', readFileSync(join(dir, 'Dockerfile'))].map(sha);
  for (const d of contents) assert.ok(await inRegistry(d), `context content ${d} is in the registry blob store`);
  const worker1 = cluster.workers[0]!;
  for (const d of contents) assert.ok(contentsOf(worker1.stateDir).has(d), `worker-1 fetched ${d} into its own state dir`);

  // Build 2, same context, on a new worker-2 after worker-1 is gone: answered from the cache
  // the first worker filled (records in Redis, layers in the registry).
  const worker2 = await cluster.addWorker();

  // Each process sees its own dir and nothing of the others' (read through its own root).
  const frontendState = join(cluster.stateDir, 'frontend');
  const processes = [{ p: cluster.frontendProcess, dir: frontendState }, { p: worker1.process, dir: worker1.stateDir }, { p: worker2.process, dir: worker2.stateDir }]
    .map(({ p, dir }) => ({ pid: servicePid(p), dir }));
  const namespaces = new Set([readlinkSync('/proc/self/ns/mnt'), ...processes.map(({ pid }) => readlinkSync(`/proc/${pid}/ns/mnt`))]);
  assert.equal(namespaces.size, 4, 'the test and each process have a mount namespace of their own');
  for (const a of processes) {
    assert.ok(existsSync(`/proc/${a.pid}/root${a.dir}`), `${a.dir} sees its own dir`);
    for (const b of processes) if (a !== b) assert.ok(!existsSync(`/proc/${a.pid}/root${b.dir}`), `${a.dir} cannot see ${b.dir}`);
  }
  await worker1.process.stop();
  const second = await build(cluster.tokens.alice);
  ok(second);
  const steps = vertexSummary(second.events);
  const run = [...steps.entries()].find(([k]) => k.includes('RUN cat'));
  assert.ok(run?.[1].cached, 'the RUN step was a cache hit across workers');
  assert.ok(![...ranOn(second)].includes('worker-1'));

  // Build 3: one file changes. Only it is uploaded; worker-2 builds from the new context.
  writeFileSync(join(dir, 'a.txt'), 'alpha changed\n');
  const third = await build(cluster.tokens.alice);
  ok(third);
  assert.equal(third.bytesUploaded, 'alpha changed\n'.length, 'only the changed file was sent');
  assert.deepEqual([...ranOn(third)], ['worker-2']);
  assert.match(third.logs, /alpha changed\s+beta/);
  assert.ok(contentsOf(worker2.stateDir).has(sha('alpha changed\n')), 'worker-2 fetched the changed file');

  // No process used a common directory: each has its own state dir and sharedDir, none below
  // another's, and the cluster-wide default sharedDir was never made.
  const dirs = [frontendState, worker1.stateDir, worker2.stateDir].flatMap((d) => [d, join(d, 'shared')]);
  const owner = (d: string) => dirs.indexOf(d) >> 1;
  for (const a of dirs) {
    for (const b of dirs) {
      if (owner(a) === owner(b)) continue;
      assert.notEqual(a, b);
      assert.ok(relative(a, b).startsWith('..') && relative(b, a).startsWith('..'), `${a} and ${b} do not nest`);
    }
  }
  assert.ok(!existsSync(join(cluster.stateDir, 'shared')), 'no cluster-wide shared directory exists');
  assert.ok(contentsOf(frontendState).has(sha('alpha changed\n')), 'the frontend kept the upload in its own dir');

  // GC: a garbage blob in the frontend's store goes, context contents stay, and alice's prune of
  // everything of hers (cache records, layers, her step snapshots on the workers) leaves the
  // context usable: the next build uses it and runs its steps again.
  const garbage = Buffer.from(`garbage ${Date.now()}\n`);
  const garbageDigest = sha(garbage);
  await pushBlob(garbage);
  const gcDir = join(frontendState, 'frontend-blobs/blobs/sha256');
  mkdirSync(gcDir, { recursive: true });
  writeFileSync(join(gcDir, garbageDigest.slice(7)), garbage);
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(gcDir, garbageDigest.slice(7)), hourAgo, hourAgo);
  await until('the frontend\'s blob GC to remove an unreferenced blob', async () => !(await inRegistry(garbageDigest)), 60_000, 100);
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  try {
    await new Promise<void>((resolve, reject) => control.prune(PruneRequest.fromPartial({ all: true }), bearer(cluster.tokens.alice), (err) => (err ? reject(err) : resolve())));
  } finally {
    control.close();
  }
  for (const d of [...contents.slice(1), sha('alpha changed\n')]) assert.ok(await inRegistry(d), `context content ${d} survived GC and prune`);
  // Build 4 goes through a second frontend (its own namespace and dirs) that never saw this
  // context: the grants in Redis and the contents in the registry are enough, nothing is sent again.
  const frontend2 = await cluster.addFrontend();
  const fourth = await solve({ address: frontend2.address, token: cluster.tokens.alice }, dir, { platforms: ['linux/amd64'] });
  ok(fourth);
  assert.equal(fourth.bytesUploaded, 0, 'the second frontend asked for nothing the first one had received');
  assert.ok(![...vertexSummary(fourth.events).entries()].find(([k]) => k.includes('RUN cat'))?.[1].cached, 'after the prune the RUN step ran again');
  assert.match(fourth.logs, /alpha changed\s+beta/);

  // Bob names alice's context: refused before anything runs, and nothing of it is materialised for him.
  const bobDir = fx.context('bob', `FROM ${cluster.busybox.reference}\nCOPY . /ctx\nRUN cat /ctx/a.txt\n`);
  const stolen = await solve(cluster, bobDir, { platforms: ['linux/amd64'], contextId: (await syncedId(cluster, dir)) }, { token: cluster.tokens.bob });
  assert.match(stolen.error?.message ?? '', /unknown context/);
  assert.equal(stolen.events.filter((e) => e.vertex?.workerId).length, 0, 'no worker ran anything for bob');
});

/** The pid of the service a watchdog runs (its child running node). */
function servicePid(p: SupervisedProcess): number {
  const children = readFileSync(`/proc/${p.child.pid}/task/${p.child.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  const pid = children.find((c) => { try { return readlinkSync(`/proc/${c}/exe`) === process.execPath; } catch { return false; } });
  assert.ok(pid, `${p.name} is running`);
  return pid;
}

/** Alice's context id of `dir` as it stands (syncing it again uploads nothing). */
async function syncedId(cluster: Cluster, dir: string): Promise<string> {
  const client = new ContextSyncClient(cluster.address, credentials.createInsecure());
  try {
    return (await syncContext(client, dir, { metadata: bearer(cluster.tokens.alice!), cacheDir: false })).contextId;
  } finally {
    client.close();
  }
}

/** A blob nobody references, straight into the blob repository (two-step upload). */
async function pushBlob(data: Buffer): Promise<void> {
  const started = await fetch(`${registry!.url}/v2/buildyard/blobs/blobs/uploads/`, { method: 'POST' });
  assert.equal(started.status, 202);
  const location = new URL(started.headers.get('location')!, registry!.url);
  location.searchParams.set('digest', sha(data));
  const put = await fetch(location, { method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(put.status, 201);
}
