import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { Metadata, ClientDuplexStream } from '@grpc/grpc-js';
import { ContextSyncService, type ContentChunk, type ContextEntry as ProtoContextEntry, type ContextSyncClient, type SyncComplete, type SyncRequest, type SyncResponse } from '@buildyard/proto';
import { ContextError } from './ContextError.js';
import { encodeSyncRequest } from './encodeSyncRequest.js';
import { contentBytes, isRegular, sameEntry, type ContextEntry } from './ContextEntry.js';
import { xattrValues } from './contextXattrs.js';
import { defaultContextCacheDir } from './HashCache.js';
import { appendJournal, compactAfter, readJournal, rewriteJournal } from './journalFile.js';
import { listContext, type WalkOptions } from './walkContext.js';

export interface SyncProgress {
  phase: 'walk' | 'negotiate' | 'upload' | 'complete';
  files: number;
  bytesTotal: number;
  /** Bytes the server lacked and that have to be uploaded. */
  bytesToUpload: number;
  bytesUploaded: number;
}

export interface SyncOptions {
  dockerignore?: readonly string[];
  metadata?: Metadata;
  cacheDir?: string | false;
  onProgress?: (p: SyncProgress) => void;
  /** Aborts the upload (the call is cancelled). */
  signal?: AbortSignal;
  /** Reads a file's own extended attributes (see WalkOptions.readXattrs); without it none are sent. */
  readXattrs?: WalkOptions['readXattrs'];
}

export interface SyncResult {
  contextId: string;
  files: number;
  bytesTotal: number;
  bytesUploaded: number;
}

/** Entry batches stay well below gRPC's default 4 MiB and the 1 MiB we promise. */
const MAX_BATCH_BYTES = 512 * 1024;
export const CHUNK_SIZE = 256 * 1024;
/** Small files travel many to a message, up to about this much content. */
const MAX_BLOB_BATCH_BYTES = 1024 * 1024;
/** Bytes of small files kept from hashing until uploaded or the server says it has them all. */
const KEEP_READ_BYTES = 32 * 1024 * 1024;

/**
 * Uploads the context in `dir`, sending only what the server does not have yet: with a hash
 * cache dir, the entries that changed since the last sync of this directory to this builder
 * as this caller (a delta against that context id), and the contents the tenant never sent.
 * Entries go out as they are hashed; contents as soon as the server asks for them.
 */
