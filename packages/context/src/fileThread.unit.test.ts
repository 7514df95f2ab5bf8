// The file thread against the real filesystem: files made with their mode, an existing file
// refused with its errno code (the caller's cleanup keys on it), renames in order, a tree's
// copies and symlinks placed with their times.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { placeEach, renameStaged, writeStaged } from './fileThread.js';

const dir = mkdtempSync(join(tmpdir(), 'buildyard-staging-thread-'));
after(() => rmSync(dir, { recursive: true, force: true }));

test('writes each file with its mode, refuses an existing one with its code, renames in order', async () => {
  await writeStaged([
    { path: join(dir, 'a'), data: Buffer.from('aaa'), mode: 0o755 },
    { path: join(dir, 'b'), data: new Uint8Array([98]), mode: 0o600 },
  ]);
  const a = statSync(join(dir, 'a'));
  assert.equal(readFileSync(join(dir, 'a'), 'utf8'), 'aaa');
  assert.equal(a.mode & 0o777, 0o755 & ~process.umask());
  assert.equal(statSync(join(dir, 'b')).mode & 0o777, 0o600);

  writeFileSync(join(dir, 'taken'), 'keep me');
  await assert.rejects(writeStaged([{ path: join(dir, 'taken'), data: Buffer.from('x'), mode: 0o644 }]), (err: NodeJS.ErrnoException) => err.code === 'EEXIST');
  assert.equal(readFileSync(join(dir, 'taken'), 'utf8'), 'keep me', 'an existing file is never overwritten');

  await renameStaged([[join(dir, 'a'), join(dir, 'a2')], [join(dir, 'b'), join(dir, 'b2')]]);
  assert.deepEqual([existsSync(join(dir, 'a')), existsSync(join(dir, 'a2')), existsSync(join(dir, 'b2'))], [false, true, true]);
  await assert.rejects(renameStaged([[join(dir, 'missing'), join(dir, 'm2')]]), (err: NodeJS.ErrnoException) => err.code === 'ENOENT');
});

test('places copies with their mode and time and symlinks with theirs; never writes through what is already at a path', async () => {
  const src = join(dir, 'blob');
  writeFileSync(src, 'content');
  await placeEach([
    { path: join(dir, 'copy'), time: 1_600_000_000.5, from: src, mode: 0o750 },
    { path: join(dir, 'plain'), time: 1_500_000_000, from: src },
    { path: join(dir, 'link'), time: 1_400_000_000, linkTarget: 'copy' },
  ]);
  const copy = statSync(join(dir, 'copy'));
  assert.equal(readFileSync(join(dir, 'copy'), 'utf8'), 'content');
  assert.equal(copy.mode & 0o7777, 0o750, 'chmod is not subject to the umask');
  assert.equal(copy.mtimeMs, 1_600_000_000_500);
  assert.equal(statSync(join(dir, 'plain')).mode & 0o777, statSync(src).mode & 0o777, 'no mode: the blob\'s');
  assert.equal(readlinkSync(join(dir, 'link')), 'copy');
  assert.equal(lstatSync(join(dir, 'link')).mtimeMs, 1_400_000_000_000);

  // A symlink at the path (to a file outside the tree) is neither followed nor replaced.
  const outside = join(dir, 'outside');
  writeFileSync(outside, 'host file');
  symlinkSync(outside, join(dir, 'planted'));
  await assert.rejects(placeEach([{ path: join(dir, 'planted'), time: 0, from: src }]), (err: NodeJS.ErrnoException) => err.code === 'EEXIST');
  assert.equal(readFileSync(outside, 'utf8'), 'host file');
  // The first failure stops the rest of the batch.
  await assert.rejects(placeEach([{ path: join(dir, 'copy'), time: 0, from: src }, { path: join(dir, 'after'), time: 0, from: src }]));
  assert.equal(existsSync(join(dir, 'after')), false);
});
