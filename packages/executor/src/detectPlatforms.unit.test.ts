import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canRunPlatform, detectPlatforms, needsEmulation, normalizePlatform, parseBinfmtEntry, platformsFromBinfmt } from './detectPlatforms.js';

describe('normalizePlatform', () => {
  it('follows containerd', () => {
    assert.equal(normalizePlatform('arm64'), 'linux/arm64');
    assert.equal(normalizePlatform('linux/aarch64'), 'linux/arm64');
    assert.equal(normalizePlatform('linux/arm64/v8'), 'linux/arm64');
    assert.equal(normalizePlatform('linux/x86_64'), 'linux/amd64');
    assert.equal(normalizePlatform('linux/arm'), 'linux/arm/v7');
    assert.equal(normalizePlatform('linux/arm/v6'), 'linux/arm/v6');
    assert.equal(normalizePlatform('i386'), 'linux/386');
  });
});

describe('binfmt_misc entries', () => {
  const aarch64 = parseBinfmtEntry('qemu-aarch64', 'enabled\ninterpreter /usr/bin/qemu-aarch64-static\nflags: OCF\noffset 0\nmagic 7f45\nmask ffff\n');
  it('parses an entry', () => {
    assert.deepEqual(aarch64, { name: 'qemu-aarch64', enabled: true, interpreter: '/usr/bin/qemu-aarch64-static', flags: 'OCF' });
  });
  it('maps usable qemu entries to platforms', () => {
    const entries = [
      aarch64,
      parseBinfmtEntry('qemu-arm', 'enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: F\n'),
      parseBinfmtEntry('qemu-riscv64', 'disabled\ninterpreter /usr/bin/qemu-riscv64-static\nflags: F\n'),
      parseBinfmtEntry('qemu-s390x', 'enabled\ninterpreter /usr/bin/qemu-s390x\nflags: OC\n'), // no F: unusable in a rootfs
      parseBinfmtEntry('qemu-ppc64le', 'enabled\ninterpreter /gone/qemu-ppc64le\nflags: F\n'),
      parseBinfmtEntry('python3.11', 'enabled\ninterpreter /usr/bin/python3.11\nflags: F\n'),
    ];
    const exists = (p: string) => !p.startsWith('/gone');
    assert.deepEqual(platformsFromBinfmt(entries, exists), ['linux/arm64', 'linux/arm/v7', 'linux/arm/v6']);
  });
});

describe('needsEmulation / canRunPlatform', () => {
  const platforms = { native: ['linux/amd64', 'linux/386'], emulated: ['linux/arm64'] };
  it('decides from the detected platforms', () => {
    assert.equal(needsEmulation('linux/amd64', platforms), false);
    assert.equal(needsEmulation('386', platforms), false);
    assert.equal(needsEmulation('linux/arm64/v8', platforms), true);
    assert.equal(canRunPlatform('aarch64', platforms), true);
    assert.equal(canRunPlatform('linux/s390x', platforms), false);
  });
  it('detects the host arch as native', () => {
    const host = { x64: 'linux/amd64', arm64: 'linux/arm64' }[process.arch as 'x64' | 'arm64'];
    const detected = detectPlatforms({ refresh: true });
    if (host) assert.equal(detected.native[0], host);
    for (const p of detected.emulated) assert.ok(!detected.native.includes(p));
  });
});
