import { execFile } from 'node:child_process';
import { statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { BlobNotFoundError, FsContentStore, sha256Digest } from '@buildyard/oci';
import { ContextError } from './ContextError.js';
import { contentBytes, encodeManifest, isRegular, type ContextEntry } from './ContextEntry.js';
import { FsContextGrants, type ContextGrants } from './ContextGrants.js';
import { renameStaged, writeStaged, type StagedWrite } from './fileThread.js';

export interface ContextStoreOptions {
  /** Directory holding the content store (file contents and manifests) and tenant grants. */
  root: string;
  /** Largest total size of regular files in one context. */
  maxContextBytes?: number;
  /** Largest number of entries in one context. */
  maxFiles?: number;
  /**
   * Machines share no directory (a fleet whose blob store is a registry): contents and
   * manifests live in `content`, whose local tier is this process's own and which pushes every
   * write to the shared blob store and fetches what it lacks from it (a TieredBlobStore, see
   * @buildyard/cache's openContextStore); grants live in `grants` (Redis). Absent: `root` holds
   * both and every process using the store shares that directory (one machine).
   */
  shared?: { content: SharedContent; grants: ContextGrants };
  /**
   * Without `shared`: where deleters of this store's contents record what they delete (the
   * context GC; see ContextGrants.recentDeletions), so a writer that found a content present a
   * moment before it went learns it. Redis grants answer it; the files under `root` cannot.
   */
  deletions?: Pick<ContextGrants, 'recentDeletions'>;
}

/** A content store backed by a shared remote one (TieredBlobStore fits). */
export interface SharedContent extends FsContentStore {
  /** This process's copies. */
  readonly local: FsContentStore;
  /** The shared store behind them. */
  readonly remote: { has(digest: string): Promise<boolean> };
  /** Fetches a blob into the local tier (verified) when only the remote has it; answers its local path. */
  ensureLocal(digest: string): Promise<string>;
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
  private readonly grants: ContextGrants;
  private readonly shared?: SharedContent;
  private readonly deletions?: Pick<ContextGrants, 'recentDeletions'>;
  /** The grants as files under `root` when nothing is shared (the context GC reads and drops them). */
  readonly fsGrants?: FsContextGrants;
  /**
   * The last few manifests stored or read, parsed: a delta sync's base is usually the context
   * the same client synced a minute ago, and re-reading 20,000 entries would cost more than
   * the delta. Small, because one 20,000-file manifest is a few MB.
   */
  private readonly recent = new Map<string, readonly ContextEntry[]>();

  constructor(opts: ContextStoreOptions) {
    this.root = opts.root;
    this.shared = opts.shared?.content;
    this.content = opts.shared?.content ?? new FsContentStore(join(opts.root, 'content'));
    this.fsGrants = opts.shared ? undefined : new FsContextGrants(opts.root);
    this.grants = opts.shared?.grants ?? this.fsGrants!;
    this.deletions = opts.shared?.grants ?? opts.deletions;
    this.maxContextBytes = opts.maxContextBytes ?? 10 * 1024 ** 3;
    this.maxFiles = opts.maxFiles ?? 1_000_000;
  }

  /**
   * Stores the manifest of a fully uploaded context and returns its id (the manifest digest).
   * Every regular entry's content must be in the store and proven by `tenant` (uploaded now or
   * before): shared grants are renewed for all of them, so they expire only when unused.
   */
  async putManifest(sorted: readonly ContextEntry[], tenant: string): Promise<string> {
    const bytes = encodeManifest(sorted);
    const digest = sha256Digest(bytes);
    await this.content.put(bytes, digest);
    this.remember(digest, sorted);
    const files = new Set(sorted.filter(isRegular).map((e) => e.digest));
    if (this.shared) await this.grants.grantContent(tenant, files);
    await this.grants.grantContext(tenant, digest);
    // Granted first, then asked: a deleter that announced these before reading the grants may
    // have removed them from the shared store after this sync found them there (see
    // ContextGrants.recentDeletions). Those are put back once it is done.
    const recent = await this.deletions?.recentDeletions?.([digest, ...files]);
    if (recent && recent.deleting.length + recent.deleted.length > 0) await this.restoreAfterDeletions(recent.deleting, recent.deleted);
    return digest;
  }

  /** Waits for the deleters of `deleting` to finish, then pushes back what went from the shared store (from this process's copy). */
  private async restoreAfterDeletions(deleting: readonly string[], deleted: readonly string[]): Promise<void> {
    const ask = this.deletions?.recentDeletions?.bind(this.deletions);
    if (!ask) return;
    // A deleter that died leaves its announcement until the key expires (DELETION_WAIT_MS):
    // then this goes on and checks the blobs anyway.
    const until = Date.now() + DELETION_WAIT_MS;
    let waiting = [...deleting];
    while (waiting.length > 0 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      waiting = (await ask(waiting)).deleting;
    }
    const shared = this.shared;
    for (const d of new Set([...deleting, ...deleted])) {
      if (shared ? await shared.remote.has(d) : await this.content.has(d)) continue;
      if (shared && (await shared.local.has(d))) await shared.put(shared.local.openRead(d), d);
      else {
        throw new ContextError(`content ${d} of this context was removed from the shared blob store by a garbage collection while the context was synced; sync the context again`);
      }
    }
  }

  /**
   * Deletes these contents (or manifests) from the store, the shared store and this process's
   * copy alike: the context GC's removal of contexts no tenant used for its age. The caller
   * decides what is unused; answers those that existed anywhere.
   */
  async deleteContents(digests: Iterable<string>): Promise<string[]> {
    const gone: string[] = [];
    for (const d of digests) {
      this.recent.delete(d);
      if (await this.content.delete(d)) gone.push(d);
    }
    return gone;
  }

  /**
   * This process's copies of a shared store's contents: written before `olderThan` and not
   * kept by `keep` are removed (the remote keeps serving those it holds). For the context GC
   * on a frontend that did not run the collection itself. Answers the digests removed.
   */
  async evictLocalCopies(olderThan: number, keep: (digest: string) => boolean): Promise<string[]> {
    if (!this.shared) return [];
    const gone: string[] = [];
    for await (const b of this.shared.local.list()) {
      if (b.mtime.getTime() > olderThan || keep(b.digest)) continue;
      if (await this.shared.local.delete(b.digest)) {
        this.recent.delete(b.digest);
        gone.push(b.digest);
      }
    }
    return gone;
  }

  /**
   * Stores a batch of verified small contents as one write: every blob the store lacks goes to
   * a temp file, then one syncfs makes them all durable before any is renamed into place (a
   * blob is never visible truncated after a crash). Per-blob fsync cost more than the writes.
   * A shared store then pushes each one (a no-op for those the remote already holds).
   */
  async putBlobs(blobs: readonly StagedBlob[]): Promise<void> {
    const staged = this.stageBlobs();
    try {
      await staged.add(blobs);
      await staged.commit();
    } catch (err) {
      await staged.abort();
      throw err;
    }
  }

  /**
   * Blobs of one upload (a sync), written as they arrive but made durable and visible only by
   * `commit`: one syncfs for the whole upload instead of one per batch (on a busy disk each
   * syncfs waited ~50 ms for everyone's dirty pages: 200 batches of a 20,000-file context cost
   * seconds). Until then nobody sees them; an `abort` (or a crash: ingest leftovers) drops them.
   */
  stageBlobs(): BlobStaging {
    return new BlobStaging(this.shared?.local ?? this.content, this.shared, join(this.root, 'ingest'));
  }

  /**
   * Removes uploads' temp files written before `olderThanMs` ago: those of a process killed
   * mid-sync (a live sync's are younger; the context GC passes a day). Also those of versions
   * that staged straight into `ingest/`. Answers how many went.
   */
  async removeStagingLeftovers(olderThanMs: number): Promise<number> {
    const ingest = join(this.root, 'ingest');
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const sweep = async (dir: string, depth: number): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
        const path = join(dir, entry.name);
        if (entry.isDirectory()) {
          if (depth === 0 && INGEST_FANOUT.includes(entry.name)) await sweep(path, 1);
          continue;
        }
        const st = await stat(path).catch(() => undefined);
        if (st && st.mtimeMs < cutoff && (await rm(path, { force: true }).then(() => true, () => false))) removed++;
      }
    };
    await sweep(ingest, 0);
    return removed;
  }

  /**
   * Makes these contents readable by path (`content.path`): a shared store fetches those only
   * the remote holds into this process's local tier. Nothing to do for an unshared store.
   */
  async ensureLocal(digests: Iterable<string>): Promise<void> {
    const shared = this.shared;
    if (!shared) return;
    await inSlices([...new Set(digests)], FETCH_CONCURRENCY, async (d) => {
      try {
        await shared.ensureLocal(d);
      } catch (err) {
        if (err instanceof BlobNotFoundError) throw new ContextError(`content ${d} of a context is missing from the shared blob store; upload the context again`);
        throw err;
      }
    });
  }

  /**
   * A shared store's local copies are a cache of the remote: removes them, oldest written first,
   * until at most `keepBytes` remain; answers what went and what stays. Copies younger than
   * `olderThanMs` stay (a writer pushes a copy after storing it). An unshared store's contents
   * are the only ones: nothing is removed and nothing counted.
   */
  async trimLocalCopies(keepBytes: number, olderThanMs = 10 * 60_000): Promise<{ freedBytes: number; keptBytes: number }> {
    if (!this.shared) return { freedBytes: 0, keptBytes: 0 };
    const copies: { digest: string; size: number; mtime: Date }[] = [];
    for await (const b of this.shared.local.list()) copies.push(b);
    copies.sort((a, b) => a.mtime.getTime() - b.mtime.getTime());
    let kept = copies.reduce((n, b) => n + b.size, 0);
    let freed = 0;
    const youngest = Date.now() - olderThanMs;
    for (const b of copies) {
      if (kept <= keepBytes) break;
      if (b.mtime.getTime() > youngest) continue;
      if (await this.shared.local.delete(b.digest)) {
        kept -= b.size;
        freed += b.size;
        this.recent.delete(b.digest);
      }
    }
    return { freedBytes: freed, keptBytes: kept };
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
    const [granted] = await this.grants.hasContent(tenant, [digest]);
    return granted === true && this.content.has(digest);
  }

  /** tenantHasContent for many digests at once (one grants query, then the store for those granted). */
  async tenantHasContents(tenant: string, digests: readonly string[]): Promise<boolean[]> {
    const granted = await this.grants.hasContent(tenant, digests);
    const out = digests.map(() => false);
    const ask = digests.map((d, i) => ({ d, i })).filter(({ i }) => granted[i] === true);
    for (let i = 0; i < ask.length; i += 64) {
      const slice = ask.slice(i, i + 64);
      const held = await Promise.all(slice.map(({ d }) => this.content.has(d)));
      slice.forEach(({ i: at }, j) => { out[at] = held[j]!; });
    }
    return out;
  }

  /** Records that `tenant` uploaded these (verified, committed) contents. */
  grantContent(tenant: string, digests: Iterable<string>): Promise<void> {
    return this.grants.grantContent(tenant, digests);
  }

  /** True when `tenant` has uploaded `contextId` (so it may build from it). */
  tenantHas(tenant: string, contextId: string): Promise<boolean> {
    return this.grants.hasContext(tenant, contextId);
  }
}

