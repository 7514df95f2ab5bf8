// What registries have shown one tenant they serve (RegistryClient.servesBlob), remembered for a
// while. The blob store is shared by every tenant, so a copy there proves nothing of a tenant's
// registry; but once that registry has served the bytes to the tenant, the tenant holds them, and
// asking again on every resolve (a whole base-image config per build of an edit-build loop) only
// costs time. BuildKit never asks again for what its content store holds. Kept per tenant: one
// tenant's proof says nothing of what another tenant's registry serves.

/** The proofs one tenant's builds have: blobs by registry, repository and digest. */
export interface BlobProofs {
  has(registry: string, repository: string, digest: string): boolean;
  add(registry: string, repository: string, digest: string): void;
}

export class ProvenBlobs {
  /** key -> when the proof expires (epoch ms); in insertion order, so the oldest go first. */
  private readonly proofs = new Map<string, number>();

  constructor(private readonly ttlMs = 15 * 60_000, private readonly maxEntries = 20_000, private readonly now: () => number = Date.now) {}

  forTenant(tenant: string): BlobProofs {
    const key = (registry: string, repository: string, digest: string) => JSON.stringify([tenant, registry, repository, digest]);
    return {
      has: (registry, repository, digest) => {
        const k = key(registry, repository, digest);
        const expires = this.proofs.get(k);
        if (expires === undefined) return false;
        if (expires > this.now()) return true;
        this.proofs.delete(k);
        return false;
      },
      add: (registry, repository, digest) => {
        const k = key(registry, repository, digest);
        this.proofs.delete(k);
        this.proofs.set(k, this.now() + this.ttlMs);
        while (this.proofs.size > this.maxEntries) this.proofs.delete(this.proofs.keys().next().value!);
      },
    };
  }
}
