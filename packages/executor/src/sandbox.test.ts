// The RUN sandbox with real runc: Docker's default seccomp profile (no new user namespaces, no
// mounts, no setns), lifted only by --security=insecure, which also runs privileged.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { allCapabilities, defaultCapabilities } from './buildRuntimeSpec.js';
import { RuncExecutor, type Meta } from './index.js';
import { defaultSeccompProfilePath, loadSeccompProfile, runtimeSeccomp } from './seccompProfile.js';
import { canUseRunc, makeTestDir, runScript, type TestDir } from './testRootfs.test-util.js';

const hasProfile = existsSync(defaultSeccompProfilePath);

describe("Docker's seccomp profile as an OCI filter", { skip: hasProfile ? false : 'run infra/dev/setup.sh (installs the profile)' }, () => {
  const allowed = (caps: readonly string[], arch = 'x64') => new Set(runtimeSeccomp(loadSeccompProfile(defaultSeccompProfilePath), caps, arch).syscalls
    .filter((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args).flatMap((r) => r.names));

  it('keeps mount, unshare, setns and clone3 for CAP_SYS_ADMIN only', () => {
    const sandbox = allowed(defaultCapabilities);
    for (const call of ['mount', 'umount2', 'unshare', 'setns', 'clone3', 'open_tree', 'fsopen', 'bpf']) assert.ok(!sandbox.has(call), `${call} allowed without CAP_SYS_ADMIN`);
    for (const call of ['read', 'execve', 'socket', 'chown', 'setuid']) assert.ok(sandbox.has(call), `${call} refused`);
    const privileged = allowed(allCapabilities);
    for (const call of ['mount', 'unshare', 'setns']) assert.ok(privileged.has(call));
  });

  it('names the host architecture and its sub-architectures, and applies per-arch rules', () => {
    const profile = loadSeccompProfile(defaultSeccompProfilePath);
    assert.deepEqual(runtimeSeccomp(profile, defaultCapabilities, 'x64').architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
    assert.equal(runtimeSeccomp(profile, defaultCapabilities, 'arm64').architectures[0], 'SCMP_ARCH_AARCH64');
    assert.ok(allowed(defaultCapabilities, 'x64').has('arch_prctl'));
    assert.ok(!allowed(defaultCapabilities, 'arm64').has('arch_prctl'));
    assert.throws(() => runtimeSeccomp(profile, defaultCapabilities, 'mips'), /no seccomp architecture known for mips/);
  });

  it('refuses a file that is not a profile, naming it', () => {
    assert.throws(() => loadSeccompProfile('/no/such/profile.json'), /cannot read the seccomp profile \/no\/such\/profile\.json \(ENOENT\): run infra\/dev\/setup\.sh/);
  });
});

describe('RUN sandbox with real runc', { skip: !canUseRunc ? 'needs root and runc' : !hasProfile ? 'needs the seccomp profile' : false }, () => {
  let t: TestDir;
  let executor: RuncExecutor;
  before(async () => {
    t = await makeTestDir('amd64');
    executor = new RuncExecutor({ stateDir: t.stateDir, egress: false });
  });
  after(async () => {
    await executor?.cleanupStale().catch(() => undefined);
    t?.remove();
  });

  const run = (script: string, extra: Partial<Meta> = {}) => runScript(executor, t.rootfs, script, extra);
  const attempts = [
    'unshare -U true && echo USERNS-OK || echo USERNS-REFUSED',
    'unshare -m true && echo MOUNTNS-OK || echo MOUNTNS-REFUSED',
    'mkdir -p /mnt/t && mount -t tmpfs t /mnt/t && echo MOUNT-OK || echo MOUNT-REFUSED',
    'grep -c "^Seccomp:.*2" /proc/self/status || true',
  ].join('; ');

  it('a sandboxed step cannot create user or mount namespaces or mount anything, under seccomp mode 2', async () => {
    const out = await run(attempts);
    for (const refused of ['USERNS-REFUSED', 'MOUNTNS-REFUSED', 'MOUNT-REFUSED']) assert.match(out, new RegExp(refused), out);
    assert.match(out, /^1$/m, 'the step runs under a seccomp filter');
  });

  it('--security=insecure runs privileged and unconfined', async () => {
    const out = await run(attempts, { security: 'insecure' });
    for (const ok of ['USERNS-OK', 'MOUNTNS-OK', 'MOUNT-OK']) assert.match(out, new RegExp(ok), out);
    assert.match(out, /^0$/m, 'no seccomp filter');
  });
});