const PUSH_CONCURRENCY = 8;
/** Longest wait for a deleter's announcement to go (a deleter's own bound; see ContextBlobGuard). */
const DELETION_WAIT_MS = 10 * 60_000;
const FETCH_CONCURRENCY = 8;

/** Runs `fn` over `items`, `width` at a time. */
async function inSlices<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += width) await Promise.all(items.slice(i, i + width).map(fn));
}

/** A verified content to store. */
export interface StagedBlob {
  digest: string;
  data: Uint8Array;
}

/** See ContextStore.stageBlobs. */
export class BlobStaging {
  /** digest -> temp file, for the blobs the local store lacked when they arrived. */
  private readonly temps = new Map<string, string>();
  /** Every digest added so far (claimed before any await, so concurrent adds write each once). */
  private readonly seen = new Set<string>();
  private ready?: Promise<unknown>;
  private closed = false;
  private readonly inflight = new Set<Promise<void>>();
  /** Unique to this staging: its temp files are named by it and a count (process.pid and randomBytes per file cost 20-35 us of CPU each). */
  private readonly tempPrefix = `${process.pid}-${randomBytes(6).toString('hex')}`;

  constructor(private readonly local: FsContentStore, private readonly shared: SharedContent | undefined, private readonly ingest: string) {}

