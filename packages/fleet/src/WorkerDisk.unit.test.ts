// The worker's disk figure against `du` on a real directory tree, including the context copies
// a worker keeps outside its state dir when contexts come through a registry blob store.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkerDisk } from './WorkerDisk.js';

const du = (path: string) => Number(execFileSync('du', ['-s', '-B1', '-x', path], { encoding: 'utf8' }).split('\t')[0]);

function fill(dir: string, files: Record<string, number>): void {
  mkdirSync(dir, { recursive: true });
  for (const [name, size] of Object.entries(files)) writeFileSync(join(dir, name), Buffer.alloc(size, 7));
}

test('the contexts figure counts the local context copies and matches du', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-workerdisk-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stateDir = join(root, 'state');
  const copiesDir = join(root, 'shared', 'contexts', 'content');
  fill(join(stateDir, 'snapshots', 'a'), { layer: 50_000 });
  fill(join(stateDir, 'contexts', 'ab'.repeat(32)), { 'main.go': 9_000 });
  fill(join(stateDir, 'blobs'), { blob: 20_000 });
  fill(join(copiesDir, 'sha256'), { old: 70_000, young: 30_000 });
  const hourAgo = new Date(Date.now() - 3600_000);
  utimesSync(join(copiesDir, 'sha256', 'old'), hourAgo, hourAgo);

  const buildRunning = async () => false;
  const contextPaths = async () => new Set<string>();
  const withCopies = await new WorkerDisk({ stateDir, buildRunning, contextPaths, contextCopies: { dir: copiesDir, minAgeMs: 600_000 } }).measure(true);
  const byKind = Object.fromEntries(withCopies.map((p) => [p.kind, p]));
  assert.equal(byKind.contexts.bytes, du(join(stateDir, 'contexts')) + du(copiesDir));
  assert.equal(byKind.snapshots.bytes, du(join(stateDir, 'snapshots')));
  assert.equal(byKind.cache.bytes, du(join(stateDir, 'blobs')));
  // Unused materialised contexts and copies old enough for a GC to trim; the young copy stays.
  assert.equal(byKind.contexts.reclaimableBytes, du(join(stateDir, 'contexts')) + du(join(copiesDir, 'sha256', 'old')));
  // While a stage runs the GC trims no copy.
  const busy = await new WorkerDisk({ stateDir, buildRunning, contextPaths, contextCopies: { dir: copiesDir, minAgeMs: 600_000 } }).measure(false);
  assert.equal(busy.find((p) => p.kind === 'contexts')!.reclaimableBytes, du(join(stateDir, 'contexts')));

  // With an fs blob store that dir is the machine's shared store, not this worker's.
  const without = await new WorkerDisk({ stateDir, buildRunning, contextPaths }).measure(true);
  assert.equal(without.find((p) => p.kind === 'contexts')!.bytes, du(join(stateDir, 'contexts')));
});

test('RUN cache mounts are measured, and trimmed least recently used first down to the budget; 0 removes them all', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-workerdisk-mounts-'));
  t.after(() => rmSync(root, { recursive: true, force: true }));
  const stateDir = join(root, 'state');
  const mounts = join(stateDir, 'cache-mounts');
  const ago = (minutes: number) => new Date(Date.now() - minutes * 60_000);
  for (const [name, minutes] of [['old', 90], ['middle', 60], ['recent', 1]] as const) {
    fill(join(mounts, name), { data: 100_000 });
    utimesSync(join(mounts, name), ago(minutes), ago(minutes));
  }
  const disk = new WorkerDisk({ stateDir, buildRunning: async () => false, contextPaths: async () => new Set<string>() });
  const part = (await disk.measure(true)).find((p) => p.kind === 'cachemounts');
  assert.deepEqual(part, { kind: 'cachemounts', bytes: du(mounts), reclaimableBytes: du(mounts) });
  assert.equal((await disk.measure(false)).find((p) => p.kind === 'cachemounts')?.reclaimableBytes, 0, 'nothing is reclaimable while a stage runs');

  const one = du(join(mounts, 'recent'));
  const trimmed = await disk.trimCacheMounts(2 * one + 4096);
  assert.deepEqual(readdirSync(mounts).sort(), ['middle', 'recent'], 'the least recently used went first');
  assert.ok(trimmed.freedBytes >= 100_000 && trimmed.keptBytes <= 2 * one + 4096, JSON.stringify(trimmed));
  await disk.trimCacheMounts(0);
  assert.deepEqual(readdirSync(mounts), []);
});
