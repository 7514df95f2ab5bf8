// A worker that dies leaves its container running, with its network namespace, veth and
// nftables table: cleanupStale() on the next start removes them all.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { it } from 'node:test';
import { until } from '@buildyard/testkit';
import { RuncExecutor } from './RuncExecutor.js';
import { bundles, canUseRunc, makeTestDir, processesMatching, runScript, runcIds } from './testRootfs.test-util.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = resolve(here, '../../..');

/** A process that runs a step (`sleep <sleepArg>`) in stateDir and is SIGKILLed mid-step. */
async function killedMidStep(stateDir: string, rootfs: string, sleepArg: string): Promise<ChildProcess> {
  const proc = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(here, 'staleChild.test-util.ts'), stateDir, rootfs, sleepArg], {
    cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error('child did not start its container in 30s')), 30_000);
    proc.stdout?.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('ready')) { clearTimeout(timer); ok(); } });
    proc.on('exit', (code) => { clearTimeout(timer); fail(new Error(`child exited early with ${code}`)); });
  });
  // The container prints "ready" just before it execs sleep: wait for the sleep itself.
  await until('the container to exec sleep', () => processesMatching('sleep', sleepArg).length === 1);
  proc.kill('SIGKILL');
  await new Promise((r) => proc.once('exit', r));
  return proc;
}

it('cleanupStale removes containers and bundles left by a SIGKILLed process', { skip: canUseRunc ? false : 'needs root and runc', timeout: 60_000 }, async () => {
  const t = await makeTestDir('amd64');
  const sleepArg = String(30000 + Math.floor(Math.random() * 10000));
  let child: ChildProcess | undefined;
  const executor = new RuncExecutor({ stateDir: t.stateDir });
  try {
    child = await killedMidStep(t.stateDir, t.rootfs, sleepArg);

    // The crash left a running container, its process and its bundle.
    assert.deepEqual(runcIds(executor.runcRoot), ['buildyard-stale']);
    assert.equal(processesMatching('sleep', sleepArg).length, 1);
    assert.deepEqual(bundles(t.stateDir), ['buildyard-stale']);
    const owner = executor.egress!.owner;
    const left = namespacesOf(owner);
    assert.equal(left.length, 1, 'the step\'s network namespace outlived the worker');
    assert.equal(tablesOf(owner).length, 1);
    // A connection the step had open when the worker died, as the host tracks it (a reply to it
    // must not reach the next step given this address).
    const address = /inet (\S+)\/30/.exec(spawnSync('ip', ['-n', left[0]!, '-4', '-o', 'addr', 'show', 'dev', 'eth0'], { encoding: 'utf8' }).stdout)?.[1];
    assert.ok(address, 'the stale namespace has its address');
    const tracked = ['-p', 'tcp', '-s', address, '-d', '203.0.113.9', '--sport', '40000', '--dport', '80'];
    assert.equal(spawnSync('conntrack', ['-I', ...tracked, '--state', 'ESTABLISHED', '-t', '300', '-u', 'SEEN_REPLY']).status, 0);

    const removed = await executor.cleanupStale();
    assert.equal(spawnSync('conntrack', ['-L', ...tracked], { encoding: 'utf8' }).stdout, '', 'the stale address\'s connections went with its network');
    assert.deepEqual(removed, { containers: ['buildyard-stale'], bundles: ['buildyard-stale'], networks: left });
    assert.deepEqual(namespacesOf(owner), []);
    assert.deepEqual(tablesOf(owner), []);
    const slot = left[0]!.slice(owner.length + 1);
    assert.equal(spawnSync('ip', ['link', 'show', `byv${slot}`]).status !== 0, true, 'the veth went with its namespace');
    assert.deepEqual(runcIds(executor.runcRoot), []);
    assert.deepEqual(bundles(t.stateDir), []);
    // The container's process and the orphaned `runc run` must go too.
    await until('the container process and runc run to exit', () => processesMatching('sleep', sleepArg).length === 0 && processesMatching('buildyard-stale').length === 0)
      .catch(() => undefined); // the assertions below say what is left
    assert.deepEqual(processesMatching('sleep', sleepArg), []);
    assert.deepEqual(processesMatching('buildyard-stale'), []);
    // Running again on a clean state works.
    assert.deepEqual(await executor.cleanupStale(), { containers: [], bundles: [], networks: [] });
  } finally {
    child?.kill('SIGKILL');
    await executor.cleanupStale().catch(() => undefined);
    t.remove();
  }
});

it('cleanupStale also reclaims the networks of an executor whose state dir is gone', { skip: canUseRunc ? false : 'needs root and runc', timeout: 60_000 }, async () => {
  const t = await makeTestDir('amd64');
  const gone = join(t.dir, 'gone-state');
  const sleepArg = String(40000 + Math.floor(Math.random() * 10000));
  const survivor = new RuncExecutor({ stateDir: t.stateDir });
  try {
    await killedMidStep(gone, t.rootfs, sleepArg);
    const orphan = new RuncExecutor({ stateDir: gone });
    const owner = orphan.egress!.owner;
    assert.equal(namespacesOf(owner).length, 1);
    // As a test cluster's teardown does: its containers are deleted, then its directory.
    spawnSync('runc', ['--root', orphan.runcRoot, 'delete', '--force', 'buildyard-stale']);
    rmSync(gone, { recursive: true, force: true });
    await survivor.cleanupStale();
    assert.deepEqual(namespacesOf(owner), []);
    assert.deepEqual(tablesOf(owner), []);
  } finally {
    t.remove();
  }
});

function namespacesOf(owner: string): string[] {
  try { return readdirSync('/run/netns').filter((n) => n.startsWith(`${owner}-`)); } catch { return []; }
}

function tablesOf(owner: string): string[] {
  const listed = spawnSync('nft', ['list', 'tables'], { encoding: 'utf8' }).stdout ?? '';
  return [...listed.matchAll(/^table inet (\S+)$/gm)].map((m) => m[1] as string).filter((t) => t.startsWith(`${owner}_`));
}

it('an executor that has settled leaves no record behind; its next step writes it again', { skip: canUseRunc ? false : 'needs root and runc', timeout: 60_000 }, async () => {
  const t = await makeTestDir('amd64');
  const executor = new RuncExecutor({ stateDir: t.stateDir });
  const owner = executor.egress!.owner;
  const record = join('/run/buildyard/executors', owner);
  try {
    assert.equal(existsSync(record), false);
    // The step waits for /go, which the test writes once it has looked at the record.
    const first = runScript(executor, t.rootfs, 'while [ ! -e /go ]; do sleep 0.05; done; echo ran');
    await until('the step to record its executor', () => existsSync(record));
    await executor.settled();
    assert.equal(existsSync(record), true, 'settling while a step ran dropped its record (a worker killed now would leave what the step holds)');
    writeFileSync(join(t.rootfs, 'go'), '');
    assert.equal(await first, 'ran\n');
    await executor.settled();
    assert.equal(existsSync(record), false, 'the record outlived everything it names');
    assert.deepEqual(namespacesOf(owner), []);
    assert.equal(await runScript(executor, t.rootfs, 'echo again'), 'again\n');
    assert.equal(readFileSync(record, 'utf8'), t.stateDir);
  } finally {
    await executor.settled();
    t.remove();
  }
});