  /** Writes these verified blobs to temp files (those the store or this staging already has are skipped). */
  add(blobs: readonly StagedBlob[]): Promise<void> {
    if (this.closed) return Promise.reject(new Error('blob staging already committed or aborted'));
    const p = this.write(blobs);
    // commit and abort wait for every write: none may create a temp file after them.
    const tracked = p.catch(() => {});
    this.inflight.add(tracked);
    void tracked.finally(() => this.inflight.delete(tracked));
    return p;
  }

  private async write(blobs: readonly StagedBlob[]): Promise<void> {
    const fresh = blobs.filter((b) => !this.seen.has(b.digest) && this.seen.add(b.digest));
    this.ready ??= Promise.all([this.local.init(), ...INGEST_FANOUT.map((d) => mkdir(join(this.ingest, d), { recursive: true }))]);
    await this.ready;
    // In line: a stat of a (negatively) cached name costs microseconds, where the store's has()
    // went through the thread pool and built an ENOENT error for each of 20,000 new blobs.
    const present = fresh.map((b) => statSync(this.local.path(b.digest), { throwIfNoEntry: false })?.isFile() === true);
    if (this.closed) throw new Error('blob staging aborted');
    const writes = fresh.filter((_, i) => !present[i]).map((b): StagedWrite => {
      // Spread over subdirectories: creating a file locks its directory, which concurrent
      // uploads (and the processes of one machine) share.
      const path = join(this.ingest, b.digest[7]!, `${b.digest.slice(7, 19)}-${this.tempPrefix}-${this.temps.size}`);
      this.temps.set(b.digest, path);
      return { path, data: b.data, mode: 0o666 };
    });
    await writeStaged(writes);
    // All of them, not only the fresh ones: a local copy may be one whose push a crash cut off.
    const shared = this.shared;
    if (shared) await inSlices(blobs, PUSH_CONCURRENCY, (b) => shared.put(b.data, b.digest, b.data.length));
  }

