// The per-context digest cache: saves of one context directory at the same time (bake builds
// several targets sharing a context in one process) all succeed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HashCache } from './HashCache.js';

test('concurrent saves of one context directory\'s cache all succeed and leave one file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-hashcache-'));
  try {
    const caches = await Promise.all(Array.from({ length: 8 }, () => HashCache.open(dir, '/some/context')));
    caches.forEach((c, i) => c.set(`file${i}`, { size: i, mtimeNs: '1', ctimeNs: '2', ino: '3' }, `sha256:${i}`));
    await Promise.all(caches.map((c) => c.save()));
    const files = await readdir(dir);
    assert.equal(files.length, 1, `no temporary file is left: ${files.join(', ')}`);
    const saved = JSON.parse(await readFile(join(dir, files[0]), 'utf8')) as Record<string, unknown>;
    assert.equal(Object.keys(saved).length, 1, 'one whole save won');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
