import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { access, mkdir, open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { bindMount, bindMountDescriptor, isMountPoint, mountOverlay, unmount } from './mounts.js';
import { tempDir } from './testHelpers.test-util.js';

let tmp: Awaited<ReturnType<typeof tempDir>>;
before(async () => { tmp = await tempDir('mounts'); });
after(async () => { await tmp.cleanup(); });

describe('mount system calls', () => {
  it('mounts an overlay with lower dirs relative to its own cwd, leaving the process cwd and its thread pool alone', async () => {
    const root = join(tmp.path, 'overlay');
    for (const d of ['low/a', 'up', 'work', 'merged']) await mkdir(join(root, d), { recursive: true });
    await writeFile(join(root, 'low/a/file'), 'from the lower dir\n');
    const cwd = process.cwd();
    await mountOverlay({ lowerDirs: ['low'], upperDir: 'up', workDir: 'work', target: join(root, 'merged'), cwd: root });
    try {
      assert.equal(await readFile(join(root, 'merged/a/file'), 'utf8'), 'from the lower dir\n');
      await writeFile(join(root, 'merged/new'), 'written through the mount');
      assert.equal(await readFile(join(root, 'up/new'), 'utf8'), 'written through the mount');
      assert.equal(process.cwd(), cwd);
      // Relative paths of fs calls still resolve against the process cwd on every pool thread.
      await Promise.all(Array.from({ length: 16 }, () => access('package.json')));
    } finally {
      await unmount(join(root, 'merged'));
    }
    assert.equal(await isMountPoint(join(root, 'merged')), false);
  });

  it('makes a read-only bind read-only', async () => {
    const source = join(tmp.path, 'ro-source');
    const target = join(tmp.path, 'ro-target');
    await mkdir(source);
    await mkdir(target);
    await bindMount(source, target, true);
    try {
      await assert.rejects(writeFile(join(target, 'x'), 'no'), { code: 'EROFS' });
    } finally {
      await unmount(target);
    }
  });

  it('binds the inode a descriptor holds, and unmounts every mount stacked on a target', async () => {
    const source = join(tmp.path, 'pinned');
    const target = join(tmp.path, 'stacked');
    await mkdir(source);
    await mkdir(target);
    await writeFile(join(source, 'marker'), 'pinned');
    const handle = await open(source, 'r');
    try {
      await bindMountDescriptor(`/proc/${process.pid}/fd/${handle.fd}`, target);
      await bindMount(source, target, false);
    } finally {
      await handle.close();
    }
    assert.equal(await readFile(join(target, 'marker'), 'utf8'), 'pinned');
    await unmount(target);
    assert.equal(await isMountPoint(target), false);
    await unmount(target); // no mount point: nothing to do
  });

  it('says what failed where, with the errno', async () => {
    const missing = join(tmp.path, 'no-such-dir');
    await assert.rejects(bindMount(tmp.path, missing, false), (err: Error & { code?: string }) => {
      assert.equal(err.code, 'ENOENT');
      assert.match(err.message, new RegExp(`^binding ${tmp.path} on ${missing} failed: No such file or directory \\(ENOENT\\)$`));
      return true;
    });
  });
});
