import type { Snapshotter } from './Snapshotter.js';

export interface PruneSnapshotsResult {
  removed: string[];
  reclaimedBytes: number;
  totalBytes: number;
}

/**
 * Keeps a worker's committed snapshots under `keepBytes`: removes leaves (snapshots nothing is
 * built on) oldest first, which may turn their parents into leaves, until the total fits.
 * Snapshots are caches of layers in the blob store, so any of them can be unpacked again.
 * Callers run it while no stage is running on this snapshotter.
 */
export async function pruneSnapshots(snapshotter: Snapshotter, keepBytes: number): Promise<PruneSnapshotsResult> {
  const snapshots = await snapshotter.list();
  const committed = snapshots.filter((s) => s.kind === 'committed');
  const sizes = new Map<string, number>();
  for (const s of committed) sizes.set(s.name, (await snapshotter.usage(s.name)).size);
  let total = [...sizes.values()].reduce((a, b) => a + b, 0);
  const result: PruneSnapshotsResult = { removed: [], reclaimedBytes: 0, totalBytes: total };
  const children = new Map<string, number>();
  for (const s of snapshots) if (s.parent) children.set(s.parent, (children.get(s.parent) ?? 0) + 1);
  const alive = new Set(committed.map((s) => s.name));
  while (total > keepBytes) {
    const leaf = committed
      .filter((s) => alive.has(s.name) && !children.get(s.name))
      .sort((a, b) => a.createdAt.localeCompare(b.createdAt))[0];
    if (!leaf) break;
    await snapshotter.remove(leaf.name);
    alive.delete(leaf.name);
    if (leaf.parent) children.set(leaf.parent, (children.get(leaf.parent) ?? 1) - 1);
    const size = sizes.get(leaf.name) ?? 0;
    total -= size;
    result.removed.push(leaf.name);
    result.reclaimedBytes += size;
  }
  result.totalBytes = total;
  return result;
}
