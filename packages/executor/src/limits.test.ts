// Per-RUN limits with real runc and cgroups: a fork bomb stops at pids, a memory hog is killed
// at its memory limit, a writer fails at its disk limit, each with a one-line message naming the
// limit; CPU is throttled to its quota. Nothing of the step's cgroup is left behind.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, afterEach, before, describe, it } from 'node:test';
import { removeTree } from '@buildyard/snapshot';
import { ExecLimitError, RuncExecutor, type Meta } from './index.js';
import { canUseRunc, makeTestDir, runScript, type TestDir } from './testRootfs.test-util.js';

const cgroupsWritable = existsSync('/sys/fs/cgroup/cgroup.controllers') || existsSync('/sys/fs/cgroup/pids/cgroup.procs');

function stepCgroups(owner: string): string[] {
  const found: string[] = [];
  for (const dir of ['/sys/fs/cgroup/buildyard', ...['pids', 'memory', 'cpu'].map((c) => `/sys/fs/cgroup/${c}/buildyard`)]) {
    try { found.push(...readdirSync(dir).filter((n) => n.startsWith(`${owner}-`))); } catch { /* none */ }
  }
  return found;
}

describe('RUN limits with real runc', { skip: !canUseRunc ? 'needs root and runc' : !cgroupsWritable ? 'needs cgroups' : false }, () => {
  let t: TestDir;
  let executor: RuncExecutor;
  before(async () => {
    t = await makeTestDir('amd64');
    executor = new RuncExecutor({ stateDir: t.stateDir, egress: false, limits: { pids: 64 } });
  });
  after(async () => {
    await executor?.cleanupStale().catch(() => undefined);
    t?.remove();
  });
  afterEach(() => {
    assert.deepEqual(stepCgroups(executor.egress?.owner ?? ownerOf(executor)), [], 'a step left its cgroup behind');
  });

  const run = (script: string, extra: Partial<Meta> = {}) => runScript(executor, t.rootfs, script, extra);

  it('a fork bomb stops at the pids limit and the step fails naming it', async () => {
    await assert.rejects(run('for i in $(seq 1 200); do sleep 30 & done; wait'), (e: unknown) => {
      assert.ok(e instanceof ExecLimitError, String(e));
      assert.equal(e.limit, 'pids');
      assert.match(e.message, /hit its limit of 64 processes \(worker\.sandbox\.pids\) and failed with exit code \d+; start fewer processes or raise the limit$/);
      return true;
    });
    // Within the limit, the same kind of step runs.
    assert.equal(await run('for i in $(seq 1 10); do true & done; wait; echo fine'), 'fine\n');
  });

  it('a memory hog is killed at the memory limit of the step (a tenant override)', async () => {
    await assert.rejects(run('mkdir -p /dev/shm/x; dd if=/dev/zero of=/dev/shm/x/fill bs=1M count=60 2>&1; head -c 80000000 /dev/zero | tail > /dev/null', { limits: { memoryBytes: 32 * 1024 * 1024 } }), (e: unknown) => {
      assert.ok(e instanceof ExecLimitError, String(e));
      assert.equal(e.limit, 'memory');
      assert.match(e.message, /ran out of memory: killed at its 32 MiB limit \(worker\.sandbox\.memoryBytes\)/);
      return true;
    });
  });

  it('a step writing past the disk limit fails, however fast it wrote', async () => {
    await assert.rejects(run('dd if=/dev/zero of=/big bs=1M count=8 2>/dev/null; echo wrote', { limits: { diskBytes: 4 * 1024 * 1024 } }), (e: unknown) => {
      assert.ok(e instanceof ExecLimitError, String(e));
      assert.equal(e.limit, 'disk');
      assert.match(e.message, /exceeded its disk limit: it wrote 8(\.\d)? MiB to the root filesystem, over 4 MiB \(worker\.sandbox\.diskBytes\)/);
      return true;
    });
    // A writer that never stops is stopped by the watch.
    await assert.rejects(run('i=0; while true; do dd if=/dev/zero of=/fill$i bs=1M count=1 2>/dev/null; i=$((i+1)); done', { limits: { diskBytes: 16 * 1024 * 1024 } }), (e: unknown) => e instanceof ExecLimitError && e.limit === 'disk');
    assert.equal(await run('echo small > /small; echo ok', { limits: { diskBytes: 4 * 1024 * 1024 } }), 'ok\n');
  });

  it('a step hiding its writes deeper than PATH_MAX still fails at the disk limit', async () => {
    // 2,400 directories deep (a 4,800-byte path), made in three hops, then 32 MiB at the bottom.
    const deepWriter = 'for j in 1 2 3; do p=$(printf "d/%.0s" $(seq 800)); mkdir -p $p && cd -P $p || exit 1; done; dd if=/dev/zero of=big bs=1M count=32 2>/dev/null; echo wrote';
    await assert.rejects(run(deepWriter, { limits: { diskBytes: 16 * 1024 * 1024 } }), (e: unknown) => {
      assert.ok(e instanceof ExecLimitError, String(e));
      assert.equal(e.limit, 'disk');
      return true;
    });
    await removeTree(join(t.rootfs, 'd')); // beyond what fs.rm (and so t.remove()) can remove
  });

  it('a sparse file counts at its size against the disk limit: its layer would carry all of it', async () => {
    await assert.rejects(run('dd if=/dev/zero of=/sparse bs=1 count=1 seek=1G 2>/dev/null; echo wrote', { limits: { diskBytes: 16 * 1024 * 1024 } }), (e: unknown) => {
      assert.ok(e instanceof ExecLimitError, String(e));
      assert.equal(e.limit, 'disk');
      return true;
    });
    await run('rm -f /sparse');
  });

  it('cpus sets the step\'s CPU quota while it runs', async () => {
    const id = `cpu-${process.pid}`;
    const stdin = new PassThrough();
    const out = new PassThrough();
    const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
    const dir = v2 ? `/sys/fs/cgroup/buildyard/${ownerOf(executor)}-${id}` : `/sys/fs/cgroup/cpu/buildyard/${ownerOf(executor)}-${id}`;
    let quota = '';
    // Read once the step is running, then let it finish by closing its stdin.
    out.on('data', () => {
      quota = v2 ? readFileSync(join(dir, 'cpu.max'), 'utf8').trim() : `${readFileSync(join(dir, 'cpu.cfs_quota_us'), 'utf8').trim()} ${readFileSync(join(dir, 'cpu.cfs_period_us'), 'utf8').trim()}`;
      stdin.end();
    });
    await executor.run({ id, rootfs: t.rootfs, meta: { args: ['/bin/sh', '-c', 'echo running; cat > /dev/null'], env: [], cwd: '/', user: '', network: 'none', limits: { cpus: 0.5 } }, mounts: [], stdin, stdout: out });
    assert.equal(quota, '50000 100000');
  });
});

function ownerOf(executor: RuncExecutor): string {
  return (executor as unknown as { cgroups: { owner: string } }).cgroups.owner;
}
