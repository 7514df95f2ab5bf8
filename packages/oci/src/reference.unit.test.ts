import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatReference, parseReference, registryApiHost, InvalidReferenceError } from './reference.js';

const D = 'sha256:' + 'a'.repeat(64);

test('Docker defaults: docker.io, library/, latest', () => {
  assert.deepEqual(parseReference('busybox'), { registry: 'docker.io', repository: 'library/busybox', tag: 'latest' });
  assert.deepEqual(parseReference('busybox:1.36'), { registry: 'docker.io', repository: 'library/busybox', tag: '1.36' });
  assert.deepEqual(parseReference('someone/app'), { registry: 'docker.io', repository: 'someone/app', tag: 'latest' });
  assert.deepEqual(parseReference('index.docker.io/library/alpine'), { registry: 'docker.io', repository: 'library/alpine', tag: 'latest' });
  assert.deepEqual(parseReference('busybox', { defaultTag: false }), { registry: 'docker.io', repository: 'library/busybox' });
});

test('registries with ports, digests, tag+digest', () => {
  assert.deepEqual(parseReference('127.0.0.1:5000/x/y:t'), { registry: '127.0.0.1:5000', repository: 'x/y', tag: 't' });
  assert.deepEqual(parseReference(`localhost:5000/busybox@${D}`), { registry: 'localhost:5000', repository: 'busybox', digest: D });
  assert.deepEqual(parseReference(`ghcr.io/o/r:v1@${D}`), { registry: 'ghcr.io', repository: 'o/r', tag: 'v1', digest: D });
  assert.deepEqual(parseReference('localhost/foo'), { registry: 'localhost', repository: 'foo', tag: 'latest' });
});

test('formatReference round-trips and can shorten Hub names', () => {
  for (const s of ['docker.io/library/busybox:latest', `127.0.0.1:5000/a/b@${D}`, `ghcr.io/o/r:v1@${D}`]) {
    assert.equal(formatReference(parseReference(s)), s);
  }
  assert.equal(formatReference(parseReference('busybox'), { familiar: true }), 'busybox:latest');
  assert.equal(formatReference(parseReference('me/app:1'), { familiar: true }), 'me/app:1');
  assert.equal(formatReference(parseReference('ghcr.io/o/r:1'), { familiar: true }), 'ghcr.io/o/r:1');
});

test('invalid references give one line naming the input', () => {
  for (const bad of ['', 'UPPER/case', 'bad:tag:x', 'ubuntu@sha256:abc', 'a'.repeat(64), 'x/y:' + 't'.repeat(200)]) {
    assert.throws(() => parseReference(bad), (err: unknown) => {
      assert.ok(err instanceof InvalidReferenceError, `${bad}: ${String(err)}`);
      assert.ok(err.message.includes(`"${bad}"`));
      assert.ok(!err.message.includes('\n'));
      return true;
    });
  }
});

test('Docker Hub API lives on registry-1.docker.io', () => {
  assert.equal(registryApiHost('docker.io'), 'registry-1.docker.io');
  assert.equal(registryApiHost('127.0.0.1:5000'), '127.0.0.1:5000');
});
