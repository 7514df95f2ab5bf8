// A BlobStore over one OCI registry repository (the distributed default): blobs are pushed and
// pulled through @buildyard/oci's RegistryClient, so auth, retries, chunked uploads and digest
// verification are the client's. A registry cannot list a repository's blobs, and its own
// garbage collector deletes blobs no manifest references: see README.md ("Registry blob store").
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  assertDigest, BlobNotFoundError, Digester, DigestMismatchError, parseReference, RegistryClient, RegistryError, RetriesExhaustedError, withRetries,
  type BlobInfo, type CallOptions, type RegistryClientOptions, type RepositoryReference,
} from '@buildyard/oci';
import type { BlobStore } from './BlobStore.js';

export interface RegistryBlobStoreOptions {
  /** `host[:port]/path/to/repo`, e.g. `registry.example.com/buildyard/blobs`. */
  repository: string;
  /**
   * The client to talk through. It must have no content store: a client with a store would
   * route reads through that store (and, when the store is a TieredBlobStore over this one,
   * back here forever). Default: `new RegistryClient(clientOptions)`.
   */
  client?: RegistryClient;
  clientOptions?: Omit<RegistryClientOptions, 'store'>;
  /** Where streamed puts are spooled while their digest is computed. Default: the OS temp dir. */
  spoolDir?: string;
  /** Timeout of the plain-HTTP HEAD/DELETE fallback requests. Default 30 s. */
  timeoutMs?: number;
}

/**
 * Optional RegistryClient methods (not in @buildyard/oci yet): when the client grows them they are
 * used, so size() and delete() work against registries that demand auth. Until then a plain,
 * unauthenticated request is made (enough for loopback/dev registries).
 */
interface BlobAdminClient {
  statBlob?(repository: RepositoryReference, digest: string, call?: CallOptions): Promise<{ size: number } | undefined>;
  deleteBlob?(repository: RepositoryReference, digest: string, call?: CallOptions): Promise<boolean>;
}

export class RegistryBlobStore implements BlobStore {
  readonly client: RegistryClient;
  readonly repository: RepositoryReference;
  /** `host/repo`, used in messages. */
  readonly name: string;
  private readonly spoolDir: string;
  private readonly timeoutMs: number;

