// The per-context digest cache: saves of one context directory at the same time (bake builds
// several targets sharing a context in one process) all succeed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashCache, RACY_MARGIN_NS } from './HashCache.js';

test('concurrent saves of one context directory\'s cache all succeed and leave one file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-hashcache-'));
  try {
    const caches = await Promise.all(Array.from({ length: 8 }, () => HashCache.open(dir, '/some/context')));
    caches.forEach((c, i) => c.set(`file${i}`, { size: i, mtimeNs: '1', ctimeNs: '2', ino: '3' }, `sha256:${i}`, 10n ** 18n));
    await Promise.all(caches.map((c) => c.save()));
    const files = await readdir(dir);
    assert.equal(files.length, 1, `no temporary file is left: ${files.join(', ')}`);
    const saved = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as Record<string, unknown>;
    assert.equal(Object.keys(saved).length, 1, 'one whole save won');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a row hashed within the racy margin of its file times is not trusted; an older one is', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-hashcache-'));
  try {
    const hashedAt = 1_700_000_000_000_000_000n;
    const st = (t: bigint) => ({ size: 4, mtimeNs: String(t), ctimeNs: String(t), ino: '9' });
    const c = await HashCache.open(dir, '/ctx');
    // Written in the same tick as the read that hashed it: a second same-size write in that tick
    // would leave size, mtime, ctime and inode as they are.
    c.set('racy', st(hashedAt), 'sha256:r', hashedAt);
    c.set('ctime-racy', { ...st(hashedAt - RACY_MARGIN_NS - 1n), ctimeNs: String(hashedAt - 1n) }, 'sha256:c', hashedAt);
    c.set('old', st(hashedAt - RACY_MARGIN_NS - 1n), 'sha256:o', hashedAt);
    await c.save();
    const again = await HashCache.open(dir, '/ctx');
    assert.equal(again.get('racy', st(hashedAt)), undefined);
    assert.equal(again.get('ctime-racy', { ...st(hashedAt - RACY_MARGIN_NS - 1n), ctimeNs: String(hashedAt - 1n) }), undefined);
    assert.equal(again.get('old', st(hashedAt - RACY_MARGIN_NS - 1n)), 'sha256:o');
    // Same size and mtime, new ctime (content rewritten, mtime put back): a miss.
    assert.equal(again.get('old', { ...st(hashedAt - RACY_MARGIN_NS - 1n), ctimeNs: String(hashedAt) }), undefined);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