  /** One syncfs, then every staged blob renamed into the store. The caller has awaited every add. */
  async commit(): Promise<void> {
    if (this.closed) throw new Error('blob staging already committed or aborted');
    this.closed = true;
    await Promise.all(this.inflight);
    const temps = [...this.temps];
    if (temps.length === 0) return;
    try {
      await syncFilesystem(this.ingest, temps.map(([, tmp]) => tmp));
      await renameStaged(temps.map(([digest, tmp]) => [tmp, this.local.path(digest)]));
    } catch (err) {
      await this.removeTemps();
      throw err;
    }
  }

  /** Drops what was staged and not committed, once every write under way has ended. */
  async abort(): Promise<void> {
    this.closed = true;
    await Promise.all(this.inflight);
    await this.removeTemps();
  }

  private async removeTemps(): Promise<void> {
    await inSlices([...this.temps.values()], REMOVE_CONCURRENCY, (tmp) => rm(tmp, { force: true }));
  }
}

const REMOVE_CONCURRENCY = 64;

/** The ingest directory's subdirectories: one per first hex digit of a digest. */
const INGEST_FANOUT = [...'0123456789abcdef'];

const RECENT_MANIFESTS = 4;

let syncfsWorks: boolean | undefined;

/**
 * Up to this many files (an edit's upload) are fsynced one by one: syncfs also waits for every
 * other dirty page of the filesystem (a worker's layers, other uploads) and starts a process.
 */
const FSYNC_EACH_UP_TO = 16;

/** syncfs(2) on the filesystem holding `dir` (coreutils' `sync -f`); else, or for a few files, fsync of each file. */
async function syncFilesystem(dir: string, files: readonly string[]): Promise<void> {
  if (files.length > FSYNC_EACH_UP_TO && syncfsWorks !== false) {
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

/** Sum of regular file sizes in a manifest (a file with several names counted once). */
export function contextBytes(entries: readonly ContextEntry[]): number {
  return entries.reduce((n, e) => n + contentBytes(e), 0);
}
