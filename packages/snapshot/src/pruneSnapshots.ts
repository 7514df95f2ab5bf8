import type { SnapshotInfo } from './OverlaySnapshotter.js';
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
 *
 * With `tenant` (a tenant's own prune), only that tenant's snapshots count and go: those
 * committed as its own (a step's result) and whatever is built on them; `keepBytes` is then
 * what that tenant keeps. Shared snapshots (unpacked layers every tenant uses) and other
 * tenants' stay, for the worker's own GC.
 */
export async function pruneSnapshots(snapshotter: Snapshotter, keepBytes: number, options: { tenant?: string } = {}): Promise<PruneSnapshotsResult> {
  const snapshots = await snapshotter.list();
  const committed = inScope(snapshots.filter((s) => s.kind === 'committed'), options.tenant);
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

/** The committed snapshots `tenant` owns or that are built on one it owns (all of them without a tenant). */
function inScope(committed: SnapshotInfo[], tenant: string | undefined): SnapshotInfo[] {
  if (tenant === undefined) return committed;
  const byName = new Map(committed.map((s) => [s.name, s]));
  const owned = new Map<string, boolean>();
  const isOwned = (s: SnapshotInfo): boolean => {
    // Down the parents until an answer (chains can be thousands deep: no recursion).
    const path: string[] = [];
    let verdict = false;
    for (let at: SnapshotInfo | undefined = s; at; at = at.parent !== undefined ? byName.get(at.parent) : undefined) {
      const known = owned.get(at.name);
      if (known !== undefined) { verdict = known; break; }
      path.push(at.name);
      if (at.tenant === tenant) { verdict = true; break; }
    }
    for (const name of path) owned.set(name, verdict);
    return verdict;
  };
  return committed.filter(isOwned);
}
