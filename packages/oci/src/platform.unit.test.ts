import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compatiblePlatforms, formatPlatform, normalizePlatform, platformMatches, selectManifest, InvalidPlatformError, NoMatchingPlatformError } from './platform.js';
import type { Descriptor, ImageIndex } from './types.js';

test('normalisation follows containerd', () => {
  assert.deepEqual(normalizePlatform('linux/aarch64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(normalizePlatform('linux/arm64/v8'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(normalizePlatform('arm64'), { os: 'linux', architecture: 'arm64' });
  assert.deepEqual(normalizePlatform('x86_64'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(normalizePlatform('linux/amd64/v1'), { os: 'linux', architecture: 'amd64' });
  assert.deepEqual(normalizePlatform('linux/amd64/v3'), { os: 'linux', architecture: 'amd64', variant: 'v3' });
  assert.deepEqual(normalizePlatform('linux/arm'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(normalizePlatform('linux/arm/6'), { os: 'linux', architecture: 'arm', variant: 'v6' });
  assert.deepEqual(normalizePlatform('Linux/ARMHF'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.deepEqual(normalizePlatform('linux/i386'), { os: 'linux', architecture: '386' });
  assert.deepEqual(normalizePlatform({ os: 'linux', architecture: 'arm64', variant: 'v8' }), { os: 'linux', architecture: 'arm64' });
  assert.equal(normalizePlatform('linux').os, 'linux');
  assert.equal(formatPlatform({ os: 'linux', architecture: 'arm', variant: '7' }), 'linux/arm/v7');
});

test('malformed platforms are rejected with one line', () => {
  for (const bad of ['', 'linux/', 'a/b/c/d', 'beos/amd64', 'linux/amd 64']) {
    assert.throws(() => normalizePlatform(bad), InvalidPlatformError, bad);
  }
});

test('platformMatches compares normalised forms', () => {
  assert.equal(platformMatches('linux/arm64', { os: 'linux', architecture: 'arm64', variant: 'v8' }), true);
  assert.equal(platformMatches('linux/arm64/v8', 'linux/aarch64'), true);
  assert.equal(platformMatches('linux/amd64', 'linux/arm64'), false);
  assert.equal(platformMatches('linux/arm/v7', 'linux/arm/v6'), false);
  assert.equal(platformMatches('linux/amd64', { os: 'unknown', architecture: 'unknown' }), false);
  assert.equal(platformMatches('linux/amd64', undefined), false);
});

test('compatible platforms in containerd order', () => {
  assert.deepEqual(compatiblePlatforms('linux/arm/v7').map(formatPlatform), ['linux/arm/v7', 'linux/arm/v6', 'linux/arm/v5']);
  assert.deepEqual(compatiblePlatforms('linux/amd64/v3').map(formatPlatform), ['linux/amd64/v3', 'linux/amd64/v2', 'linux/amd64']);
  assert.deepEqual(compatiblePlatforms('linux/amd64').map(formatPlatform), ['linux/amd64']);
  assert.equal(compatiblePlatforms('linux/arm64').map(formatPlatform)[1], 'linux/arm/v8');
});

const desc = (hexChar: string, platform?: Descriptor['platform'], annotations?: Record<string, string>): Descriptor => ({
  mediaType: 'application/vnd.oci.image.manifest.v1+json',
  digest: `sha256:${hexChar.repeat(64)}`,
  size: 100,
  ...(platform ? { platform } : {}),
  ...(annotations ? { annotations } : {}),
});

test('selectManifest picks exact, then compatible, and explains misses', () => {
  const index: ImageIndex = {
    schemaVersion: 2,
    manifests: [
      desc('0', { os: 'unknown', architecture: 'unknown' }, { 'vnd.docker.reference.type': 'attestation-manifest' }),
      desc('1', { os: 'linux', architecture: 'amd64' }),
      desc('2', { os: 'linux', architecture: 'arm64', variant: 'v8' }),
      desc('3', { os: 'linux', architecture: 'arm', variant: 'v6' }),
      desc('4', { os: 'linux', architecture: 'arm', variant: 'v7' }),
    ],
  };
  assert.equal(selectManifest(index, 'linux/amd64').digest, index.manifests[1].digest);
  assert.equal(selectManifest(index, 'linux/arm64').digest, index.manifests[2].digest);
  assert.equal(selectManifest(index, 'aarch64').digest, index.manifests[2].digest);
  assert.equal(selectManifest(index, 'linux/arm/v7').digest, index.manifests[4].digest);
  assert.equal(selectManifest(index, 'linux/amd64/v2').digest, index.manifests[1].digest);
  const armOnly: ImageIndex = { schemaVersion: 2, manifests: [index.manifests[3]] };
  assert.equal(selectManifest(armOnly, 'linux/arm/v7').digest, index.manifests[3].digest);
  assert.throws(() => selectManifest(index, 'linux/s390x', 'r/x:1'), (err: unknown) => {
    assert.ok(err instanceof NoMatchingPlatformError);
    assert.match(err.message, /no manifest for platform linux\/s390x in r\/x:1 \(available: linux\/amd64, linux\/arm64, linux\/arm\/v6, linux\/arm\/v7\)/);
    return true;
  });
  assert.throws(() => selectManifest(armOnly, 'linux/arm/v5'), NoMatchingPlatformError);
});