  constructor(opts: RegistryBlobStoreOptions) {
    let ref;
    try {
      ref = parseReference(opts.repository, { defaultTag: false });
    } catch (err) {
      throw new Error(`blob store repository "${opts.repository}" is invalid (${(err as Error).message}); set blobStore.repository to host/path, e.g. registry.example.com/buildyard/blobs`);
    }
    if (ref.tag || ref.digest) throw new Error(`blob store repository "${opts.repository}" has a tag or digest; set blobStore.repository to host/path without one`);
    this.repository = { registry: ref.registry, repository: ref.repository };
    this.name = `${ref.registry}/${ref.repository}`;
    this.client = opts.client ?? new RegistryClient(opts.clientOptions);
    if (this.client.store) throw new Error(`RegistryBlobStore ${this.name}: the RegistryClient has a content store; pass a client constructed without { store }`);
    this.spoolDir = opts.spoolDir ?? tmpdir();
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  has(digest: string): Promise<boolean> {
    return this.client.blobExists(this.repository, assertDigest(digest));
  }

  async size(digest: string): Promise<number> {
    const d = assertDigest(digest);
    const admin = this.client as RegistryClient & BlobAdminClient;
    if (admin.statBlob) {
      const st = await admin.statBlob(this.repository, d);
      if (!st) throw new BlobNotFoundError(d, this.name);
      return st.size;
    }
    const res = await this.plainRequest('HEAD', d);
    if (res.status === 200) return Number(res.headers.get('content-length') ?? NaN);
    if (res.status === 404) throw new BlobNotFoundError(d, this.name);
    if (res.status === 401 || res.status === 403) {
      // No authenticated HEAD available: count the bytes (slow, but right).
      let n = 0;
      for await (const c of this.openRead(d)) n += (c as Buffer).length;
      return n;
    }
    throw new RegistryError(`registry ${this.repository.registry}: HEAD blob ${d} in ${this.name} failed: HTTP ${res.status}; check that the registry is up`, this.repository.registry, 'HEAD blob', res.status);
  }

  /** Streams a blob; the stream fails with DigestMismatchError at its end if the bytes are wrong. */
  openRead(digest: string): Readable {
    const d = assertDigest(digest);
    const self = this;
    // Lazy: the request starts when the consumer reads, so an error always has a listener.
    return Readable.from((async function* () {
      try {
        for await (const chunk of self.client.fetchBlob(self.repository, d)) yield chunk as Buffer;
      } catch (err) {
        throw err instanceof RegistryError && err.status === 404 ? new BlobNotFoundError(d, self.name) : err;
      }
    })(), { objectMode: false });
  }

  /**
   * Pushes a blob. Buffers are hashed in memory; streams are spooled to a temp file while hashed
   * (a push is retried and so must be able to re-read its source). `expectedDigest`/`expectedSize`
   * are checked before anything is uploaded, and the registry verifies the digest again.
   */
  async put(data: Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>, expectedDigest?: string, expectedSize?: number): Promise<BlobInfo> {
    if (expectedDigest !== undefined) assertDigest(expectedDigest, 'expected digest');
    if (data instanceof Uint8Array) {
      const digester = new Digester();
      digester.update(data);
      const info = checkExpected(digester, expectedDigest, expectedSize);
      await this.client.pushBlob(this.repository, info, data);
      return info;
    }
    const dir = await mkdtemp(join(this.spoolDir, 'buildyard-blobpush-'));
    try {
      const file = join(dir, 'blob');
      const digester = new Digester();
      const src = data instanceof Readable ? data : Readable.from(data);
      await pipeline(src, async function* (chunks: AsyncIterable<Uint8Array | string>) {
        for await (const c of chunks) {
          const b = typeof c === 'string' ? Buffer.from(c) : c;
          digester.update(b);
          yield b;
        }
      }, createWriteStream(file));
      const info = checkExpected(digester, expectedDigest, expectedSize);
      await this.client.pushBlob(this.repository, info, () => createReadStream(file));
      return info;
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  /**
   * Pushes a blob whose digest and size are already known from a re-openable source (a local
   * file), without spooling. The registry verifies the digest; no-op when it already has it.
   */
  async pushFrom(info: BlobInfo, open: () => Readable): Promise<'exists' | 'mounted' | 'uploaded'> {
    return (await this.client.pushBlob(this.repository, { digest: assertDigest(info.digest), size: info.size }, open)).result;
  }

  /**
   * DELETE /v2/<repo>/blobs/<digest>: unlinks the blob from the repository (the registry must run
   * with storage.delete.enabled; its garbage collector reclaims the bytes). True when it existed.
   */
  async delete(digest: string): Promise<boolean> {
    const d = assertDigest(digest);
    const admin = this.client as RegistryClient & BlobAdminClient;
    if (admin.deleteBlob) return admin.deleteBlob(this.repository, d);
    const res = await this.plainRequest('DELETE', d);
    if (res.status === 202 || res.status === 200 || res.status === 204) return true;
    if (res.status === 404) return false;
    const why = res.status === 405
      ? 'the registry does not allow deletes; run it with storage.delete.enabled=true'
      : res.status === 401 || res.status === 403
        ? 'the registry demands auth for deletes, which RegistryClient cannot do yet (it needs deleteBlob)'
        : 'check that the registry is up';
    throw new RegistryError(`registry ${this.repository.registry}: DELETE blob ${d} in ${this.name} failed: HTTP ${res.status}; ${why}`, this.repository.registry, 'DELETE blob', res.status);
  }

  private async plainRequest(method: 'HEAD' | 'DELETE', digest: string): Promise<Response> {
    const url = `${this.client.baseUrl(this.repository.registry)}/v2/${this.repository.repository}/blobs/${digest}`;
    try {
      return await withRetries<Response>({ attempts: 3, backoffMs: 200 }, async () => {
        const res = await fetch(url, { method, signal: AbortSignal.timeout(this.timeoutMs) });
        await res.arrayBuffer().catch(() => undefined);
        return res.status < 500 ? { value: res } : { retry: `HTTP ${res.status}` };
      });
    } catch (err) {
      if (!(err instanceof RetriesExhaustedError)) throw err;
      throw new RegistryError(`registry ${this.repository.registry}: ${method} blob ${digest} in ${this.name} ${err.message}; check that the registry is up and reachable`, this.repository.registry, `${method} blob`);
    }
  }
}

function checkExpected(digester: Digester, expectedDigest: string | undefined, expectedSize: number | undefined): BlobInfo {
  const digest = digester.digest();
  if (expectedDigest !== undefined && digest !== expectedDigest) throw new DigestMismatchError(expectedDigest, digest);
  if (expectedSize !== undefined && digester.size !== expectedSize) {
    throw new Error(`size mismatch for ${digest}: expected ${expectedSize} bytes, got ${digester.size}`);
  }
  return { digest, size: digester.size };
}
