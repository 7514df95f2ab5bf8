import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OverlaySnapshotter, pruneSnapshots } from './index.js';

/** Resolves once Date.now() has moved past its value at the call: the next timestamp is later. */
async function clockMovedOn(): Promise<void> {
  const t = Date.now();
  while (Date.now() <= t) await new Promise((r) => setImmediate(r));
}

test('pruneSnapshots removes the oldest leaves until the worker fits, never a snapshot others build on', async () => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-prune-snap-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const snapshotter = new OverlaySnapshotter(root);
  // base <- child-a (older) and base <- child-b (newer); each holds 64 KiB of its own.
  const commit = async (name: string, parent?: string) => {
    const active = await snapshotter.prepare(`${name}-work`, parent);
    writeFileSync(join(active.mountpoint, `${name}.bin`), Buffer.alloc(64 * 1024, 1));
    await active.release();
    await snapshotter.commit(name, `${name}-work`);
    await clockMovedOn(); // snapshots sort by creation time: each must be strictly later
  };
  await commit('base');
  await commit('child-a', 'base');
  await commit('child-b', 'base');

  const nothing = await pruneSnapshots(snapshotter, 10 * 1024 * 1024);
  assert.deepEqual(nothing.removed, [], 'under the limit nothing goes');
  const some = await pruneSnapshots(snapshotter, 150 * 1024);
  assert.deepEqual(some.removed, ['child-a'], 'the oldest leaf goes first, and only as much as needed');
  const all = await pruneSnapshots(snapshotter, 0);
  assert.deepEqual(all.removed, ['child-b', 'base'], 'a parent goes only once nothing is built on it');
  assert.deepEqual(await snapshotter.list(), []);
});

test('the attacker: a tenant\'s pruneSnapshots removes only its own step snapshots and what is built on them, never shared ones or another tenant\'s', async () => {
  const root = mkdtempSync(join(tmpdir(), 'buildyard-prune-tenant-'));
  after(() => rmSync(root, { recursive: true, force: true }));
  const snapshotter = new OverlaySnapshotter(root);
  const commit = async (name: string, parent: string | undefined, owner?: string) => {
    const active = await snapshotter.prepare(`${name}-work`, parent);
    writeFileSync(join(active.mountpoint, `${name}.bin`), Buffer.alloc(64 * 1024, 1));
    await active.release();
    await snapshotter.commit(name, `${name}-work`, owner !== undefined ? { owner } : {});
  };
  // shared <- alice-step, shared <- bob-step <- on-bob (committed without an owner, built on bob's).
  await commit('shared', undefined);
  await commit('alice-step', 'shared', 'alice');
  await commit('bob-step', 'shared', 'bob');
  await commit('on-bob', 'bob-step');

  const kept = await pruneSnapshots(snapshotter, 10 * 1024 * 1024, { tenant: 'bob' });
  assert.deepEqual(kept.removed, [], 'within its own budget nothing goes');
  assert.ok(kept.totalBytes >= 2 * 64 * 1024 && kept.totalBytes < 3 * 64 * 1024, `only bob's two snapshots count: ${kept.totalBytes}`);
  const bob = await pruneSnapshots(snapshotter, 0, { tenant: 'bob' });
  assert.deepEqual(bob.removed, ['on-bob', 'bob-step'], 'bob\'s own go, what is built on them first');
  assert.equal(bob.totalBytes, 0);
  assert.deepEqual((await snapshotter.list()).map((s) => s.name), ['alice-step', 'shared'], 'alice\'s step and the shared snapshot stay');
  assert.deepEqual((await pruneSnapshots(snapshotter, 0, { tenant: 'mallory' })).removed, [], 'a tenant with nothing of its own removes nothing');
  // The worker's GC and an operator's prune (no tenant) reach everything.
  assert.deepEqual((await pruneSnapshots(snapshotter, 0)).removed, ['alice-step', 'shared']);
});
