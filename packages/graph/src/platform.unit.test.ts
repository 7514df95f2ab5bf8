import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalizePlatform, formatPlatform, parsePlatform, InvalidPlatformError, canonicalJson, canonicalDigest, vertexCacheKey } from './index.js';

test('normalizePlatform follows containerd', () => {
  const cases: [string, string][] = [
    ['arm64', 'linux/arm64'], ['aarch64', 'linux/arm64'], ['x86_64', 'linux/amd64'], ['linux/x86-64', 'linux/amd64'],
    ['linux/arm64/v8', 'linux/arm64'], ['linux/arm64/v9.0', 'linux/arm64/v9'], ['linux/arm', 'linux/arm/v7'], ['linux/arm/6', 'linux/arm/v6'],
    ['armhf', 'linux/arm/v7'], ['linux/i386', 'linux/386'], ['Linux/AMD64', 'linux/amd64'], ['macos/arm64', 'darwin/arm64'],
    ['linux/amd64/v1', 'linux/amd64'], ['linux/amd64/v3', 'linux/amd64/v3'], ['windows/amd64', 'windows/amd64'], ['linux/riscv64', 'linux/riscv64'],
  ];
  for (const [input, want] of cases) assert.equal(normalizePlatform(input), want, input);
  assert.match(normalizePlatform('linux'), /^linux\/\w+$/);
  assert.deepEqual(parsePlatform('linux/arm/v7'), { os: 'linux', architecture: 'arm', variant: 'v7' });
  assert.equal(formatPlatform({ os: 'linux', architecture: 'arm64' }), 'linux/arm64');
});

test('invalid platforms give a clear error', () => {
  assert.throws(() => normalizePlatform('linux/amd64/v9/x'), (e: unknown) => e instanceof InvalidPlatformError && /^invalid platform "linux\/amd64\/v9\/x": cannot parse platform specifier/.test(e.message));
  assert.throws(() => normalizePlatform(''), /invalid platform "": empty/);
  assert.throws(() => normalizePlatform('foo'), /unknown operating system or architecture/);
  assert.throws(() => normalizePlatform('linux/sparc99'), /unknown architecture "sparc99"/);
  assert.throws(() => normalizePlatform('linux/am d64'), /not a valid platform component/);
});

test('canonical JSON sorts keys and drops undefined, so digests ignore construction order', () => {
  assert.equal(canonicalJson({ b: 1, a: [{ d: undefined, c: 'x' }] }), '{"a":[{"c":"x"}],"b":1}');
  assert.equal(canonicalDigest({ a: 1, b: 2 }), canonicalDigest({ b: 2, a: 1 }));
  assert.notEqual(canonicalDigest({ a: 1 }), canonicalDigest({ a: '1' }));
  assert.match(canonicalDigest({}), /^sha256:[0-9a-f]{64}$/);
  const base = { digest: 'sha256:1', parent: 'sha256:2', inputs: ['sha256:3'] };
  assert.notEqual(vertexCacheKey(base), vertexCacheKey({ ...base, parent: 'sha256:x' }));
  assert.notEqual(vertexCacheKey(base), vertexCacheKey({ ...base, content: [{ path: 'a', mode: 0o100644, digest: 'sha256:4' }] }));
  assert.equal(vertexCacheKey(base), vertexCacheKey({ ...base, content: [] }));
});

test('an enormous platform string gives a short one-line error', () => {
  assert.throws(() => normalizePlatform('x'.repeat(100_000)), (e: unknown) => e instanceof InvalidPlatformError && e.message.length < 200 && /^invalid platform "x{64}…"/.test(e.message));
});

test('allowUnknown takes any os/arch[/variant] as containerd Parse does; the syntax rules stay', () => {
  assert.equal(normalizePlatform('linux/sparc99', { allowUnknown: true }), 'linux/sparc99');
  assert.equal(normalizePlatform('Plan10/X86_64/v1', { allowUnknown: true }), 'plan10/amd64');
  assert.throws(() => normalizePlatform('nonsense', { allowUnknown: true }), /unknown operating system or architecture/);
  assert.throws(() => normalizePlatform('linux/a b', { allowUnknown: true }), /not a valid platform component/);
});
