// A containerd-style content store on a local directory. Blobs live at
// `<root>/blobs/sha256/<hex>`; writes go to `<root>/ingest/` and are renamed into place only
// after their digest is verified, so a half-written blob is never visible to readers.
import { createWriteStream, type WriteStream } from 'node:fs';
import { mkdir, open, readFile, readdir, rename, rm, stat } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { Digester, assertDigest, digestHex, type Digest } from './digest.js';

export interface BlobInfo {
  digest: Digest;
  size: number;
}

export interface BlobListing extends BlobInfo {
  mtime: Date;
}

export interface ContentWriter {
  /** Appends a chunk; resolves once the chunk is handed to the file (back-pressure aware). */
  write(chunk: Uint8Array): Promise<void>;
  /** Verifies the digest (and expected size if given) and makes the blob visible atomically. */
  commit(): Promise<BlobInfo>;
  /** Drops the partial data. Safe to call more than once or after a failed commit. */
  abort(): Promise<void>;
}

export interface WriterOptions {
  expectedDigest?: string;
  expectedSize?: number;
}

export class DigestMismatchError extends Error {
  constructor(readonly expected: string, readonly actual: string) {
    super(`digest mismatch: expected ${expected}, got ${actual}`);
    this.name = 'DigestMismatchError';
  }
}

export class BlobNotFoundError extends Error {
  constructor(readonly digest: string, root: string) {
    super(`blob ${digest} not found in content store ${root}`);
    this.name = 'BlobNotFoundError';
  }
}

export class FsContentStore {
  readonly root: string;
  private readonly blobDir: string;
  private readonly ingestDir: string;

  constructor(root: string) {
    this.root = root;
    this.blobDir = join(root, 'blobs', 'sha256');
    this.ingestDir = join(root, 'ingest');
  }

  /** Creates the directory structure; called lazily by writers too. */
  async init(): Promise<void> {
    await mkdir(this.blobDir, { recursive: true });
    await mkdir(this.ingestDir, { recursive: true });
  }

  path(digest: string): string {
    return join(this.blobDir, digestHex(digest));
  }

