// An arm64 busybox under QEMU: binfmt_misc's F flag opens the interpreter at registration, so
// nothing is copied into the rootfs.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { it } from 'node:test';
import { detectPlatforms, needsEmulation, RuncExecutor } from './index.js';
import { bundles, canUseRunc, makeTestDir, runcIds } from './testRootfs.test-util.js';

const platforms = detectPlatforms();
const skip = !canUseRunc ? 'needs root and runc' : process.arch !== 'x64' ? 'checks arm64 emulation on an amd64 host' : false;

it('runs an arm64 rootfs under QEMU and uname -m says aarch64', { skip }, async () => {
  assert.ok(platforms.emulated.includes('linux/arm64'), 'qemu-aarch64 binfmt handler with the F flag is not registered: run infra/dev/setup.sh');
  assert.equal(needsEmulation('linux/arm64'), true);
  const t = await makeTestDir('arm64');
  const executor = new RuncExecutor({ stateDir: t.stateDir });
  try {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => { text += c.toString(); });
    await executor.run({
      rootfs: t.rootfs, mounts: [], stdout: out,
      meta: { args: ['/bin/sh', '-c', 'uname -m; id -un'], env: [], cwd: '/', user: 'app', network: 'none', platform: 'linux/arm64' },
    });
    assert.equal(text, 'aarch64\napp\n');
    assert.deepEqual(runcIds(executor.runcRoot), []);
    assert.deepEqual(bundles(t.stateDir), []);
  } finally {
    await executor.cleanupStale().catch(() => undefined);
    t.remove();
  }
});
