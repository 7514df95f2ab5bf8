import { createHash } from 'node:crypto';

/**
 * OCI chain IDs for a stack of layer diffIDs (bottom first):
 * chainID(L0) = diffID(L0), chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)).
 */
export function chainIDs(diffIDs: readonly string[]): string[] {
  const out: string[] = [];
  for (const diffID of diffIDs) {
    if (!/^sha256:[0-9a-f]{64}$/.test(diffID)) throw new Error(`diffID "${diffID}" is not a sha256:<64 hex> digest: pass the layer's uncompressed digest`);
    const previous = out[out.length - 1];
    out.push(previous === undefined ? diffID : `sha256:${createHash('sha256').update(`${previous} ${diffID}`).digest('hex')}`);
  }
  return out;
}

/** The chain ID of the whole stack (its top layer). */
export function chainID(diffIDs: readonly string[]): string {
  const ids = chainIDs(diffIDs);
  if (ids.length === 0) throw new Error('chainID needs at least one diffID');
  return ids[ids.length - 1];
}