export async function syncContext(client: ContextSyncClient, dir: string, opts: SyncOptions = {}): Promise<SyncResult> {
  const root = resolve(dir);
  const cacheDir = opts.cacheDir === undefined ? defaultContextCacheDir() : opts.cacheDir;
  // The connection is made while the walk runs, not after it (nothing when already connected).
  client.getChannel().getConnectivityState(true);
  const [listing, base] = await Promise.all([
    // Small files hashing reads are kept for the upload (a first sync would read each twice).
    listContext(root, { dockerignore: opts.dockerignore, cacheDir, keepBytes: KEEP_READ_BYTES, keepFileMax: CHUNK_SIZE, readXattrs: opts.readXattrs }),
    cacheDir === false ? undefined : LastSync.open(cacheDir, baseKey(root, client, opts.metadata)),
  ]);
  const { entries } = listing;
  let bytesTotal = 0;
  let files = 0;
  for (const e of entries) {
    if (!isRegular(e)) continue;
    files++;
    bytesTotal += contentBytes(e);
  }
  // Filled as entries are sent: the server only asks for digests of entries it has received.
  const pathOf = new Map<string, string>();
  const sizeOf = new Map<string, number>();
  const progress: SyncProgress = { phase: 'walk', files, bytesTotal, bytesToUpload: 0, bytesUploaded: 0 };
  opts.onProgress?.({ ...progress });

  // The service's own method, with a serializer that copies contents once (encodeSyncRequest).
  const method = ContextSyncService.sync;
  const call = opts.metadata
    ? client.makeBidiStreamRequest(method.path, encodeSyncRequest, method.responseDeserialize, opts.metadata)
    : client.makeBidiStreamRequest(method.path, encodeSyncRequest, method.responseDeserialize);
  const onAbort = () => call.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  // Errors surface through the response iterator; this keeps an early one from going unhandled.
  call.on('error', () => {});
  const responses = call[Symbol.asyncIterator]() as AsyncIterator<SyncResponse>;

  const uploads = new UploadQueue();
  let sideFailure: unknown;
  const onBytes = (n: number) => {
    progress.bytesUploaded += n;
    opts.onProgress?.({ ...progress });
  };

  // The entry list, in batches as hashing finishes: all entries, or with a base only those that
  // differ from it and the paths it has that are gone.
  // What the delta against the base held, so saving the new base need not diff again.
  let sentDelta: BaseChanges | undefined;
  const sendEntries = async (against: BaseEntries | undefined): Promise<void> => {
    const set: ContextEntry[] = [];
    let batch: ProtoContextEntry[] = [];
    let removed: string[] = [];
    let batchBytes = 0;
    const flush = async () => {
      await send(call, { entries: { entries: batch, removed } });
      batch = [];
      removed = [];
      batchBytes = 0;
    };
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i];
      if (isRegular(entry)) {
        // A digest is only set once final: most files have theirs from the hash cache by now,
        // and awaiting 20,000 settled promises costs ~20 ms of microtasks.
        if (entry.digest === '') await listing.ready(i);
        if (!pathOf.has(entry.digest)) pathOf.set(entry.digest, `${root}/${entry.path}`);
        sizeOf.set(entry.digest, entry.size);
      }
      if (against?.has(entry)) continue;
      if (against) set.push(entry);
      const size = entrySize(entry);
      if (batch.length > 0 && batchBytes + size > MAX_BATCH_BYTES) await flush();
      batch.push({ ...entry, modTime: entry.modTime ?? '0', xattrs: entry.xattrs ? xattrValues(entry.xattrs).map(([name, value]) => ({ name, value })) : [] });
      batchBytes += size;
    }
    if (against) {
      const gone = against.removedFrom(entries);
      for (const path of gone) {
        const size = Buffer.byteLength(path) + 8;
        if (batchBytes + size > MAX_BATCH_BYTES) await flush();
        removed.push(path);
        batchBytes += size;
      }
      sentDelta = { base: against, set, removed: gone };
    }
    if (batch.length > 0 || removed.length > 0) await flush();
    await send(call, { entriesDone: true });
  };

  try {
    progress.phase = 'negotiate';
    opts.onProgress?.({ ...progress });
    const usable = base?.usable();
    if (usable) await send(call, { base: { contextId: usable.contextId } });
    // Sending and uploading run beside the response loop; a failure in either (a file that
    // vanished) cancels the call so the loop does not wait for an answer that cannot come.
    const failFast = (p: Promise<void>) => {
      p.catch((err: unknown) => { sideFailure ??= err; call.cancel(); });
      return p;
    };
    let sending = failFast(sendEntries(usable));
    const uploading = failFast(uploads.run(call, pathOf, sizeOf, onBytes, (d) => listing.takeContent(d)));

    let complete: SyncComplete | undefined;
    while (!complete) {
      const res = await nextResponse(responses, 'the server\'s answer');
      if (res.baseUnknown) {
        if (!usable) throw new ContextError('context sync: the server rejected a base the client did not send; the server is misbehaving', 'internal');
        // Not this tenant's (another token, or the server lost it): the full list follows the delta.
        sending = failFast(sending.then(() => sendEntries(undefined)));
      } else if (res.missing) {
        for (const d of res.missing.digests) {
          if (!pathOf.has(d)) throw new ContextError(`context sync: server asked for ${d}, which is not in the context; the server is misbehaving`, 'internal');
          progress.bytesToUpload += sizeOf.get(d) ?? 0;
        }
        if (progress.phase !== 'upload') progress.phase = 'upload';
        opts.onProgress?.({ ...progress });
        uploads.add(res.missing.digests);
      } else if (res.missingDone) {
        await sending;
        // Every digest the server lacks is now queued (taken or read from there on).
        uploads.afterQueued(() => listing.dropContents());
        uploads.close();
        await uploading;
        await send(call, { uploadDone: true });
        call.end();
      } else if (res.complete) {
        complete = res.complete;
      } else {
        throw new ContextError('context sync: unexpected message from the server', 'internal');
      }
    }
    progress.phase = 'complete';
    opts.onProgress?.({ ...progress });
    await listing.done;
    if (base && complete.contextId !== usable?.contextId) await base.save(complete.contextId, entries, sentDelta);
    return { contextId: complete.contextId, files: complete.files, bytesTotal: complete.bytesTotal, bytesUploaded: complete.bytesUploaded };
  } catch (err) {
    call.cancel();
    uploads.close();
    listing.dropContents();
    throw sideFailure ?? err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
}

