// Issue 14, item 7 (disk): `du` and `prune` see and reclaim the workers' layer snapshots and
// materialised contexts, not only cache records: a tenant's prune its own step snapshots, the
// operator's (the dashboard's) everything; a worker's GC keeps them under its configured size. Of a build's materialised context only the newest tree per tenant and directory
// (lineage) outlives the build, as the base of the next build (#18); another tenant's build
// never starts from it.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { credentials, type ServiceError } from '@grpc/grpc-js';
import { ControlClient, PruneRequest, type DiskUsageResponse, type PruneResponse } from '@buildyard/proto';
import { startCluster, startRegistry, until, type Cluster } from '@buildyard/testkit';
import type { WorkerPruneResult } from '../../../apps/dashboard/src/api/types.js';
import { startDashboard } from '../../../apps/dashboard/src/dashboard.test-util.js';
import { startGates } from '../gate.js';
import { bearer, solve } from '../grpcClient.js';

let work: string;
const nonce = `${process.pid}${Date.now()}`;
const MiB = 1024 * 1024;

before(() => { work = mkdtempSync(join(tmpdir(), 'buildyard-disk-')); });
after(() => { if (work) rmSync(work, { recursive: true, force: true }); });

function call<Res>(cluster: Cluster, method: 'diskUsage' | 'prune', req: object): Promise<Res> {
  const control = new ControlClient(cluster.address, credentials.createInsecure());
  return new Promise<Res>((resolve, reject) => {
    (control[method] as unknown as (r: object, m: ReturnType<typeof bearer>, o: object, cb: (e: ServiceError | null, r: Res) => void) => void)
      .call(control, req, bearer(cluster.token), { deadline: new Date(Date.now() + 60_000) }, (err, res) => (err ? reject(err) : resolve(res)));
  }).finally(() => control.close());
}
const du = (c: Cluster) => call<DiskUsageResponse>(c, 'diskUsage', { verbose: true });

/** `du -sx -B1`: allocated bytes, hardlinks once, one filesystem. */
function duOnDisk(path: string): number {
  return Number(execFileSync('du', ['-sx', '-B1', path], { encoding: 'utf8' }).split('\t')[0]);
}

