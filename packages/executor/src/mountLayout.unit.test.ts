import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkMountLayout } from './mountLayout.js';
import type { Mount } from './types.js';

/** A rootfs with /proc, /dev, /sys and /src, plus what `make` adds; removed after `body`. */
function withRootfs(make: (root: string, scratch: string) => void, body: (root: string, scratch: string) => void): void {
  const scratch = mkdtempSync(join(tmpdir(), 'buildyard-layout-'));
  const root = join(scratch, 'rootfs');
  for (const d of ['proc', 'dev', 'sys', 'src']) mkdirSync(join(root, d), { recursive: true });
  try {
    make(root, scratch);
    body(root, scratch);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

const cache = (target: string, source = '/nonexistent'): Mount => ({ type: 'bind', source, target, readonly: false, shared: true });
const readonlyBind = (target: string, source: string): Mount => ({ type: 'bind', source, target, readonly: true });

test('targets in /proc, /sys and runc\'s /dev are refused; /dev/shm and heredocs\' /dev/pipes are the build\'s', () => {
  withRootfs(() => {}, (root) => {
    for (const target of ['/dev', '/dev/', '/dev/null', '/dev/pts', '/dev/pts/0', '/dev/console', '/proc', '/proc/sys/kernel', '/sys', '/sys/fs/cgroup', '/x/../dev/null']) {
      assert.throws(() => checkMountLayout(root, [cache(target)]), /^Error: mount target \/\S* is inside \/(dev|proc|sys), which the container runtime sets up: choose another target/, target);
    }
    checkMountLayout(root, [{ type: 'tmpfs', target: '/dev/shm' }, cache('/dev/shm/t'), readonlyBind('/dev/pipes/EOF', '/nonexistent'), cache('/devices'), cache('/proc2')]);
  });
});

test('an image whose /dev, /proc or /sys is a symlink or a file is refused: runc would set it up through the link', () => {
  for (const dir of ['dev', 'proc', 'sys']) {
    withRootfs((root) => { rmSync(join(root, dir), { recursive: true }); symlinkSync('/src', join(root, dir)); }, (root) => {
      assert.throws(() => checkMountLayout(root, []), new RegExp(`^Error: the image's /${dir} is a symlink, not a directory: .*make /${dir} a directory in the image$`));
    });
  }
  withRootfs((root) => { rmSync(join(root, 'dev'), { recursive: true }); writeFileSync(join(root, 'dev'), ''); }, (root) => {
    assert.throws(() => checkMountLayout(root, []), /the image's \/dev is a file/);
  });
  withRootfs((root) => { rmSync(join(root, 'dev'), { recursive: true }); }, (root) => checkMountLayout(root, []));
});

test('a mount inside a cache mount is refused: another step may swap a directory of it for a link while runc mounts', () => {
  withRootfs(() => {}, (root) => {
    assert.throws(() => checkMountLayout(root, [cache('/root/.cache'), readonlyBind('/root/.cache/pip/token', '/nonexistent')]),
      /^Error: mount target \/root\/\.cache\/pip\/token is inside the cache mount at \/root\/\.cache, which other steps change while this one starts: mount it outside \/root\/\.cache$/);
    // The other way round is the common layout: a cache inside a read-only bind of the sources.
    checkMountLayout(root, [readonlyBind('/src', root), cache('/src/node_modules'), { type: 'tmpfs', target: '/tmp' }, cache('/tmp/cache')]);
  });
});

test('a target reached through a symlink of a mount below it, or of the image into /proc, /dev or another mount, is refused', () => {
  withRootfs((root, scratch) => {
    mkdirSync(join(scratch, 'ctx', 'real'), { recursive: true });
    symlinkSync('/proc/sys/kernel', join(scratch, 'ctx', 'out'));
    symlinkSync('/dev', join(root, 'devlink'));
    symlinkSync('/cache/deep', join(root, 'tocache'));
    symlinkSync('/run', join(root, 'varrun'));
  }, (root, scratch) => {
    const ctx = join(scratch, 'ctx');
    assert.throws(() => checkMountLayout(root, [readonlyBind('/src', ctx), cache('/src/out/x')]),
      /^Error: mount target \/src\/out\/x passes through the symlink \/src\/out of the mount at \/src: choose a target without symlinks$/);
    checkMountLayout(root, [readonlyBind('/src', ctx), cache('/src/real/x'), cache('/src/missing/x')]);
    assert.throws(() => checkMountLayout(root, [cache('/devlink/null')]), /^Error: mount target \/devlink\/null leads through a symlink of the image to \/dev\/null, inside \/dev: mount at a path without symlinks$/);
    assert.throws(() => checkMountLayout(root, [cache('/cache'), readonlyBind('/tocache/x', ctx)]), /^Error: mount target \/tocache\/x leads through a symlink of the image to \/cache\/deep\/x, inside \/cache: /);
    // A link the image has for its own layout (Debian's /var/run -> /run) is followed as runc does.
    checkMountLayout(root, [cache('/varrun/lock')]);
  });
});
