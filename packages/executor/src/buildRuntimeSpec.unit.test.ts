import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { buildRuntimeSpec, defaultCapabilities, type SpecInput } from './buildRuntimeSpec.js';
import { hostsFile, resolvConf } from './etcFiles.js';
import { createMountStubs, removeMountStubs } from './mountStubs.js';
import { resolveInRoot } from './resolveInRoot.js';

const base: SpecInput = {
  rootfs: '/snap/1/fs', args: ['/bin/sh', '-c', 'true'], env: ['A=1'], cwd: 'work',
  user: { uid: 1000, gid: 1000, additionalGids: [50], home: '/home/app' }, hostname: 'h', network: 'none',
  readonlyRootfs: false, cgroupNamespace: true, etcMounts: { hosts: '/b/hosts', resolvConf: '/b/resolv.conf', hostname: '/b/hostname' },
  mounts: [],
};

describe('buildRuntimeSpec', () => {
  it('uses Docker defaults', () => {
    const spec = buildRuntimeSpec(base);
    assert.deepEqual(spec.process.env, ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', 'A=1', 'HOME=/home/app']);
    assert.equal(spec.process.cwd, '/work');
    assert.deepEqual(spec.process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 50] });
    assert.equal(spec.process.capabilities.bounding.length, 14);
    assert.ok(spec.process.capabilities.effective.includes('CAP_NET_BIND_SERVICE'));
    assert.ok(!defaultCapabilities.includes('CAP_SYS_ADMIN'));
    assert.deepEqual(spec.process.rlimits, [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }]);
    assert.equal(spec.process.noNewPrivileges, false);
    assert.deepEqual(spec.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount', 'network', 'cgroup']);
    assert.deepEqual(spec.mounts.map((m) => m.destination), ['/proc', '/dev', '/dev/pts', '/dev/shm', '/dev/mqueue', '/sys', '/sys/fs/cgroup', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname']);
    assert.deepEqual(spec.root, { path: '/snap/1/fs', readonly: false });
  });
  it('puts the primary gid first among the supplementary groups, once (BuildKit ensureAdditionalGids)', () => {
    const groups = (gid: number, additionalGids: number[]) => buildRuntimeSpec({ ...base, user: { ...base.user, gid, additionalGids } }).process.user.additionalGids;
    assert.deepEqual(groups(1, []), [1]);
    assert.deepEqual(groups(0, [10, 0]), [10, 0]);
    assert.deepEqual(groups(5, [10, 63]), [5, 10, 63]);
  });

  it('shares the host network namespace for network=host and keeps a given PATH and HOME', () => {
    const spec = buildRuntimeSpec({ ...base, network: 'host', cgroupNamespace: false, env: ['PATH=/x', 'HOME=/h'] });
    assert.deepEqual(spec.linux.namespaces.map((n) => n.type), ['pid', 'ipc', 'uts', 'mount']);
    assert.deepEqual(spec.process.env, ['PATH=/x', 'HOME=/h']);
  });
  it('joins the prepared namespace for network=default, a fresh one (only lo) without it', () => {
    const joined = buildRuntimeSpec({ ...base, network: 'default', netnsPath: '/run/netns/by1-7' });
    assert.deepEqual(joined.linux.namespaces.find((n) => n.type === 'network'), { type: 'network', path: '/run/netns/by1-7' });
    const fresh = buildRuntimeSpec({ ...base, network: 'default' });
    assert.deepEqual(fresh.linux.namespaces.find((n) => n.type === 'network'), { type: 'network' });
  });
  it('orders user mounts parents first and maps their options', () => {
    const spec = buildRuntimeSpec({ ...base, mounts: [
      { type: 'tmpfs', target: '/a/b/c', sizeBytes: 4096 },
      { type: 'bind', source: '/src', target: '/a', readonly: true },
      { type: 'bind', source: '/src2', target: 'a/b', readonly: false },
    ] });
    assert.deepEqual(spec.mounts.slice(10), [
      { destination: '/a', type: 'bind', source: '/src', options: ['rbind', 'ro'] },
      { destination: '/a/b', type: 'bind', source: '/src2', options: ['rbind', 'rw'] },
      { destination: '/a/b/c', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'nodev', 'mode=1777', 'size=4096'] },
    ]);
  });
  it('rejects empty args and mounts over /', () => {
    assert.throws(() => buildRuntimeSpec({ ...base, args: [] }), /no arguments/);
    assert.throws(() => buildRuntimeSpec({ ...base, mounts: [{ type: 'tmpfs', target: '/' }] }), /cannot mount over \//);
  });
});

describe('etc files', () => {
  it('hosts has localhost, the hostname and extra hosts', () => {
    assert.equal(hostsFile('b1', [{ host: 'reg', ip: '127.0.0.5' }]), '127.0.0.1\tlocalhost b1\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.0.5\treg\n');
  });
  it('resolv.conf drops loopback nameservers unless network=host', () => {
    const host = '# generated\nnameserver 127.0.0.53\nnameserver 10.0.0.2\nnameserver ::1\nsearch corp\noptions edns0\n';
    assert.equal(resolvConf(host, 'host'), host);
    assert.equal(resolvConf(host, 'none'), 'nameserver 10.0.0.2\nsearch corp\noptions edns0\n');
    // Nothing left: Google's resolvers, as BuildKit falls back to.
    assert.equal(resolvConf('nameserver 127.0.0.1\n', 'default'), 'nameserver 8.8.8.8\nnameserver 8.8.4.4\n');
  });
  it('resolv.conf from the worker\'s [dns] settings replaces the host\'s, for every network', () => {
    const dns = { nameservers: ['10.1.1.1', '10.1.1.2'], search: ['corp', 'lan'], options: ['ndots:2'] };
    for (const network of ['default', 'none', 'host'] as const) {
      assert.equal(resolvConf('nameserver 10.0.0.2\n', network, dns), 'nameserver 10.1.1.1\nnameserver 10.1.1.2\nsearch corp lan\noptions ndots:2\n');
    }
    assert.equal(resolvConf('nameserver 10.0.0.2\n', 'default', { nameservers: [], search: ['x'], options: [] }), 'nameserver 10.0.0.2\n');
  });
});

describe('resolveInRoot and mount stubs', () => {
  it('keeps symlinks and .. inside the root', () => {
    const root = mkdtempSync(join(tmpdir(), 'buildyard-root-'));
    try {
      mkdirSync(join(root, 'etc'));
      symlinkSync('/../../../etc', join(root, 'escape'));
      symlinkSync('../../..', join(root, 'etc/up'));
      assert.equal(resolveInRoot(root, '/escape/passwd'), join(root, 'etc/passwd'));
      assert.equal(resolveInRoot(root, '/etc/up/etc/x'), join(root, 'etc/x'));
      assert.equal(resolveInRoot(root, '../../x'), join(root, 'x'));
      symlinkSync('loop', join(root, 'loop'));
      assert.throws(() => resolveInRoot(root, '/loop/x'), /too many symlinks/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  it('creates missing mount points and removes only those, keeping written content', () => {
    const root = mkdtempSync(join(tmpdir(), 'buildyard-root-'));
    try {
      mkdirSync(join(root, 'etc'));
      writeFileSync(join(root, 'etc/hosts'), 'keep\n');
      const created = createMountStubs(root, [
        { target: '/etc/hosts', kind: 'file' }, { target: '/etc/hostname', kind: 'file' },
        { target: '/proc', kind: 'dir' }, { target: '/mnt/deep/dir', kind: 'dir' },
      ]);
      assert.deepEqual(created.map((s) => s.path), [join(root, 'etc/hostname'), join(root, 'proc'), join(root, 'mnt'), join(root, 'mnt/deep'), join(root, 'mnt/deep/dir')]);
      writeFileSync(join(root, 'mnt/deep/kept'), 'x');
      removeMountStubs(created);
      assert.equal(readFileSync(join(root, 'etc/hosts'), 'utf8'), 'keep\n');
      assert.equal(existsSync(join(root, 'etc/hostname')), false);
      assert.equal(existsSync(join(root, 'proc')), false);
      assert.equal(existsSync(join(root, 'mnt/deep/dir')), false);
      assert.equal(existsSync(join(root, 'mnt/deep/kept')), true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
