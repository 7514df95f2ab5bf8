import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { SyncRequest, SyncResponse } from '@buildyard/proto';
import { DigestMismatchError, sha256Digest, type ContentWriter } from '@buildyard/oci';
import { SESSION_IDLE_TIMEOUT_MS, clientIdleMessage, withinIdle } from './clientIdle.js';
import { ContextError } from './ContextError.js';
import { contentBytes, isDirectory, isRegular, manifestIndex, sortEntries, type ContextEntry } from './ContextEntry.js';
import type { BlobStaging, ContextStore } from './ContextStore.js';
import { entryXattrs } from './contextXattrs.js';
import { validateEntry, validateEntrySet } from './validateEntries.js';

export interface HandleSyncOptions {
  /** Who is uploading; recorded as a grant on the context id. */
  tenant: string;
  /**
   * Longest wait for the client's next message (limits.sessionIdleTimeoutMs, 60 s by default):
   * a client that goes silent mid-sync is cut off with DEADLINE_EXCEEDED and what it sent goes.
   */
  idleTimeoutMs?: number;
}

export interface HandleSyncResult {
  contextId: string;
  files: number;
  bytesTotal: number;
  /** Content bytes actually received in this call. */
  bytesUploaded: number;
  /** Digests this tenant had not uploaded before, which the client had to send. */
  uploaded: string[];
  /** The entry list was a delta against a base context of this tenant. */
  delta: boolean;
  /** Entries and removed paths received (with a delta, only the change). */
  entriesReceived: number;
}

const MISSING_BATCH = 4096;
const MAX_INFLIGHT_COMMITS = 64;

/**
 * Serves one ContextSync.Sync call: validates the entry list (or the delta against a base the
 * tenant synced before), asks for the contents the store lacks as each entry batch arrives,
 * verifies and stores them, then stores the manifest. On a bad request the call ends with
 * INVALID_ARGUMENT or RESOURCE_EXHAUSTED and a one-line message; the returned promise then
 * rejects with the same ContextError.
 */
export async function handleSync(
  call: ServerDuplexStream<SyncRequest, SyncResponse>,
  store: ContextStore,
  opts: HandleSyncOptions,
): Promise<HandleSyncResult> {
  const writers = new Map<string, { writer: ContentWriter; received: number; size: number }>();
  const staging = store.stageBlobs();
  try {
    const result = await runSync(call, store, opts, writers, staging);
    call.write({ complete: { contextId: result.contextId, files: result.files, bytesTotal: result.bytesTotal, bytesUploaded: result.bytesUploaded, delta: result.delta } });
    call.end();
    return result;
  } catch (err) {
    await Promise.all([...writers.values()].map((w) => w.writer.abort().catch(() => {})));
    await staging.abort().catch(() => {});
    const ce = err instanceof ContextError ? err
      : err instanceof DigestMismatchError ? new ContextError(`uploaded content does not match ${err.expected}; the file changed during the upload — retry the build`)
      : new ContextError(`context sync failed: ${err instanceof Error ? err.message : String(err)}`, 'internal');
    if (!call.cancelled && !call.destroyed) call.emit('error', { code: ce.grpcCode, details: ce.message });
    throw ce;
  }
}

