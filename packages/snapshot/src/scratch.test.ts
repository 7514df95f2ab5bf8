// reclaimScratch: the scratch dirs of processes that are gone are unmounted and removed; the
// live process's own dir stays. Needs root (bind mounts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bindMount, isMountPoint } from './mounts.js';
import { ownScratchDir, reclaimScratch } from './scratch.js';

const canMount = process.getuid?.() === 0;

test('reclaimScratch unmounts and removes a dead process\'s scratch dir and keeps a live one', { skip: canMount ? false : 'needs root' }, async () => {
  const root = await fsp.mkdtemp(join(tmpdir(), 'scratch-'));
  try {
    const mine = await ownScratchDir(root);
    await fsp.writeFile(join(mine, 'in-use'), 'x');
    // A pid that cannot be running (above pid_max) stands for a killed worker.
    const dead = join(root, '999999999-12345');
    const source = join(root, 'cache');
    await fsp.mkdir(join(dead, 'pin-1', 'mount'), { recursive: true });
    await fsp.mkdir(source);
    await fsp.writeFile(join(source, 'kept'), 'cache content');
    await bindMount(source, join(dead, 'pin-1', 'mount'), false);
    assert.ok(await isMountPoint(join(dead, 'pin-1', 'mount')));

    assert.deepEqual(await reclaimScratch(root), ['999999999-12345']);
    assert.equal(existsSync(dead), false);
    assert.equal(await fsp.readFile(join(source, 'kept'), 'utf8'), 'cache content', 'unmounted before removal: what it showed is untouched');
    assert.equal(await fsp.readFile(join(mine, 'in-use'), 'utf8'), 'x', 'the live process keeps its dir');
  } finally {
    await fsp.rm(root, { recursive: true, force: true });
  }
});