/** A context with a few MiB of incompressible data and a RUN that writes a few more. */
async function bigBuild(cluster: Cluster, name: string): Promise<void> {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'payload.bin'), randomBytes(3 * MiB));
  writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nCOPY payload.bin /payload.bin\nRUN dd if=/dev/urandom of=/out.bin bs=1M count=4 2>/dev/null && echo ${name}-${nonce}\n`);
  const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'] });
  assert.equal(outcome.error, undefined, outcome.error?.message);
}

/** The worker's materialised context trees: `contexts/<tenant>/<lineage>/<context id hex>`. */
function contextTrees(stateDir: string): string[] {
  const ls = (d: string) => (existsSync(d) ? readdirSync(d).map((n) => join(d, n)) : []);
  return ls(join(stateDir, 'contexts')).flatMap(ls).flatMap(ls);
}

/** Inode numbers of the regular files under `dir`. */
function fileInodes(dir: string): Set<number> {
  const out = new Set<number>();
  const walk = (d: string) => { for (const e of readdirSync(d, { withFileTypes: true })) (e.isDirectory() ? walk(join(d, e.name)) : e.isFile() && out.add(statSync(join(d, e.name)).ino)); };
  walk(dir);
  return out;
}

const record = (res: DiskUsageResponse, worker: string, kind: string) => res.records.find((r) => r.id === `worker/${worker}/${kind}`);
const committedSnapshots = (stateDir: string) => (existsSync(join(stateDir, 'snapshots/s')) ? readdirSync(join(stateDir, 'snapshots/s')).length : 0);

test('du sees worker snapshots and contexts as du on disk does; only the newest context tree of a directory outlives its build; prune --all reclaims the tenant\'s step snapshots, the operator\'s prune everything', async () => {
  const cluster = await startCluster({ workers: 1 });
  try {
    const worker = cluster.workers[0];
    await bigBuild(cluster, 'one');
    // The same directory built again with other contents: the same lineage of trees.
    await bigBuild(cluster, 'two');

    const before = await du(cluster);
    const snapshots = record(before, worker.id, 'snapshots');
    const contexts = record(before, worker.id, 'contexts');
    assert.ok(snapshots && contexts, `du lists the worker's snapshots and contexts: ${before.records.map((r) => r.id).join(', ')}`);
    assert.ok(snapshots.size > 7 * MiB, `snapshots hold both builds' layers (${snapshots.size})`);
    assert.equal(snapshots.size, duOnDisk(join(worker.stateDir, 'snapshots')), 'du\'s figure for snapshots is du on disk');
    assert.equal(contexts.size, duOnDisk(join(worker.stateDir, 'contexts')), 'du\'s figure for contexts is du on disk');
    // Both builds have ended: only the newest tree is kept (the second build's), as the base of
    // the next build of that directory.
    const kept = contextTrees(worker.stateDir);
    assert.equal(kept.length, 1, `only the newest tree of the lineage survives: ${kept.join(', ')}`);
    assert.deepEqual(readFileSync(join(kept[0], 'payload.bin')), readFileSync(join(work, 'two', 'payload.bin')), 'the kept tree is the last build\'s');
    assert.ok(before.totalBytes >= snapshots.size + contexts.size);

    const stateBefore = duOnDisk(worker.stateDir);
    // The tenant's prune --all: its cache records and its step snapshots (each build's COPY and
    // RUN, 7 MiB of data); the unpacked base image and the kept context tree serve every tenant.
    const pruned = await call<PruneResponse>(cluster, 'prune', PruneRequest.fromPartial({ all: true }));
    const reclaimed = pruned.removed.find((r) => r.id === `worker/${worker.id}`);
    assert.ok(reclaimed && reclaimed.size >= 14 * MiB, `prune reports the tenant's step snapshots reclaimed: ${JSON.stringify(pruned.removed.map((r) => [r.id, r.size]))}`);
    assert.equal(committedSnapshots(worker.stateDir), 1, 'the base image\'s unpacked layer stays on the worker');
    assert.equal(contextTrees(worker.stateDir).length, 1, 'the kept context tree stays');
    // The operator's prune (the dashboard's, admin token) reaches everything no stage uses.
    const dash = await startDashboard({ redisUrl: cluster.redis.url });
    try {
      const res = await dash.api('/api/workers/prune', { method: 'POST', as: 'admin', body: JSON.stringify({ all: true }) });
      assert.equal(res.status, 200, await res.clone().text());
      const everything = await res.json() as WorkerPruneResult;
      assert.ok((everything.workers.find((w) => w.id === worker.id)?.reclaimedBytes ?? 0) > 0, JSON.stringify(everything));
    } finally {
      await dash.close();
    }
    assert.equal(committedSnapshots(worker.stateDir), 0, 'no snapshot is left on the worker');
    const stateAfter = duOnDisk(worker.stateDir);
    assert.ok(stateBefore - stateAfter >= snapshots.size - 256 * 1024, `the worker's state dir shrank by the snapshots (${stateBefore} -> ${stateAfter})`);
    assert.ok(duOnDisk(join(worker.stateDir, 'snapshots')) < 256 * 1024, 'what remains of snapshots is bookkeeping');
    assert.deepEqual(contextTrees(worker.stateDir), [], 'the operator\'s prune removes the kept context tree');

    const afterPrune = await du(cluster);
    assert.equal(record(afterPrune, worker.id, 'snapshots')?.size, duOnDisk(join(worker.stateDir, 'snapshots')));
    assert.ok(!afterPrune.records.some((r) => r.id.startsWith('sha256:') || /^[a-f0-9]{64}$/.test(r.id)), 'no cache record is left');

    // The worker unpacks what it needs again: building after a prune works.
    await bigBuild(cluster, 'three');
  } finally {
    await cluster.stop();
  }
});

