// Leases on blobs as they are written (or found, and so used, by a build). A build writes blobs (layers, image manifests and configs,
// cache-export documents) well before anything references them: a cache record, a push to the
// build's target, the build's own lease. Meanwhile every deleter of the shared store (the blob GC,
// pruneCache, the context GC; all through ContextBlobGuard) would see an unreferenced blob, and
// the blob GC's grace is configuration, not a guarantee. So a store written inside
// `holdBlobWrites` leases each blob under the scope's holder (the build id) before the blob
// becomes visible, and the lease ends with the build's other leases (BlobLeases.release).
//
// The race with a deleter that already decided: deleters announce a digest, then read the
// leases, then delete (ContextBlobGuard). A writer leases, then waits until no deleter has that
// digest announced, then writes. Either the deleter read the lease (and kept the blob), or it
// announced before the lease: then the writer waits for it to finish and writes after it.
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { Readable } from 'node:stream';
import { FsContentStore, sha256Digest, type BlobInfo, type ContentWriter, type WriterOptions } from '@buildyard/oci';
import type { RedisClient as Redis, RedisKeys } from '@buildyard/contracts';
import { BlobLeases } from './BlobLeases.js';
import { ContextBlobGuard } from './contextGarbage.js';

export interface BlobWriteHold {
  redis: Redis;
  keys: RedisKeys;
  /** Who holds the blobs written in the scope: the build id, whose leases are released when it ends. */
  holder: string;
  /**
   * A stage of the build run apart from it (a worker): the scope leases under its own holder and,
   * when it ends, hands its blobs to the build's lease, or drops them if the build has already
   * ended (cancelled), instead of keeping them to the lease's expiry. The build's release never
   * drops a scope still writing.
   */
  stage?: boolean;
  /** The lease's own expiry (a process that dies cannot hold blobs forever); default 24 hours. */
  ttlMs?: number;
  /** Called when a write waits for a deleter of its blob to finish (tests observe the race with it). */
  onDeletionWait?: (digest: string) => void;
}

/** The scope's hold, its lease's holder, and the digests already leased in it (a lease lasts as long as the holder's). */
const scope = new AsyncLocalStorage<{ hold: BlobWriteHold; holder: string; leased: Set<string> }>();

/** Default lifetime of a write lease: as long as a build's leases of its layers (FleetWorker, cachedBuild). */
const WRITE_LEASE_MS = 24 * 3600_000;

/** Runs `fn` so that every blob a store from this package writes in it is leased under `hold.holder`. */
export function holdBlobWrites<T>(hold: BlobWriteHold, fn: () => Promise<T>): Promise<T> {
  if (!hold.stage) return scope.run({ hold, holder: hold.holder, leased: new Set() }, fn);
  const current = { hold, holder: `${hold.holder}/${randomUUID()}`, leased: new Set<string>() };
  return scope.run(current, async () => {
    try {
      return await fn();
    } finally {
      // Not awaited by anyone if it fails: the scope's lease then lasts to its expiry, as before.
      if (current.leased.size > 0) await new BlobLeases(hold.redis, hold.keys).endScope(hold.holder, current.holder).catch(() => undefined);
    }
  });
}

/**
 * Leases `digest` for the current scope's holder and returns once no deleter is deleting it:
 * the caller may then write it and it stays until the holder's lease ends. Nothing outside a
 * scope (contexts are kept by their grants instead).
 */
export async function leaseBlobWrite(digest: string): Promise<void> {
  const current = scope.getStore();
  if (!current || current.leased.has(digest)) return;
  const { hold } = current;
  await new BlobLeases(hold.redis, hold.keys).lease(current.holder, [digest], hold.ttlMs ?? WRITE_LEASE_MS);
  await new ContextBlobGuard(hold.redis, hold.keys.prefix).waitForDeletions([digest], hold.onDeletionWait);
  current.leased.add(digest);
}

/**
 * A store's has() in a scope: a build that finds a blob uses it as if it had written it (a
 * registry pull skips what the store has), so it is leased first, then looked for.
 */
export async function hasLeased(digest: string, has: (digest: string) => Promise<boolean>): Promise<boolean> {
  await leaseBlobWrite(digest);
  return has(digest);
}

/** True inside a holdBlobWrites scope (a store then leases what it writes). */
export function blobWritesHeld(): boolean {
  return scope.getStore() !== undefined;
}

type Data = Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>;

/**
 * A store's put under the current scope's lease: `put` makes the blob visible, `has` says whether
 * it still is. With the digest known first (given, or the bytes at hand) the lease comes before
 * the blob is visible; a stream of unknown digest is stored, then leased, then checked.
 */
export async function putLeased(data: Data, expectedDigest: string | undefined, put: (data: Data, expectedDigest?: string) => Promise<BlobInfo>, has: (digest: string) => Promise<boolean>): Promise<BlobInfo> {
  if (!blobWritesHeld()) return put(data, expectedDigest);
  const known = expectedDigest ?? (data instanceof Uint8Array ? sha256Digest(data) : undefined);
  if (known !== undefined) {
    await leaseBlobWrite(known);
    return put(data, known);
  }
  const info = await put(data);
  await leasedAfter(info.digest, has);
  return info;
}

/** A writer's commit under the current scope's lease (as putLeased). */
export async function commitLeased(expectedDigest: string | undefined, commit: () => Promise<BlobInfo>, has: (digest: string) => Promise<boolean>): Promise<BlobInfo> {
  if (!blobWritesHeld()) return commit();
  if (expectedDigest !== undefined) {
    await leaseBlobWrite(expectedDigest);
    return commit();
  }
  const info = await commit();
  await leasedAfter(info.digest, has);
  return info;
}

/** Leases a blob already visible; a deleter that took it meanwhile makes the write fail (the bytes are gone). */
async function leasedAfter(digest: string, has: (digest: string) => Promise<boolean>): Promise<void> {
  await leaseBlobWrite(digest);
  if (!(await has(digest))) {
    throw new Error(`blob ${digest} was deleted by a garbage collection of the blob store while this build stored it; run the build again`);
  }
}

/**
 * The fs blob store (one directory every process on the machine shares) with its writes leased
 * in a holdBlobWrites scope, as TieredBlobStore's are.
 */
export class LeasedFsContentStore extends FsContentStore {
  override has(digest: string): Promise<boolean> {
    return hasLeased(digest, (d) => super.has(d));
  }

  override put(data: Data, expectedDigest?: string, expectedSize?: number): Promise<BlobInfo> {
    return putLeased(data, expectedDigest, (d, e) => super.put(d, e, expectedSize), (d) => this.has(d));
  }

  override async writer(opts: WriterOptions | string = {}): Promise<ContentWriter> {
    const w = await super.writer(opts);
    const expected = typeof opts === 'string' ? opts : opts.expectedDigest;
    return { write: (chunk) => w.write(chunk), commit: () => commitLeased(expected, () => w.commit(), (d) => this.has(d)), abort: () => w.abort() };
  }
}
