import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FsContentStore } from '@buildyard/oci';
import { openSharedBlobStore, RegistryBlobStore, TieredBlobStore } from './index.js';

test('openSharedBlobStore picks the store config asks for', () => {
  const fs = openSharedBlobStore({ type: 'fs', sharedDir: '/srv/shared/blobs', localDir: '/var/lib/by/blobs' });
  assert.equal(fs instanceof TieredBlobStore, false);
  assert.equal(fs.root, '/srv/shared/blobs');

  const reg = openSharedBlobStore({ type: 'registry', sharedDir: '/srv/shared/blobs', localDir: '/var/lib/by/blobs', repository: '127.0.0.1:5000/buildyard/blobs' });
  assert.ok(reg instanceof TieredBlobStore);
  assert.ok(reg instanceof FsContentStore);
  assert.equal(reg.root, '/var/lib/by/blobs');
  assert.ok(reg.remote instanceof RegistryBlobStore);
  assert.equal(reg.remote.name, '127.0.0.1:5000/buildyard/blobs');
});

test('a registry store without a repository, or with a tag, is a one-line error', () => {
  assert.throws(() => openSharedBlobStore({ type: 'registry', sharedDir: '/a', localDir: '/b' }), /needs blobStore\.repository/);
  assert.throws(() => openSharedBlobStore({ type: 'registry', sharedDir: '/a', localDir: '/b', repository: '127.0.0.1:5000/x:tag' }), /without one/);
  assert.throws(() => openSharedBlobStore({ type: 'registry', sharedDir: '/a', localDir: '/b', repository: 'UPPER case/x' }), /is invalid/);
});
