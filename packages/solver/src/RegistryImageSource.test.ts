// A pull shared by several builds: one build's cancel must not fail the others (real registry).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { FsContentStore, RegistryClient } from '@buildyard/oci';
import { seededRegistryFixture } from '@buildyard/testkit';
import { RegistryImageSource } from './RegistryImageSource.js';

const fx = seededRegistryFixture('pull');

function freshSource(): RegistryImageSource {
  const dir = mkdtempSync(join(fx.dir, 'pull-'));
  return new RegistryImageSource(new RegistryClient(), new FsContentStore(dir));
}

test('a build cancelled while waiting for a shared pull stops at once; the other build still gets the image', async () => {
  const images = freshSource();
  const digest = fx.busybox.manifests['linux/amd64'];
  const cancelled = new AbortController();
  const first = images.pull(fx.busybox.reference, digest, 'linux/amd64', cancelled.signal);
  const second = images.pull(fx.busybox.reference, digest, 'linux/amd64', new AbortController().signal);
  cancelled.abort(new Error('build cancelled'));
  await assert.rejects(first, /build cancelled/);
  const image = await second;
  assert.ok(image.layers.length > 0 && image.layers.every((l) => /^sha256:[0-9a-f]{64}$/.test(l.digest)));
});

test('when the only waiting build is cancelled the pull is dropped, and the next build pulls again', async () => {
  const images = freshSource();
  const digest = fx.busybox.manifests['linux/amd64'];
  const cancelled = new AbortController();
  const first = images.pull(fx.busybox.reference, digest, 'linux/amd64', cancelled.signal);
  cancelled.abort(new Error('build cancelled'));
  await assert.rejects(first, /build cancelled/);
  const again = await images.pull(fx.busybox.reference, digest, 'linux/amd64', new AbortController().signal);
  assert.ok(again.layers.length > 0);
});

test('a build whose signal is already aborted does not start a pull', async () => {
  const images = freshSource();
  const signal = AbortSignal.abort(new Error('gone before it asked'));
  assert.throws(() => images.pull(fx.busybox.reference, fx.busybox.manifests['linux/amd64'], 'linux/amd64', signal), /gone before it asked/);
});
