import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, linkSync, mkdirSync, mkdtempSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import { diskUsage, removeTree } from './diskTree.js';

const MiB = 1024 * 1024;

/** A tree as a RUN step can leave one: 2,400 levels (a 4,800-byte path) in three hops, `size` bytes at the bottom. */
function deepTree(dir: string, size: number): void {
  execFileSync('sh', ['-c', `for j in 1 2 3; do p=$(printf "d/%.0s" $(seq 800)); mkdir -p $p && cd -P $p || exit 1; done; head -c ${size} /dev/urandom > deep`], { cwd: dir });
}

test('diskUsage counts what lies deeper than PATH_MAX, hard links once, and only old entries when asked', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-du-'));
  try {
    deepTree(dir, 4 * MiB);
    const withDeep = await diskUsage(dir);
    assert.ok(withDeep >= 4 * MiB, `counted ${withDeep} bytes`);

    mkdirSync(join(dir, 'flat'));
    writeFileSync(join(dir, 'flat/a'), Buffer.alloc(MiB, 1));
    linkSync(join(dir, 'flat/a'), join(dir, 'flat/b'));
    const flat = await diskUsage(join(dir, 'flat'));
    assert.ok(flat >= MiB && flat < 2 * MiB, `a hard-linked MiB counted once, got ${flat}`);

    const hourAgo = Date.now() - 3600_000;
    utimesSync(join(dir, 'flat/a'), hourAgo / 1000, hourAgo / 1000);
    writeFileSync(join(dir, 'flat/new'), Buffer.alloc(MiB, 2));
    const old = await diskUsage(join(dir, 'flat'), { modifiedBefore: Date.now() - 60_000 });
    assert.ok(old >= MiB && old < 2 * MiB, `only the old file (once), got ${old}`);
    assert.equal(await diskUsage(join(dir, 'missing')), 0);
  } finally {
    await removeTree(dir);
  }
});

test('removeTree removes a tree deeper than PATH_MAX, which fs.rm gives up on', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'buildyard-rm-'));
  deepTree(dir, 1024);
  await assert.rejects(rm(dir, { recursive: true, force: true }), /ENAMETOOLONG/);
  await removeTree(dir);
  assert.equal(existsSync(dir), false);
  await removeTree(dir); // gone already: nothing to do, as rm -f
});
