import { test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fsp } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathInRoot, pinPathInRoot } from './pathInRoot.js';

async function tree(): Promise<{ base: string; root: string; outside: string }> {
  const base = await fsp.mkdtemp(join(tmpdir(), 'pathinroot-'));
  const root = join(base, 'root');
  const outside = join(base, 'outside');
  await fsp.mkdir(join(root, 'a/b'), { recursive: true });
  await fsp.mkdir(outside);
  await fsp.writeFile(join(outside, 'secret'), 'host');
  await fsp.writeFile(join(root, 'own'), 'stage');
  await fsp.symlink('/', join(root, 'slash'));
  await fsp.symlink('../../../../..', join(root, 'a/b/up'));
  await fsp.symlink(outside, join(root, 'abs')); // the host path, read as a path inside the root
  await fsp.symlink('loop2', join(root, 'loop1'));
  await fsp.symlink('loop1', join(root, 'loop2'));
  return { base, root, outside };
}

test('pathInRoot: links to /, "..", and host paths all resolve inside the root', async () => {
  const t = await tree();
  try {
    const real = await fsp.realpath(t.root);
    assert.equal((await pathInRoot(t.root, '/slash', 'x')).path, real);
    assert.equal((await pathInRoot(t.root, 'a/b/up/own', 'x')).path, join(real, 'own'));
    assert.equal((await pathInRoot(t.root, '../../slash/a/../own', 'x')).rel, 'own');
    await assert.rejects(pathInRoot(t.root, `/abs/secret`, 'RUN --mount=type=bind,source=/abs/secret'), /RUN --mount=type=bind,source=\/abs\/secret: \/.*secret does not exist in the mounted source/);
    await assert.rejects(pathInRoot(t.root, '/loop1', 'x'), /too many levels of symbolic links/);
  } finally {
    await fsp.rm(t.base, { recursive: true, force: true });
  }
});

test('pinPathInRoot: the descriptor keeps naming the checked directory after its name becomes a link out', async () => {
  const t = await tree();
  try {
    const pinned = await pinPathInRoot(t.root, 'cache/sub', 'x', { mode: 0o755, owner: { uid: process.getuid!(), gid: process.getgid!() } });
    try {
      await fsp.writeFile(join(t.root, 'cache/sub/mine'), 'x');
      // The attacker swaps the checked directory for a link to the host directory.
      await fsp.rename(join(t.root, 'cache/sub'), join(t.root, 'cache/moved'));
      await fsp.symlink(t.outside, join(t.root, 'cache/sub'));
      assert.deepEqual(await fsp.readdir(pinned.path), ['mine']);
      assert.equal(await fsp.readlink(pinned.path), join(await fsp.realpath(t.root), 'cache/moved'));
    } finally {
      await pinned.close();
    }
    // Asked again, the link is resolved inside the root: `outside` is not there.
    await assert.rejects(pinPathInRoot(t.root, 'cache/sub', 'x'), /does not exist in the mounted source/);
  } finally {
    await fsp.rm(t.base, { recursive: true, force: true });
  }
});