/** Roughly an entry's encoded size, for batching (exactness is not needed, only a bound). */
function entrySize(e: ContextEntry): number {
  return Buffer.byteLength(e.path) + Buffer.byteLength(e.linkTarget) + e.digest.length + 48 + (e.xattrs ?? []).reduce((n, [name, value]) => n + name.length + value.length, 0);
}

/**
 * The digests the server asked for, sent as they come: files up to CHUNK_SIZE are read a few
 * at a time and go many to a `blobs` message; larger files stream in chunks.
 */
class UploadQueue {
  private queue: string[] = [];
  private closed = false;
  private wake: (() => void) | undefined;
  private onEmpty: (() => void) | undefined;

  add(digests: readonly string[]): void {
    this.queue.push(...digests);
    this.wake?.();
  }

  close(): void {
    this.closed = true;
    this.wake?.();
  }

  /** Runs `fn` once the queue has taken up everything added so far. */
  afterQueued(fn: () => void): void {
    if (this.queue.length === 0) fn();
    else this.onEmpty = fn;
  }

  /** `kept`: the bytes hashing read for a digest, if still held (else the file is read). */
  async run(call: ClientDuplexStream<SyncRequest, SyncResponse>, pathOf: ReadonlyMap<string, string>, sizeOf: ReadonlyMap<string, number>, onBytes: (n: number) => void, kept: (digest: string) => Buffer | undefined = () => undefined): Promise<void> {
    for (;;) {
      if (this.queue.length === 0) {
        if (this.closed) return;
        await new Promise<void>((resolveWake) => { this.wake = resolveWake; });
        this.wake = undefined;
        continue;
      }
      const digests = this.queue.splice(0);
      const small = digests.filter((d) => sizeOf.get(d)! <= CHUNK_SIZE);
      // Taken before any await: what is not taken now is read from the file.
      const held = small.map((d) => kept(d));
      const onEmpty = this.onEmpty;
      this.onEmpty = undefined;
      onEmpty?.();
      for (const d of digests) if (sizeOf.get(d)! > CHUNK_SIZE) await uploadFile(call, d, pathOf.get(d)!, onBytes);
      let batch: ContentChunk[] = [];
      let batchBytes = 0;
      const flush = async () => {
        await send(call, { blobs: { blobs: batch } });
        onBytes(batchBytes);
        batch = [];
        batchBytes = 0;
        // The reads below are in line: the call and the response loop run between messages.
        await new Promise<void>((resolveTurn) => setImmediate(resolveTurn));
      };
      for (let i = 0; i < small.length; i++) {
        // Read in line, as hashing reads them (see listContext): readFile's four thread-pool
        // round trips per file cost more CPU than the read.
        const data = held[i] ?? readFileSync(pathOf.get(small[i])!);
        if (batch.length > 0 && batchBytes + data.length > MAX_BLOB_BATCH_BYTES) await flush();
        batch.push({ digest: small[i], data, last: true });
        batchBytes += data.length;
      }
      if (batch.length > 0) await flush();
    }
  }
}

/**
 * The last context this directory synced to this builder as this caller, kept in the hash
 * cache dir: its id is the base of the next sync's delta, its entries what the delta is
 * computed against. Only the server decides whether the base is the caller's own.
 *
 * Kept as a journal (see journalFile.ts): a snapshot `{id, entries}`, then one line per sync
 * `{parent, id, set, removed}` with what changed, so a one-file sync appends one short line
 * instead of rewriting 20,000 entries. A line whose parent is not the id before it (two syncs
 * of one directory saved at once) ends the replay: the id and entries so far still belong
 * together, and the next save rewrites the file.
 */
class LastSync {
  private constructor(private readonly file: string, private readonly base: BaseEntries | undefined, private readonly journaled: number) {}

  static async open(cacheDir: string, key: string): Promise<LastSync> {
    const file = join(cacheDir, `base-${key}.jsonl`);
    const records = (await readJournal(file)) as Partial<BaseSnapshot & BaseChange>[];
    const first = records[0];
    // Missing or corrupt: sync in full, the base is only an optimisation.
    if (typeof first?.id !== 'string' || !Array.isArray(first.entries)) return new LastSync(file, undefined, 0);
    let id = first.id;
    const byPath = new Map(first.entries.map((e) => [e.path, e]));
    let journaled = 0;
    for (const r of records.slice(1)) {
      if (r.parent !== id || typeof r.id !== 'string' || !Array.isArray(r.set) || !Array.isArray(r.removed)) {
        journaled = Infinity;
        break;
      }
      for (const path of r.removed) byPath.delete(path);
      for (const e of r.set) byPath.set(e.path, e);
      id = r.id;
      journaled += r.set.length + r.removed.length;
    }
    return new LastSync(file, new BaseEntries(id, byPath), journaled);
  }

