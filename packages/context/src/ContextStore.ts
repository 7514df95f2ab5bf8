import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, writeFile, access, open, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { FsContentStore, sha256Digest } from '@buildyard/oci';
import { ContextError } from './ContextError.js';
import { encodeManifest, isRegular, type ContextEntry } from './ContextEntry.js';

export interface ContextStoreOptions {
  /** Directory holding the content store (file contents and manifests) and tenant grants. */
  root: string;
  /** Largest total size of regular files in one context. */
  maxContextBytes?: number;
  /** Largest number of entries in one context. */
  maxFiles?: number;
}

/**
 * Build contexts on the server. File contents and manifests share one content-addressed
 * store, so identical files across builds and tenants are stored once; per tenant, grants
 * record which context ids and which contents that tenant has proven it holds (by uploading
 * them). A digest alone is never proof: content another tenant uploaded must be sent again.
 */
export class ContextStore {
  readonly content: FsContentStore;
  readonly root: string;
  readonly maxContextBytes: number;
  readonly maxFiles: number;
  /**
   * The last few manifests stored or read, parsed: a delta sync's base is usually the context
   * the same client synced a minute ago, and re-reading 20,000 entries would cost more than
   * the delta. Small, because one 20,000-file manifest is a few MB.
   */
  private readonly recent = new Map<string, readonly ContextEntry[]>();

  constructor(opts: ContextStoreOptions) {
    this.root = opts.root;
    this.content = new FsContentStore(join(opts.root, 'content'));
    this.maxContextBytes = opts.maxContextBytes ?? 10 * 1024 ** 3;
    this.maxFiles = opts.maxFiles ?? 1_000_000;
  }

  /** Stores the manifest of a fully uploaded context and returns its id (the manifest digest). */
  async putManifest(sorted: readonly ContextEntry[], tenant: string): Promise<string> {
    const bytes = encodeManifest(sorted);
    const digest = sha256Digest(bytes);
    await this.content.put(bytes, digest);
    this.remember(digest, sorted);
    const dir = join(this.root, 'tenants', tenantDirName(tenant));
    await mkdir(dir, { recursive: true });
    await writeFile(join(dir, digest.slice('sha256:'.length)), '');
    return digest;
  }

  /**
   * Stores a batch of verified small contents as one write: every blob the store lacks goes to
   * a temp file, then one syncfs makes them all durable before any is renamed into place (a
   * blob is never visible truncated after a crash). Per-blob fsync cost more than the writes.
   */
  async putBlobs(blobs: readonly { digest: string; data: Uint8Array }[]): Promise<void> {
    await this.content.init();
    const present = await Promise.all(blobs.map((b) => this.content.has(b.digest)));
    const fresh = new Map<string, Uint8Array>();
    blobs.forEach((b, i) => { if (!present[i]) fresh.set(b.digest, b.data); });
    if (fresh.size === 0) return;
    const ingest = join(this.root, 'ingest');
    await mkdir(ingest, { recursive: true });
    const tmps = [...fresh.keys()].map((d) => ({ digest: d, tmp: join(ingest, `${d.slice(7, 19)}-${process.pid}-${randomBytes(6).toString('hex')}`) }));
    try {
      await Promise.all(tmps.map(({ digest, tmp }) => writeFile(tmp, fresh.get(digest)!, { flag: 'wx' })));
      await syncFilesystem(ingest, tmps.map((t) => t.tmp));
      await Promise.all(tmps.map(({ digest, tmp }) => rename(tmp, this.content.path(digest))));
    } catch (err) {
      await Promise.all(tmps.map(({ tmp }) => rm(tmp, { force: true })));
      throw err;
    }
  }

  /** The entries of a stored context (see readManifest), from memory when recently used. */
  async manifest(contextId: string): Promise<readonly ContextEntry[]> {
    const hit = this.recent.get(contextId);
    if (hit) {
      this.remember(contextId, hit);
      return hit;
    }
    const entries = await readManifest(this, contextId);
    this.remember(contextId, entries);
    return entries;
  }

  private remember(contextId: string, entries: readonly ContextEntry[]): void {
    this.recent.delete(contextId);
    this.recent.set(contextId, entries);
    while (this.recent.size > RECENT_MANIFESTS) this.recent.delete(this.recent.keys().next().value!);
  }

