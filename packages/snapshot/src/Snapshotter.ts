import type { ActiveSnapshot, ChainLayer, PrepareOptions, SnapshotInfo, SnapshotUsage } from './OverlaySnapshotter.js';

/**
 * What the solver needs of a snapshotter, as containerd's snapshots.Snapshotter: active
 * (writable) and view snapshots on a committed parent, commit, remove, and chains of image
 * layers by chain ID. OverlaySnapshotter is the implementation; the solver sees only this.
 */
export interface Snapshotter {
  prepare(key: string, parent?: string, options?: PrepareOptions): Promise<ActiveSnapshot>;
  view(key: string, parent?: string, options?: PrepareOptions): Promise<ActiveSnapshot>;
  /** `owner`: the tenant whose own the snapshot is (a step's result), for that tenant's prune. */
  commit(name: string, key: string, options?: { owner?: string }): Promise<SnapshotInfo>;
  remove(name: string): Promise<void>;
  stat(name: string): Promise<SnapshotInfo | undefined>;
  list(): Promise<SnapshotInfo[]>;
  usage(name: string): Promise<SnapshotUsage>;
  /**
   * Makes the committed snapshot of a layer chain exist (applying missing layers); returns its
   * name. With `owner`, that owner's own snapshots of the chain (ownedSnapshotName) serve too.
   */
  ensureChain(layers: readonly ChainLayer[], options?: { owner?: string }): Promise<string>;
}
