import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveChownOnScratch } from './resolveChown.js';

test('--chown of a linked copy: ids and "root" resolve without a rootfs, a user id is also the group', () => {
  assert.deepEqual(resolveChownOnScratch('1:2'), { uid: 1, gid: 2 });
  assert.deepEqual(resolveChownOnScratch('5'), { uid: 5, gid: 5 });
  assert.deepEqual(resolveChownOnScratch('root:root'), { uid: 0, gid: 0 });
  assert.deepEqual(resolveChownOnScratch(':3'), { uid: 0, gid: 3 });
});

test('--chown of a linked copy: a name fails with BuildKit\'s words (its lookup has no base input on scratch)', () => {
  assert.throws(() => resolveChownOnScratch('daemon'), /^FileOpError: invalid user index: -1 /);
  assert.throws(() => resolveChownOnScratch('1:daemon'), /invalid user index: -1/);
});
