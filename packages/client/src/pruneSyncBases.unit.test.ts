// pruneSyncBases on a real directory: the newest bases stay, the rest and the expired go; other
// files of the cache dir (hash caches) and fresh temp files of a running save are left alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pruneSyncBases } from './pruneSyncBases.js';

const HOUR = 3600 * 1000;

async function dirWith(files: Record<string, number>, now: number): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'buildyard-bases-'));
  for (const [name, ageMs] of Object.entries(files)) {
    await writeFile(join(dir, name), '{}');
    const t = (now - ageMs) / 1000;
    await utimes(join(dir, name), t, t);
  }
  return dir;
}

test('keeps the newest bases, removes the surplus, the expired, stale temp files and old-format bases, nothing else', async (t) => {
  const now = Date.now();
  const dir = await dirWith({
    'base-aa.jsonl': 1 * HOUR, 'base-bb.jsonl': 2 * HOUR, 'base-cc.jsonl': 3 * HOUR, 'base-dd.jsonl': 4 * HOUR,
    'base-ee.jsonl': 40 * 24 * HOUR,
    'base-aa.jsonl.123.abcdef.tmp': 2 * HOUR, 'base-bb.jsonl.124.abcdef.tmp': 60 * 1000,
    'base-ff.json': 1 * HOUR,
    '0123abcd.json': 100 * 24 * HOUR, '0123abcd.jsonl': 100 * 24 * HOUR, 'notes.txt': 100 * 24 * HOUR,
  }, now);
  t.after(() => rm(dir, { recursive: true, force: true }));
  const removed = await pruneSyncBases(dir, { keep: 3, maxAgeMs: 30 * 24 * HOUR, tmpAgeMs: HOUR, now });
  assert.equal(removed, 4);
  assert.deepEqual((await readdir(dir)).sort(), ['0123abcd.json', '0123abcd.jsonl', 'base-aa.jsonl', 'base-bb.jsonl', 'base-bb.jsonl.124.abcdef.tmp', 'base-cc.jsonl', 'notes.txt']);
});

test('expires old bases even below the count, and a missing directory is nothing to do', async (t) => {
  const now = Date.now();
  const dir = await dirWith({ 'base-aa.jsonl': 1 * HOUR, 'base-bb.jsonl': 31 * 24 * HOUR }, now);
  t.after(() => rm(dir, { recursive: true, force: true }));
  assert.equal(await pruneSyncBases(dir, { keep: 64, maxAgeMs: 30 * 24 * HOUR, now }), 1);
  assert.deepEqual(await readdir(dir), ['base-aa.jsonl']);
  assert.equal(await pruneSyncBases(join(dir, 'absent')), 0);
});
