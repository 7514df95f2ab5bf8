// A worker that dies leaves its container running: cleanupStale() on the next start removes it.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { join, resolve } from 'node:path';
import { it } from 'node:test';
import { RuncExecutor } from './RuncExecutor.js';
import { bundles, canUseRunc, makeTestDir, processesMatching, runcIds } from './testRootfs.test-util.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repoRoot = resolve(here, '../../..');

it('cleanupStale removes containers and bundles left by a SIGKILLed process', { skip: canUseRunc ? false : 'needs root and runc', timeout: 60_000 }, async () => {
  const t = await makeTestDir('amd64');
  const sleepArg = String(30000 + Math.floor(Math.random() * 10000));
  let child: ChildProcess | undefined;
  const executor = new RuncExecutor({ stateDir: t.stateDir });
  try {
    child = spawn(process.execPath, ['--conditions=source', '--import', 'tsx', join(here, 'staleChild.test-util.ts'), t.stateDir, t.rootfs, sleepArg], {
      cwd: repoRoot, stdio: ['ignore', 'pipe', 'inherit'],
    });
    const proc = child;
    await new Promise<void>((ok, fail) => {
      let out = '';
      proc.stdout?.on('data', (c: Buffer) => { out += c.toString(); if (out.includes('ready')) ok(); });
      const timer = setTimeout(() => fail(new Error('child did not start its container in 30s')), 30_000);
      proc.on('exit', (code) => fail(new Error(`child exited early with ${code}`)));
      proc.stdout?.on('data', () => clearTimeout(timer));
    });
    proc.kill('SIGKILL');
    await new Promise((r) => proc.once('exit', r));

    // The crash left a running container, its process and its bundle.
    assert.deepEqual(runcIds(executor.runcRoot), ['buildyard-stale']);
    assert.equal(processesMatching('sleep', sleepArg).length, 1);
    assert.deepEqual(bundles(t.stateDir), ['buildyard-stale']);

    const removed = await executor.cleanupStale();
    assert.deepEqual(removed, { containers: ['buildyard-stale'], bundles: ['buildyard-stale'] });
    assert.deepEqual(runcIds(executor.runcRoot), []);
    assert.deepEqual(bundles(t.stateDir), []);
    // The container's process and the orphaned `runc run` must go too.
    const deadline = Date.now() + 5000;
    while ((processesMatching('sleep', sleepArg).length > 0 || processesMatching('buildyard-stale').length > 0) && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(processesMatching('sleep', sleepArg), []);
    assert.deepEqual(processesMatching('buildyard-stale'), []);
    // Running again on a clean state works.
    assert.deepEqual(await executor.cleanupStale(), { containers: [], bundles: [] });
  } finally {
    child?.kill('SIGKILL');
    await executor.cleanupStale().catch(() => undefined);
    t.remove();
  }
});
