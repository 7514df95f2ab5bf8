// The file thread against the real filesystem: files made with their mode, an
// existing file refused with its errno code (the caller's cleanup keys on it), renames in order.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { renameStaged, writeStaged } from './fileThread.js';

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