  usable(): BaseEntries | undefined {
    return this.base;
  }

  /** `known`: the changes from this base to `entries` when the sync already computed them. */
  async save(contextId: string, entries: readonly ContextEntry[], known?: BaseChanges): Promise<void> {
    if (this.base) {
      const { set, removed } = known?.base === this.base ? known : { set: entries.filter((e) => !this.base!.has(e)), removed: this.base.removedFrom(entries) };
      if (this.journaled + set.length + removed.length <= compactAfter(entries.length)) {
        const change: BaseChange = { parent: this.base.contextId, id: contextId, set, removed };
        await appendJournal(this.file, change);
        return;
      }
    }
    const snapshot: BaseSnapshot = { id: contextId, entries };
    await rewriteJournal(this.file, [snapshot]);
  }
}

interface BaseSnapshot { id: string; entries: readonly ContextEntry[] }
interface BaseChange { parent: string; id: string; set: ContextEntry[]; removed: string[] }
interface BaseChanges { base: BaseEntries; set: ContextEntry[]; removed: string[] }

class BaseEntries {
  constructor(readonly contextId: string, private readonly byPath: ReadonlyMap<string, ContextEntry>) {}

  /** True when the base holds exactly this entry (so the delta leaves it out). */
  has(e: ContextEntry): boolean {
    const b = this.byPath.get(e.path);
    return b !== undefined && sameEntry(b, e);
  }

  /** Paths of the base missing from `entries`. */
  removedFrom(entries: readonly ContextEntry[]): string[] {
    const now = new Set(entries.map((e) => e.path));
    return [...this.byPath.keys()].filter((p) => !now.has(p));
  }
}

/** Names the base: the directory, the builder's address and the caller's credentials. */
function baseKey(root: string, client: ContextSyncClient, metadata: Metadata | undefined): string {
  const auth = metadata?.get('authorization').map(String).join('\n') ?? '';
  return createHash('sha256').update([root, client.getChannel().getTarget(), auth].join('\0')).digest('hex').slice(0, 32);
}

async function nextResponse(it: AsyncIterator<SyncResponse>, waitingFor: string): Promise<SyncResponse> {
  const r = await it.next();
  if (r.done) throw new ContextError(`context sync: the server closed the stream while we waited for ${waitingFor}`, 'internal');
  return r.value;
}

/** Writes one message, waiting for 'drain' when gRPC's buffer is full. */
function send(call: ClientDuplexStream<SyncRequest, SyncResponse>, msg: SyncRequest): Promise<void> {
  if (call.destroyed) return Promise.reject(new ContextError('context sync: the stream was closed by the server', 'internal'));
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolveDrain, reject) => {
    const cleanup = () => {
      call.off('drain', onDrain);
      call.off('error', onError);
      call.off('close', onClose);
    };
    const onDrain = () => { cleanup(); resolveDrain(); };
    const onError = (e: Error) => { cleanup(); reject(e); };
    const onClose = () => { cleanup(); reject(new ContextError('context sync: the stream closed during upload', 'internal')); };
    call.on('drain', onDrain);
    call.on('error', onError);
    call.on('close', onClose);
  });
}

/** Streams one file in 256 KiB chunks; the last chunk carries `last` (an empty file sends one empty chunk). */
async function uploadFile(call: ClientDuplexStream<SyncRequest, SyncResponse>, digest: string, path: string, onBytes: (n: number) => void): Promise<void> {
  const fh = await open(path, 'r');
  try {
    // Hold one chunk back so we know which one is last without trusting the walked size.
    let held: Buffer | undefined;
    for (;;) {
      const buf = Buffer.allocUnsafe(CHUNK_SIZE);
      const { bytesRead } = await fh.read(buf, 0, CHUNK_SIZE, null);
      if (bytesRead === 0) break;
      if (held) {
        await send(call, { chunk: { digest, data: held, last: false } });
        onBytes(held.length);
      }
      held = bytesRead === CHUNK_SIZE ? buf : buf.subarray(0, bytesRead);
    }
    const data = held ?? Buffer.alloc(0);
    await send(call, { chunk: { digest, data, last: true } });
    onBytes(data.length);
  } finally {
    await fh.close();
  }
}

