import { createHash } from 'node:crypto';

/** A layer as a snapshot name covers it: its uncompressed and its compressed digest. */
export interface SnapshotLayerRef { diffID: string; digest: string }

/**
 * The names of the committed snapshots of a stack of layers (bottom first). Each covers the
 * diffID and the compressed digest of every layer up to it. The fleet's snapshots serve every
 * tenant, and a diffID is only a claim (an image config's, a cache record's) until the blob is
 * unpacked and hashed: named by OCI chain IDs (diffIDs alone, as containerd names them), a
 * snapshot would be handed to any build that claims another tenant's diffIDs for blobs of its
 * own, unchecked. A blob's digest is checked wherever it comes from, and a snapshot is only made
 * by unpacking that blob against the diffID, so a name holds what it says. A step's own result
 * (its upper dir) is more than its layer: a copied-up file whose contents changed while its size
 * and times did not, or a `user.*` xattr, is in the snapshot but not in the diff. So a step's
 * snapshot is committed under ownedSnapshotName, never under these names.
 */
export function snapshotChainNames(layers: readonly SnapshotLayerRef[]): string[] {
  const out: string[] = [];
  for (const { diffID, digest } of layers) {
    for (const d of [diffID, digest]) {
      if (!/^sha256:[0-9a-f]{64}$/.test(d)) throw new Error(`layer digest "${String(d).slice(0, 100)}" is not a sha256:<64 hex> digest`);
    }
    // `v2`: before it, steps committed their results under these names; a worker's snapshots
    // from then are left to the GC instead of served.
    out.push(`sha256:${createHash('sha256').update(`v2 ${out.at(-1) ?? ''} ${diffID} ${digest}`).digest('hex')}`);
  }
  return out;
}

/**
 * The name of a snapshot that only `owner` (a tenant) may build on: a step's result committed
 * from its upper dir, or a layer unpacked onto such a snapshot. `chainName` is the
 * snapshotChainNames name of the same layers; another tenant needing them unpacks the blobs.
 */
export function ownedSnapshotName(owner: string, chainName: string): string {
  return `sha256:${createHash('sha256').update(`owned ${JSON.stringify(owner)} ${chainName}`).digest('hex')}`;
}
