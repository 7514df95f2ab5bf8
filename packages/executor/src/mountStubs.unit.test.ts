import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { createMountStubs, removeMountStubs, type MountStub } from './mountStubs.js';

const stubs: MountStub[] = [{ target: '/x/sshd', kind: 'dir' }, { target: '/x/lockfile', kind: 'file' }];

/** A rootfs and, beside it, a host directory holding an empty dir and an empty file named as the stubs. */
function fixture(): { base: string; rootfs: string; host: string } {
  const base = mkdtempSync(join(tmpdir(), 'buildyard-stubs-'));
  const rootfs = join(base, 'rootfs');
  const host = join(base, 'host-run');
  mkdirSync(rootfs);
  mkdirSync(host);
  mkdirSync(join(host, 'sshd'));
  writeFileSync(join(host, 'lockfile'), '');
  return { base, rootfs, host };
}

describe('mount stubs', () => {
  it('are removed after a normal run, parents included', () => {
    const { base, rootfs, host } = fixture();
    try {
      const created = createMountStubs(rootfs, stubs);
      assert.deepEqual(created.map((s) => s.path), [join(rootfs, 'x'), join(rootfs, 'x/sshd'), join(rootfs, 'x/lockfile')]);
      assert.ok(existsSync(join(rootfs, 'x/sshd')) && existsSync(join(rootfs, 'x/lockfile')));
      removeMountStubs(created);
      assert.equal(existsSync(join(rootfs, 'x')), false);
      assert.ok(existsSync(join(host, 'sshd')) && existsSync(join(host, 'lockfile')));
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('are never removed through a symlink the step put in place of a parent', () => {
    const { base, rootfs, host } = fixture();
    try {
      const created = createMountStubs(rootfs, stubs);
      // The step, as root in the rootfs: mv /x /x.old; ln -s /run /x
      renameSync(join(rootfs, 'x'), join(rootfs, 'x.old'));
      symlinkSync(host, join(rootfs, 'x'));
      removeMountStubs(created);
      assert.equal(existsSync(join(host, 'sshd')), true, 'the host directory was removed through the symlink');
      assert.equal(existsSync(join(host, 'lockfile')), true, 'the host file was removed through the symlink');
      // The moved stubs are the step's business: left where it put them.
      assert.ok(existsSync(join(rootfs, 'x.old/sshd')) && existsSync(join(rootfs, 'x.old/lockfile')));
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });

  it('are never removed through a relative symlink or in place of the stub itself', () => {
    const { base, rootfs, host } = fixture();
    try {
      const created = createMountStubs(rootfs, stubs);
      // mv /x /x.old; ln -s ../../host-run /x (relative, climbing out of the rootfs on the host)
      renameSync(join(rootfs, 'x'), join(rootfs, 'x.old'));
      symlinkSync('../host-run', join(rootfs, 'x'));
      removeMountStubs(created);
      assert.ok(existsSync(join(host, 'sshd')) && existsSync(join(host, 'lockfile')));
      // The stubs themselves replaced by links to host paths, and by new empty ones of the step.
      rmSync(join(rootfs, 'x'));
      renameSync(join(rootfs, 'x.old'), join(rootfs, 'x'));
      rmSync(join(rootfs, 'x/sshd'), { recursive: true });
      symlinkSync(join(host, 'sshd'), join(rootfs, 'x/sshd'));
      // (made before the stub goes, so it cannot reuse the stub's inode number)
      writeFileSync(join(rootfs, 'x/lockfile.new'), '');
      renameSync(join(rootfs, 'x/lockfile.new'), join(rootfs, 'x/lockfile'));
      removeMountStubs(created);
      assert.ok(existsSync(join(host, 'sshd')) && existsSync(join(host, 'lockfile')));
      assert.ok(existsSync(join(rootfs, 'x/lockfile')), 'a file the step made in place of the stub is kept');
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  });
});