async function runSync(
  call: ServerDuplexStream<SyncRequest, SyncResponse>,
  store: ContextStore,
  opts: HandleSyncOptions,
  writers: Map<string, { writer: ContentWriter; received: number; size: number }>,
  staging: BlobStaging,
): Promise<HandleSyncResult> {
  const requests = call[Symbol.asyncIterator]() as AsyncIterator<SyncRequest>;
  // An idle deadline, not a total one: a large upload that keeps moving takes as long as it takes.
  const idleMs = opts.idleTimeoutMs ?? SESSION_IDLE_TIMEOUT_MS;
  const next = async (phase: string): Promise<SyncRequest> => {
    const r = await withinIdle(requests.next(), idleMs, () => new ContextError(clientIdleMessage(idleMs, `sending the build context (${phase})`), 'idle'));
    if (r.done) throw new ContextError(`context sync: the client ended the stream during ${phase}; retry the upload`);
    return r.value;
  };

  // The base: only a context this tenant itself synced (its grant), never one it merely names.
  // Every content of a base was proven by the tenant when the base was made, so entries whose
  // digest is in the base need no new proof.
  let req = await next('the entry list');
  let base: ReadonlyMap<string, ContextEntry> | undefined;
  let baseList: readonly ContextEntry[] = [];
  let baseSize: ReadonlyMap<string, number> = new Map();
  if (req.base) {
    const id = req.base.contextId;
    if ((await store.tenantHas(opts.tenant, id)) && (await store.content.has(id))) {
      baseList = await store.manifest(id);
      ({ byPath: base, sizeOf: baseSize } = manifestIndex(baseList));
    } else {
      // The same answer whether the id exists for another tenant or nowhere.
      await writeResponse(call, { baseUnknown: true });
      for (;;) {
        req = await next('the delta after base_unknown');
        if (req.entriesDone) break;
        if (!req.entries) throw new ContextError('context sync: expected the rest of the delta and entries_done after base_unknown');
      }
    }
    req = await next('the entry list');
  }

  const received = new Map<string, ContextEntry>();
  const removed = new Set<string>();
  let entriesReceived = 0;
  let bytesReceived = 0;
  let entriesDone = false;
  let sorted: ContextEntry[] = [];
  let files = 0;
  let bytesTotal = 0;
  // Every digest seen so far with its size; `pending` those that still have to be sent.
  const sizeOf = new Map<string, number>();
  const pending = new Set<string>();
  const uploaded: string[] = [];

  const onEntries = async (batch: NonNullable<SyncRequest['entries']>): Promise<void> => {
    const fresh: string[] = [];
    for (const raw of batch.entries) {
      const e: ContextEntry = { path: raw.path, mode: raw.mode, size: raw.size, digest: raw.digest, linkTarget: raw.linkTarget, modTime: raw.modTime };
      if (raw.hardlinkTo !== undefined) e.hardlinkTo = raw.hardlinkTo;
      validateEntry(e);
      const xattrs = raw.xattrs.length > 0 ? entryXattrs(JSON.stringify(e.path), raw.xattrs.map((x) => [x.name, x.value] as const)) : undefined;
      if (xattrs) e.xattrs = xattrs;
      if (received.has(e.path) || removed.has(e.path)) throw new ContextError(`context entry ${JSON.stringify(e.path)} is listed twice`);
      received.set(e.path, e);
      if (++entriesReceived > store.maxFiles) {
        throw new ContextError(`build context has more than ${store.maxFiles} entries; add unneeded files to .dockerignore`, 'too-large');
      }
      // Attribute values count towards the size limit too: the manifest holds them.
      bytesReceived += contentBytes(e) + raw.xattrs.reduce((n, x) => n + x.value.length, 0);
      if (bytesReceived > store.maxContextBytes) {
        throw new ContextError(`build context is larger than the limit of ${store.maxContextBytes} bytes (at ${JSON.stringify(e.path)}); add large files to .dockerignore`, 'too-large');
      }
      if (!isRegular(e)) continue;
      const known = sizeOf.get(e.digest) ?? baseSize.get(e.digest);
      if (known !== undefined && known !== e.size) {
        throw new ContextError(`context entry ${JSON.stringify(e.path)} has digest ${e.digest} with size ${e.size}, but another entry has the same digest with size ${known}`);
      }
      if (sizeOf.has(e.digest)) continue;
      sizeOf.set(e.digest, e.size);
      if (!baseSize.has(e.digest)) fresh.push(e.digest);
    }
    for (const path of batch.removed) {
      if (!base) throw new ContextError(`context sync: removed path ${JSON.stringify(path.slice(0, 200))} without a base context`);
      if (!base.has(path)) throw new ContextError(`context sync: removed path ${JSON.stringify(path.slice(0, 200))} is not in the base context`);
      if (received.has(path) || removed.has(path)) throw new ContextError(`context entry ${JSON.stringify(path.slice(0, 200))} is listed twice`);
      removed.add(path);
      entriesReceived++;
    }
    // Only this tenant's own uploads count: naming a digest is no proof of holding its content.
    const present = await store.tenantHasContents(opts.tenant, fresh);
    const missing = fresh.filter((_, j) => !present[j]);
    for (const d of missing) pending.add(d);
    uploaded.push(...missing);
    for (let i = 0; i < missing.length; i += MISSING_BATCH) {
      await writeResponse(call, { missing: { digests: missing.slice(i, i + MISSING_BATCH) } });
    }
  };

  const onEntriesDone = (): void => {
    let all: ContextEntry[];
    // Only entries changed in place (the usual edit): the base's order holds, no sort needed.
    const inPlace = base !== undefined && removed.size === 0 && [...received.keys()].every((p) => base!.has(p));
    if (inPlace) {
      all = baseList.map((e) => received.get(e.path) ?? e);
    } else if (base) {
      all = [];
      for (const [path, e] of base) if (!removed.has(path) && !received.has(path)) all.push(e);
      all.push(...received.values());
    } else {
      all = [...received.values()];
    }
    if (all.length > store.maxFiles) {
      throw new ContextError(`build context has more than ${store.maxFiles} entries; add unneeded files to .dockerignore`, 'too-large');
    }
    for (const e of all) {
      if (!isRegular(e)) continue;
      files++;
      bytesTotal += contentBytes(e);
    }
    if (bytesTotal > store.maxContextBytes) {
      throw new ContextError(`build context is larger than the limit of ${store.maxContextBytes} bytes; add large files to .dockerignore`, 'too-large');
    }
    sorted = inPlace ? all : sortEntries(all);
    // Changed in place, every path keeping its kind (directory or not): the base's set, which
    // was valid, stays so (20,000 entries checked again on each one-file change otherwise).
    // Unless hard links are involved: a changed file must still match its other names.
    const links = inPlace && (manifestIndex(baseList).hardlinks > 0 || [...received.values()].some((e) => e.hardlinkTo !== undefined));
    if (!inPlace || links || [...received.values()].some((e) => isDirectory(e) !== isDirectory(base!.get(e.path)!))) validateEntrySet(sorted);
  };

  // Contents may arrive as soon as their digest was asked for, between entry batches. A writer
  // per streamed digest verifies sha256 and size and commits atomically. Commits (fsync +
  // rename) run in the background, a bounded number at a time, so many small files do not
  // serialise on fsync latency.
  let bytesUploaded = 0;
  const inflight = new Set<Promise<unknown>>();
  let failure: unknown;
  const background = async (p: Promise<unknown>): Promise<void> => {
    const tracked = p.then(() => {}, (err: unknown) => { failure ??= err; });
    inflight.add(tracked);
    void tracked.finally(() => inflight.delete(tracked));
    if (inflight.size >= MAX_INFLIGHT_COMMITS) await Promise.race(inflight);
    if (failure) throw failure;
  };
  // A verified whole blob is granted while the upload goes on, not all at the end (20,000 grant
  // files were seconds on the critical path). A grant only says the tenant proved it holds the
  // bytes, which it did here: should this sync fail, the store lacks the blob and the grant
  // alone lets nothing through (tenantHasContent needs both).
  const granted = new Set<string>();
  const grantNow = async (digests: readonly string[]): Promise<void> => {
    await store.grantContent(opts.tenant, digests);
    for (const d of digests) granted.add(d);
  };
  const expect = (digest: string, length: number, had: number): number => {
    if (!pending.has(digest)) {
      throw new ContextError(`context sync: received content for ${digest.slice(0, 80) || '(empty digest)'}, which was not requested or is already complete`);
    }
    const size = sizeOf.get(digest)!;
    bytesUploaded += length;
    if (had + length > size) {
      throw new ContextError(`context sync: content for ${digest} is longer than its declared ${size} bytes; the file changed during the upload — retry the build`);
    }
    return size;
  };
  // A whole file in one piece: verified here, because put() skips data whose digest the store
  // already holds, and an upload is the tenant's proof of possession: wrong bytes under
  // another tenant's digest must not pass.
  const verifyWhole = (digest: string, data: Uint8Array): void => {
    const size = expect(digest, data.length, 0);
    if (data.length !== size || sha256Digest(data) !== digest) throw new DigestMismatchError(digest, sha256Digest(data));
    pending.delete(digest);
  };

  for (;; req = await next(entriesDone ? 'the upload' : 'the entry list')) {
    if (req.entries) {
      if (entriesDone) throw new ContextError('context sync: entries after entries_done');
      await onEntries(req.entries);
    } else if (req.entriesDone) {
      if (entriesDone) throw new ContextError('context sync: entries_done sent twice');
      entriesDone = true;
      onEntriesDone();
      await writeResponse(call, { missingDone: true });
    } else if (req.blobs) {
      // All verified before any is written; then written in the background, made durable and
      // visible with the rest of this upload's (one syncfs, see ContextStore.stageBlobs).
      for (const b of req.blobs.blobs) verifyWhole(b.digest, b.data);
      const digests = req.blobs.blobs.map((b) => b.digest);
      await background(staging.add(req.blobs.blobs).then(() => grantNow(digests)));
    } else if (req.chunk) {
      const chunk = req.chunk;
      let w = writers.get(chunk.digest);
      if (!w && chunk.last) {
        verifyWhole(chunk.digest, chunk.data);
        await background(staging.add([{ digest: chunk.digest, data: chunk.data }]).then(() => grantNow([chunk.digest])));
        continue;
      }
      const size = expect(chunk.digest, chunk.data.length, w?.received ?? 0);
      if (!w) {
        w = { writer: await store.content.writer({ expectedDigest: chunk.digest, expectedSize: size }), received: 0, size };
        writers.set(chunk.digest, w);
      }
      w.received += chunk.data.length;
      // Awaiting the file write pauses reading from the call: backpressure reaches the client.
      if (chunk.data.length > 0) await w.writer.write(chunk.data);
      if (chunk.last) {
        writers.delete(chunk.digest);
        pending.delete(chunk.digest);
        await background(w.writer.commit());
      }
    } else if (req.uploadDone) {
      if (!entriesDone) throw new ContextError('context sync: upload_done before entries_done');
      break;
    } else if (req.base) {
      throw new ContextError('context sync: base must be the first message');
    } else {
      throw new ContextError('context sync: empty or unknown request message');
    }
  }
  await Promise.all(inflight);
  if (failure) throw failure;
  if (pending.size > 0) {
    throw new ContextError(`context sync: upload_done arrived but ${pending.size} requested contents were not sent (first: ${[...pending][0]}); retry the upload`);
  }
  await staging.commit();

  await store.grantContent(opts.tenant, uploaded.filter((d) => !granted.has(d)));
  const contextId = await store.putManifest(sorted, opts.tenant);
  return { contextId, files, bytesTotal, bytesUploaded, uploaded, delta: base !== undefined, entriesReceived };
}

function writeResponse(call: ServerDuplexStream<SyncRequest, SyncResponse>, msg: SyncResponse): Promise<void> {
  if (call.write(msg)) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const onDrain = () => { call.off('error', onError); resolve(); };
    const onError = (e: Error) => { call.off('drain', onDrain); reject(e); };
    call.once('drain', onDrain);
    call.once('error', onError);
  });
}