  /**
   * True when `tenant` may use `digest` without sending it: the store holds it and this tenant
   * once uploaded it. Whether another tenant has it makes no difference to the answer.
   */
  async tenantHasContent(tenant: string, digest: string): Promise<boolean> {
    if (!/^sha256:[a-f0-9]{64}$/.test(digest)) return false;
    try {
      await access(this.contentGrant(tenant, digest));
    } catch {
      return false;
    }
    return this.content.has(digest);
  }

  /** Records that `tenant` uploaded these (verified, committed) contents. */
  async grantContent(tenant: string, digests: Iterable<string>): Promise<void> {
    // One mkdir per fan-out directory, and every grant in it waits for that mkdir: grants whose
    // digests share a prefix must not open their file while the directory is still being made.
    const made = new Map<string, Promise<unknown>>();
    const pending: Promise<void>[] = [];
    for (const digest of digests) {
      const path = this.contentGrant(tenant, digest);
      const dir = path.slice(0, path.lastIndexOf('/'));
      let dirReady = made.get(dir);
      if (!dirReady) made.set(dir, (dirReady = mkdir(dir, { recursive: true })));
      pending.push((async () => {
        await dirReady;
        // No fsync: a grant lost in a crash only means the tenant uploads the file once more.
        await (await open(path, 'a')).close();
      })());
      if (pending.length >= 64) await Promise.all(pending.splice(0));
    }
    await Promise.all(pending);
  }

  private contentGrant(tenant: string, digest: string): string {
    const hex = digest.slice('sha256:'.length);
    return join(this.root, 'tenants', tenantDirName(tenant), 'content', hex.slice(0, 2), hex);
  }

  /** True when `tenant` has uploaded `contextId` (so it may build from it). */
  async tenantHas(tenant: string, contextId: string): Promise<boolean> {
    if (!/^sha256:[a-f0-9]{64}$/.test(contextId)) return false;
    try {
      await access(join(this.root, 'tenants', tenantDirName(tenant), contextId.slice('sha256:'.length)));
      return true;
    } catch {
      return false;
    }
  }
}

const RECENT_MANIFESTS = 4;

let syncfsWorks: boolean | undefined;

/** syncfs(2) on the filesystem holding `dir` (coreutils' `sync -f`); else fsync of each file. */
async function syncFilesystem(dir: string, files: readonly string[]): Promise<void> {
  if (syncfsWorks !== false) {
    const ok = await new Promise<boolean>((resolve) => execFile('sync', ['-f', dir], (err) => resolve(!err)));
    if (ok) {
      syncfsWorks = true;
      return;
    }
    syncfsWorks = false;
  }
  await Promise.all(files.map(async (f) => {
    const fh = await open(f, 'r');
    try { await fh.sync(); } finally { await fh.close(); }
  }));
}

/** Reads the sorted entry list of a context. */
export async function readManifest(store: ContextStore, contextId: string): Promise<ContextEntry[]> {
  if (!/^sha256:[a-f0-9]{64}$/.test(contextId)) {
    throw new ContextError(`invalid context id "${contextId}": expected sha256:<64 hex chars> as returned by the context sync`);
  }
  if (!(await store.content.has(contextId))) {
    throw new ContextError(`context ${contextId} not found in ${store.root}; upload the context again`);
  }
  const parsed: unknown = JSON.parse((await store.content.readBytes(contextId)).toString('utf8'));
  if (!Array.isArray(parsed)) throw new ContextError(`context ${contextId} is not a context manifest`);
  return parsed as ContextEntry[];
}

/** Sum of regular file sizes in a manifest. */
export function contextBytes(entries: readonly ContextEntry[]): number {
  return entries.reduce((n, e) => n + (isRegular(e) ? e.size : 0), 0);
}

// Tenant names become directory names: keep them readable but never path-like.
function tenantDirName(tenant: string): string {
  const safe = tenant.replace(/[^A-Za-z0-9._-]/g, '_');
  return safe === '' || safe === '.' || safe === '..' ? `_${Buffer.from(tenant).toString('hex')}` : safe;
}