test('a worker\'s GC keeps its snapshots and contexts under its configured size', async () => {
  const keep = 2 * MiB;
  const cluster = await startCluster({ workers: 1, env: { BUILDYARD_WORKER_KEEP_STORAGE: String(keep), BUILDYARD_GC_INTERVAL_MS: '500' } });
  try {
    const worker = cluster.workers[0];
    await bigBuild(cluster, 'gc-one');
    await bigBuild(cluster, 'gc-two');
    // The GC runs on the worker's timer while it is idle: wait for its effect, with a deadline.
    const heldNow = () => duOnDisk(join(worker.stateDir, 'snapshots')) + (existsSync(join(worker.stateDir, 'contexts')) ? duOnDisk(join(worker.stateDir, 'contexts')) : 0);
    // A du racing the GC's deletes fails on an entry that vanished under it: measure again.
    const held = () => { try { return heldNow(); } catch { return Infinity; } };
    // Each build leaves ~7 MiB of layers, so without a GC this never holds.
    await until(`the worker's snapshots and contexts to shrink to ${keep} bytes`, () => held() <= keep + 256 * 1024, 60_000, 250);
    const res = await du(cluster);
    assert.ok((record(res, worker.id, 'snapshots')?.size ?? Infinity) <= keep + 256 * 1024);
  } finally {
    await cluster.stop();
  }
});

test('another tenant\'s build never starts from a tenant\'s kept context tree, even with the same paths and contents', async () => {
  const cluster = await startCluster({ workers: 1, tenants: ['mallory'] });
  try {
    const worker = cluster.workers[0];
    const common = randomBytes(256 * 1024);
    const context = (name: string, files: Record<string, Buffer | string>) => {
      const dir = join(work, name);
      mkdirSync(dir, { recursive: true });
      for (const [file, data] of Object.entries(files)) {
        writeFileSync(join(dir, file), data);
        // The same times on both sides: an entry the same in every field but the tenant.
        utimesSync(join(dir, file), 1_600_000_000, 1_600_000_000);
      }
      return dir;
    };
    const alice = context('tenant-a', {
      'common.bin': common, 'only-a.txt': `alice's secret ${nonce}\n`,
      Dockerfile: `FROM ${cluster.busybox.reference}\nRUN --mount=type=bind,target=/ctx cat /ctx/only-a.txt && echo a-${nonce}\n`,
    });
    const a = await solve(cluster, alice, { platforms: ['linux/amd64'] });
    assert.equal(a.error, undefined, a.error?.message);
    const [aliceTree] = contextTrees(worker.stateDir);
    assert.ok(aliceTree && existsSync(join(aliceTree, 'only-a.txt')), 'alice\'s tree is kept');

    // Mallory's context has the same paths (but the secret) and the same common file.
    const mallory = context('tenant-m', {
      'common.bin': common,
      Dockerfile: `FROM ${cluster.busybox.reference}\nRUN --mount=type=bind,target=/ctx if [ -e /ctx/only-a.txt ]; then echo LEAKED; cat /ctx/only-a.txt; exit 1; fi; echo m-${nonce}\n`,
    });
    const m = await solve(cluster, mallory, { platforms: ['linux/amd64'] }, { token: cluster.tokens.mallory });
    assert.equal(m.error, undefined, `mallory's build sees only its own context: ${m.error?.message} ${m.logs.slice(-300)}`);
    const trees = contextTrees(worker.stateDir);
    assert.equal(trees.length, 2, `one kept tree per tenant: ${trees.join(', ')}`);
    const malloryTree = trees.find((t) => t !== aliceTree)!;
    assert.notEqual(malloryTree.split('/').at(-3), aliceTree.split('/').at(-3), 'the trees sit under different tenant dirs');
    // Had mallory's tree been linked from alice's (cp -al), its files would be alice's inodes.
    const shared = [...fileInodes(malloryTree)].filter((i) => fileInodes(aliceTree).has(i));
    assert.deepEqual(shared, [], 'no file of mallory\'s tree is a file of alice\'s');
    assert.equal(statSync(join(aliceTree, 'common.bin')).nlink, 1, 'nothing else links alice\'s file');
  } finally {
    await cluster.stop();
  }
});