  async has(digest: string): Promise<boolean> {
    try {
      return (await stat(this.path(digest))).isFile();
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async size(digest: string): Promise<number> {
    try {
      return (await stat(this.path(digest))).size;
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(digest, this.root);
      throw err;
    }
  }

  /** Opens a blob for streaming; a missing blob surfaces as a stream error (BlobNotFoundError). */
  openRead(digest: string): Readable {
    const path = this.path(digest);
    const root = this.root;
    async function* chunks(): AsyncGenerator<Buffer> {
      let fh;
      try {
        fh = await open(path, 'r');
      } catch (err) {
        throw isNotFound(err) ? new BlobNotFoundError(digest, root) : err;
      }
      try {
        for (;;) {
          const buf = Buffer.allocUnsafe(1 << 20);
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) return;
          yield bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
        }
      } finally {
        await fh.close();
      }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  async readBytes(digest: string): Promise<Buffer> {
    try {
      return await readFile(this.path(digest));
    } catch (err) {
      if (isNotFound(err)) throw new BlobNotFoundError(digest, this.root);
      throw err;
    }
  }

  async put(data: Buffer | Uint8Array | Readable | AsyncIterable<Uint8Array>, expectedDigest?: string, expectedSize?: number): Promise<BlobInfo> {
    if (expectedDigest && (await this.has(expectedDigest))) {
      // Already present: still drain a stream so the producer is not left hanging.
      if (data instanceof Readable) data.resume();
      return { digest: assertDigest(expectedDigest), size: await this.size(expectedDigest) };
    }
    const w = await this.writer({ expectedDigest, expectedSize });
    try {
      if (data instanceof Uint8Array) {
        await w.write(data);
      } else {
        for await (const chunk of data as AsyncIterable<Uint8Array | string>) {
          await w.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
        }
      }
      return await w.commit();
    } catch (err) {
      await w.abort();
      throw err;
    }
  }

  async writer(opts: WriterOptions | string = {}): Promise<ContentWriter> {
    const { expectedDigest, expectedSize } = typeof opts === 'string' ? { expectedDigest: opts, expectedSize: undefined } : opts;
    if (expectedDigest !== undefined) assertDigest(expectedDigest, 'expected digest');
    await this.init();
    const tmp = join(this.ingestDir, `${Date.now()}-${process.pid}-${randomBytes(6).toString('hex')}`);
    const file: WriteStream = createWriteStream(tmp, { flags: 'wx' });
    await new Promise<void>((resolve, reject) => {
      file.once('open', () => resolve());
      file.once('error', reject);
    });
    let failure: Error | undefined;
    file.on('error', (err) => { failure = err; });
    const digester = new Digester();
    let done = false;
    const closeFile = () => new Promise<void>((resolve) => {
      if (file.closed) return resolve();
      file.end(() => resolve());
      file.once('error', () => resolve());
    });
    const abort = async (): Promise<void> => {
      done = true;
      if (!file.closed) { file.destroy(); await new Promise<void>((r) => file.once('close', () => r())); }
      await rm(tmp, { force: true });
    };
    return {
      write: async (chunk: Uint8Array) => {
        if (done) throw new Error(`content writer for ${expectedDigest ?? 'new blob'} is already committed or aborted`);
        if (failure) throw failure;
        // A source sending more than it declared is cut off here, not once it has filled the disk.
        if (expectedSize !== undefined && digester.size + chunk.length > expectedSize) {
          throw new Error(`size mismatch for ${expectedDigest ?? 'new blob'}: more than the expected ${expectedSize} bytes`);
        }
        digester.update(chunk);
        if (!file.write(chunk)) {
          await new Promise<void>((resolve, reject) => {
            const onErr = (e: Error) => { file.off('drain', onDrain); reject(e); };
            const onDrain = () => { file.off('error', onErr); resolve(); };
            file.once('drain', onDrain);
            file.once('error', onErr);
          });
        }
      },
      commit: async () => {
        if (done) throw new Error(`content writer for ${expectedDigest ?? 'new blob'} is already committed or aborted`);
        done = true;
        await closeFile();
        try {
          if (failure) throw failure;
          const digest = digester.digest();
          if (expectedDigest !== undefined && digest !== expectedDigest) throw new DigestMismatchError(expectedDigest, digest);
          if (expectedSize !== undefined && digester.size !== expectedSize) {
            throw new Error(`size mismatch for ${digest}: expected ${expectedSize} bytes, got ${digester.size}`);
          }
          // fsync before rename so a crash cannot leave a visible but truncated blob.
          const fh = await open(tmp, 'r');
          try { await fh.sync(); } finally { await fh.close(); }
          await rename(tmp, this.path(digest));
          return { digest, size: digester.size };
        } catch (err) {
          await rm(tmp, { force: true });
          throw err;
        }
      },
      abort,
    };
  }

  /** Returns true when the blob existed. */
  async delete(digest: string): Promise<boolean> {
    try {
      await rm(this.path(digest));
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  async *list(): AsyncIterable<BlobListing> {
    let names: string[];
    try {
      names = await readdir(this.blobDir);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    for (const name of names.sort()) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      try {
        const st = await stat(join(this.blobDir, name));
        if (st.isFile()) yield { digest: `sha256:${name}`, size: st.size, mtime: st.mtime };
      } catch (err) {
        if (!isNotFound(err)) throw err; // deleted concurrently
      }
    }
  }

  /**
   * Removes ingest leftovers of killed processes. Only files older than `olderThanMs` are removed
   * so writers that are still running in other processes are not disturbed (default: all).
   */
  async cleanupIngest(olderThanMs = 0): Promise<number> {
    let names: string[];
    try {
      names = await readdir(this.ingestDir);
    } catch (err) {
      if (isNotFound(err)) return 0;
      throw err;
    }
    let removed = 0;
    const cutoff = Date.now() - olderThanMs;
    for (const name of names) {
      const p = join(this.ingestDir, name);
      try {
        if (olderThanMs > 0 && (await stat(p)).mtimeMs > cutoff) continue;
        await rm(p, { force: true, recursive: true });
        removed++;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    return removed;
  }
}

export function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === 'ENOENT';
}

