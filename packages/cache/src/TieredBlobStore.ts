// A local FsContentStore in front of a shared BlobStore (usually a RegistryBlobStore): reads are
// served locally and fetched from the remote on a miss; writes land locally and are pushed to the
// remote before put() resolves, so another worker can read them right away. It extends
// FsContentStore so it drops in wherever one is expected today (RegistryClient's store, the
// solver, the exporters, the frontend).
import { Readable } from 'node:stream';
import {
  assertDigest, DigestMismatchError, FsContentStore, sha256Digest, Digester,
  type BlobInfo, type BlobListing, type ContentWriter, type WriterOptions,
} from '@buildyard/oci';
import type { BlobStore } from './BlobStore.js';
import { RegistryBlobStore } from './RegistryBlobStore.js';
import { commitLeased, hasLeased, putLeased } from './blobWrites.js';

export interface TieredBlobStoreOptions {
  /**
   * Hash every local read and refuse a blob whose bytes no longer match its digest (a disk
   * error, or someone editing the store). Default true; costs one sha256 pass per read.
   */
  verifyLocalReads?: boolean;
  /**
   * Lease what a build writes or finds (holdBlobWrites; see blobWrites.ts). Default true. The
   * context store's contents are kept by their grants instead (and a context may hold 20,000 files).
   */
  leaseInBuilds?: boolean;
}

export interface TieredBlobStats {
  /** Blobs copied from the remote into the local store. */
  fetched: number;
  /** Blobs handed to the remote by put()/writer(). */
  pushed: number;
  /** Local copies dropped because their bytes did not match their digest. */
  corruptDropped: number;
}

export class TieredBlobStore extends FsContentStore implements BlobStore {
  readonly stats: TieredBlobStats = { fetched: 0, pushed: 0, corruptDropped: 0 };
  private readonly verify: boolean;
  private readonly leasing: boolean;
  /** One fetch per digest at a time, however many readers ask. */
  private readonly inflight = new Map<string, Promise<BlobInfo>>();

  constructor(readonly local: FsContentStore, readonly remote: BlobStore, opts: TieredBlobStoreOptions = {}) {
    super(local.root);
    this.verify = opts.verifyLocalReads ?? true;
    this.leasing = opts.leaseInBuilds ?? true;
  }

  override init(): Promise<void> {
    return this.local.init();
  }

  /**
   * The local file of a blob. Only valid after `await ensureLocal(digest)` (or a put): a blob that
   * is only in the remote has no file yet. Files read by path are not digest-verified.
   */
  override path(digest: string): string {
    return this.local.path(digest);
  }

  /** Makes sure the blob is in the local store (fetching it from the remote, verified) and returns its path. */
  async ensureLocal(digest: string): Promise<string> {
    const d = assertDigest(digest);
    if (!(await this.local.has(d))) await this.fetch(d);
    return this.local.path(d);
  }

  override has(digest: string): Promise<boolean> {
    // In a build's scope what it finds is leased first (blobWrites.ts): a pull then skips it safely.
    const has = async (d: string) => (await this.local.has(d)) || this.remote.has(d);
    return this.leasing ? hasLeased(digest, has) : has(digest);
  }

  override async size(digest: string): Promise<number> {
    if (await this.local.has(digest)) return this.local.size(digest);
    return this.remote.size(digest);
  }

  /**
   * Streams a blob from the local store, fetching it first on a miss. With verifyLocalReads a
   * local copy whose bytes do not match fails the stream at its end with DigestMismatchError and
   * is deleted, so the next read fetches a good copy from the remote.
   */
  override openRead(digest: string): Readable {
    const d = assertDigest(digest);
    const self = this;
    // A lazy generator: nothing runs (and nothing can fail unobserved) until the consumer reads.
    return Readable.from((async function* () {
      await self.ensureLocal(d);
      const digester = self.verify ? new Digester() : undefined;
      for await (const chunk of self.local.openRead(d)) {
        digester?.update(chunk as Buffer);
        yield chunk as Buffer;
      }
      const got = digester?.digest();
      if (got !== undefined && got !== d) {
        await self.dropCorrupt(d);
        throw new DigestMismatchError(d, got);
      }
    })(), { objectMode: false });
  }

  /** Reads a whole blob; a corrupt local copy is dropped and fetched again from the remote once. */
  override async readBytes(digest: string): Promise<Buffer> {
    const d = assertDigest(digest);
    await this.ensureLocal(d);
    const bytes = await this.local.readBytes(d);
    if (!this.verify || sha256Digest(bytes) === d) return bytes;
    await this.dropCorrupt(d);
    await this.fetch(d);
    const again = await this.local.readBytes(d);
    const got = sha256Digest(again);
    if (got !== d) throw new DigestMismatchError(d, got);
    return again;
  }

  /** Stores locally (verified, atomic), then pushes to the remote before resolving (write-through). */
  override async put(data: Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>, expectedDigest?: string, expectedSize?: number): Promise<BlobInfo> {
    // Leased first in a build's scope (blobWrites.ts): no deleter takes it before it is referenced.
    const put = (d: typeof data, e?: string) => this.local.put(d, e, expectedSize);
    const info = this.leasing ? await putLeased(data, expectedDigest, put, (d) => this.local.has(d)) : await put(data, expectedDigest);
    await this.pushRemote(info);
    return info;
  }

  /** A local writer whose commit also pushes the blob to the remote. */
  override async writer(opts: WriterOptions | string = {}): Promise<ContentWriter> {
    const w = await this.local.writer(opts);
    const expected = typeof opts === 'string' ? opts : opts.expectedDigest;
    return {
      write: (chunk) => w.write(chunk),
      commit: async () => {
        const info = this.leasing ? await commitLeased(expected, () => w.commit(), (d) => this.local.has(d)) : await w.commit();
        await this.pushRemote(info);
        return info;
      },
      abort: () => w.abort(),
    };
  }

  /** Deletes from both tiers; true when either had it. */
  override async delete(digest: string): Promise<boolean> {
    const [a, b] = await Promise.all([this.local.delete(digest), this.remote.delete(digest)]);
    return a || b;
  }

  /** Lists the local tier only (a registry cannot list): GC of the remote is not done through this. */
  override list(): AsyncIterable<BlobListing> {
    return this.local.list();
  }

  override cleanupIngest(olderThanMs?: number): Promise<number> {
    return this.local.cleanupIngest(olderThanMs);
  }

  /** Drops the local copy only (e.g. local disk GC); the remote keeps serving it. */
  evictLocal(digest: string): Promise<boolean> {
    return this.local.delete(digest);
  }

  private fetch(digest: string): Promise<BlobInfo> {
    let p = this.inflight.get(digest);
    if (!p) {
      p = (async () => {
        const info = await this.local.put(this.remote.openRead(digest), digest);
        this.stats.fetched++;
        return info;
      })().finally(() => this.inflight.delete(digest));
      this.inflight.set(digest, p);
    }
    return p;
  }

  private async pushRemote(info: BlobInfo): Promise<void> {
    if (this.remote instanceof RegistryBlobStore) {
      await this.remote.pushFrom(info, () => this.local.openRead(info.digest));
    } else if (!(await this.remote.has(info.digest))) {
      await this.remote.put(this.local.openRead(info.digest), info.digest, info.size);
    }
    this.stats.pushed++;
  }

  private async dropCorrupt(digest: string): Promise<void> {
    this.stats.corruptDropped++;
    await this.local.delete(digest).catch(() => false);
  }
}