test('with a registry blob store, the worker\'s GC evicts its local layer copies, but not while a stage runs; the next build fetches them again', async () => {
  const registry = await startRegistry();
  const gates = await startGates();
  const keep = 256 * 1024;
  const cluster = await startCluster({
    workers: 1, registry,
    env: {
      BUILDYARD_BLOB_STORE: 'registry', BUILDYARD_BLOB_REPOSITORY: `${registry.host}/buildyard/blobs`,
      BUILDYARD_WORKER_KEEP_STORAGE: String(keep), BUILDYARD_GC_INTERVAL_MS: '300',
      // The frontend's blob GC runs on the same interval: a grace so it never races a build's pushes.
      BUILDYARD_GC_KEEP_DURATION_MS: '60000',
    },
  });
  const gate = `layers-${nonce}`;
  let build: ReturnType<typeof solve> | undefined;
  try {
    const worker = cluster.workers[0];
    const copies = () => { const d = join(worker.stateDir, 'blobs/blobs/sha256'); return existsSync(d) ? readdirSync(d) : []; };
    const dir = join(work, 'layers');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN ${gates.wait(gate)} && dd if=/dev/urandom of=/out.bin bs=1M count=1 2>/dev/null && echo ${nonce}\n`);
    build = solve(cluster, dir, { platforms: ['linux/amd64'] });
    await gates.arrived(gate, { unless: build });
    const during = copies();
    assert.ok(during.length > 0, 'the base image\'s layers were fetched into the worker\'s local copies');
    // A GC while the stage runs (the prune's answer says the worker stayed busy) leaves them.
    const pruned = await call<PruneResponse>(cluster, 'prune', PruneRequest.fromPartial({ keepStorage: 1 }));
    assert.ok(pruned, 'the prune answered');
    assert.deepEqual(copies().filter((d) => during.includes(d)).sort(), [...during].sort(), 'no layer copy went while the stage ran');
    gates.open(gate);
    const outcome = await build;
    assert.equal(outcome.error, undefined, outcome.error?.message);
    const held = () => { try { return duOnDisk(join(worker.stateDir, 'blobs')); } catch { return Infinity; } };
    await until(`the worker's layer copies to shrink to ${keep} bytes`, () => held() <= keep, 60_000, 250);
    // The evicted layers come from the registry blob store again.
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN echo again-${nonce} > /again\n`);
    const again = await solve(cluster, dir, { platforms: ['linux/amd64'] });
    assert.equal(again.error, undefined, again.error?.message);
  } finally {
    gates.open(gate);
    await build?.catch(() => undefined);
    await cluster.stop();
    await gates.stop();
    await registry.stop();
  }
});

test('a RUN step nesting deeper than PATH_MAX fails in one line naming no worker path, and leaves nothing on the worker\'s disk', async () => {
  const cluster = await startCluster({ workers: 1 });
  try {
    const worker = cluster.workers[0];
    const dir = join(work, 'deep');
    mkdirSync(dir, { recursive: true });
    // 2,400 levels (a 4,800-byte path) in three hops, then a file at the bottom.
    writeFileSync(join(dir, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nRUN for j in 1 2 3; do p=$(printf "d/%.0s" $(seq 800)); mkdir -p $p && cd -P $p || exit 1; done; echo ${nonce} > deep\n`);
    const outcome = await solve(cluster, dir, { platforms: ['linux/amd64'], noCache: true });
    const message = outcome.error?.message ?? '';
    assert.match(message, /the result holds a path too long to read back \(4\d{3} bytes, \/d\/d\/d.*make the tree shallower/);
    assert.ok(!message.includes('\n') && !message.includes(worker.stateDir) && !message.includes(tmpdir()), message);
    // The step's snapshot is removed however deep it is (fs.rm alone gives up on it).
    const left = execFileSync('find', [worker.stateDir, '-maxdepth', '6', '-type', 'd', '-name', 'd', '-prune'], { encoding: 'utf8' });
    assert.equal(left, '', 'the deep tree is gone from the worker');
    await bigBuild(cluster, 'after-deep');
  } finally {
    await cluster.stop();
  }
});
