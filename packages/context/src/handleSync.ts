import type { ServerDuplexStream } from '@grpc/grpc-js';
import type { SyncRequest, SyncResponse } from '@buildyard/proto';
import { DigestMismatchError, sha256Digest, type ContentWriter } from '@buildyard/oci';
import { ContextError } from './ContextError.js';
import { isRegular, sortEntries, type ContextEntry } from './ContextEntry.js';
import type { ContextStore } from './ContextStore.js';
import { validateEntry, validateEntrySet } from './validateEntries.js';

export interface HandleSyncOptions {
  /** Who is uploading; recorded as a grant on the context id. */
  tenant: string;
}

export interface HandleSyncResult {
  contextId: string;
  files: number;
  bytesTotal: number;
  /** Content bytes actually received in this call. */
  bytesUploaded: number;
  /** Digests this tenant had not uploaded before, which the client had to send. */
  uploaded: string[];
}

const MISSING_BATCH = 4096;
const MAX_INFLIGHT_COMMITS = 64;

/**
 * Serves one ContextSync.Sync call: validates the entry list, asks for the contents the store
 * lacks, verifies and stores them, then stores the manifest. On a bad request the call ends
 * with INVALID_ARGUMENT or RESOURCE_EXHAUSTED and a one-line message; the returned promise then
 * rejects with the same ContextError.
 */
export async function handleSync(
  call: ServerDuplexStream<SyncRequest, SyncResponse>,
  store: ContextStore,
  opts: HandleSyncOptions,
): Promise<HandleSyncResult> {
  const writers = new Map<string, { writer: ContentWriter; received: number; size: number }>();
  try {
    const result = await runSync(call, store, opts, writers);
    call.write({ complete: { contextId: result.contextId, files: result.files, bytesTotal: result.bytesTotal, bytesUploaded: result.bytesUploaded } });
    call.end();
    return result;
  } catch (err) {
    await Promise.all([...writers.values()].map((w) => w.writer.abort().catch(() => {})));
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
): Promise<HandleSyncResult> {
  const requests = call[Symbol.asyncIterator]() as AsyncIterator<SyncRequest>;
  const next = async (phase: string): Promise<SyncRequest> => {
    const r = await requests.next();
    if (r.done) throw new ContextError(`context sync: the client ended the stream during ${phase}; retry the upload`);
    return r.value;
  };

  // Phase 1: entries, validated as they arrive so limits trip before everything is buffered.
  const entries: ContextEntry[] = [];
  const seen = new Set<string>();
  let bytesTotal = 0;
  let files = 0;
  for (;;) {
    const req = await next('the entry list');
    if (req.entriesDone) break;
    if (!req.entries) throw new ContextError('context sync: expected entries before entries_done');
    for (const raw of req.entries.entries) {
      const e: ContextEntry = { path: raw.path, mode: raw.mode, size: raw.size, digest: raw.digest, linkTarget: raw.linkTarget, modTime: raw.modTime };
      validateEntry(e);
      if (seen.has(e.path)) throw new ContextError(`context entry ${JSON.stringify(e.path)} is listed twice`);
      seen.add(e.path);
      entries.push(e);
      if (entries.length > store.maxFiles) {
        throw new ContextError(`build context has more than ${store.maxFiles} entries; add unneeded files to .dockerignore`, 'too-large');
      }
      if (isRegular(e)) {
        files++;
        bytesTotal += e.size;
        if (bytesTotal > store.maxContextBytes) {
          throw new ContextError(`build context is larger than the limit of ${store.maxContextBytes} bytes (at ${JSON.stringify(e.path)}); add large files to .dockerignore`, 'too-large');
        }
      }
    }
  }
  const sorted = sortEntries(entries);
  validateEntrySet(sorted);

  // Phase 2: which contents are missing.
  const sizeOf = new Map<string, number>();
  for (const e of sorted) {
    if (!isRegular(e)) continue;
    const prev = sizeOf.get(e.digest);
    if (prev !== undefined && prev !== e.size) {
      throw new ContextError(`context entry ${JSON.stringify(e.path)} has digest ${e.digest} with size ${e.size}, but another entry has the same digest with size ${prev}`);
    }
    sizeOf.set(e.digest, e.size);
  }
  const pending = new Set<string>();
  const digests = [...sizeOf.keys()];
  for (let i = 0; i < digests.length; i += 64) {
    const slice = digests.slice(i, i + 64);
    // Only this tenant's own uploads count: naming a digest is no proof of holding its content.
    const present = await Promise.all(slice.map((d) => store.tenantHasContent(opts.tenant, d)));
    slice.forEach((d, j) => { if (!present[j]) pending.add(d); });
  }
  const uploaded = [...pending];
  for (let i = 0; i < uploaded.length; i += MISSING_BATCH) {
    await writeResponse(call, { missing: { digests: uploaded.slice(i, i + MISSING_BATCH) } });
  }
  await writeResponse(call, { missingDone: true });

  // Phase 3: contents. A writer per digest verifies sha256 and size and commits atomically.
  // Commits (fsync + rename) run in the background, a bounded number at a time, so many small
  // files do not serialise on fsync latency.
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
  for (;;) {
    const req = await next('the upload');
    if (req.uploadDone) break;
    const chunk = req.chunk;
    if (!chunk) throw new ContextError('context sync: expected content chunks before upload_done');
    if (!pending.has(chunk.digest)) {
      throw new ContextError(`context sync: received content for ${chunk.digest || '(empty digest)'}, which was not requested or is already complete`);
    }
    const size = sizeOf.get(chunk.digest)!;
    bytesUploaded += chunk.data.length;
    let w = writers.get(chunk.digest);
    const received = (w?.received ?? 0) + chunk.data.length;
    if (received > size) {
      throw new ContextError(`context sync: content for ${chunk.digest} is longer than its declared ${size} bytes; the file changed during the upload — retry the build`);
    }
    if (!w && chunk.last) {
      // The whole file in one chunk: the common case for small files. Verified here, because
      // put() skips data whose digest the store already holds, and an upload is the tenant's
      // proof of possession: wrong bytes under another tenant's digest must not pass.
      if (received !== size || sha256Digest(chunk.data) !== chunk.digest) throw new DigestMismatchError(chunk.digest, sha256Digest(chunk.data));
      pending.delete(chunk.digest);
      await background(store.content.put(chunk.data, chunk.digest, size));
      continue;
    }
    if (!w) {
      w = { writer: await store.content.writer({ expectedDigest: chunk.digest, expectedSize: size }), received: 0, size };
      writers.set(chunk.digest, w);
    }
    w.received = received;
    // Awaiting the file write pauses reading from the call: backpressure reaches the client.
    if (chunk.data.length > 0) await w.writer.write(chunk.data);
    if (chunk.last) {
      writers.delete(chunk.digest);
      pending.delete(chunk.digest);
      await background(w.writer.commit());
    }
  }
  await Promise.all(inflight);
  if (failure) throw failure;
  if (pending.size > 0) {
    throw new ContextError(`context sync: upload_done arrived but ${pending.size} requested contents were not sent (first: ${[...pending][0]}); retry the upload`);
  }

  await store.grantContent(opts.tenant, uploaded);
  const contextId = await store.putManifest(sorted, opts.tenant);
  return { contextId, files, bytesTotal, bytesUploaded, uploaded };
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

