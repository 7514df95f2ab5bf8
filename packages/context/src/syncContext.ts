import { open, readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Metadata, ClientDuplexStream } from '@grpc/grpc-js';
import { ContextEntry as ProtoContextEntry, type ContextSyncClient, type SyncRequest, type SyncResponse } from '@buildyard/proto';
import { ContextError } from './ContextError.js';
import { isRegular, type ContextEntry } from './ContextEntry.js';
import { walkContext } from './walkContext.js';

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
const READ_AHEAD = 16;

/** Uploads the context in `dir`, sending only the contents the server does not have yet. */
export async function syncContext(client: ContextSyncClient, dir: string, opts: SyncOptions = {}): Promise<SyncResult> {
  const root = resolve(dir);
  const entries = await walkContext(root, { dockerignore: opts.dockerignore, cacheDir: opts.cacheDir });
  const pathOf = new Map<string, string>();
  let bytesTotal = 0;
  let files = 0;
  for (const e of entries) {
    if (!isRegular(e)) continue;
    files++;
    bytesTotal += e.size;
    if (!pathOf.has(e.digest)) pathOf.set(e.digest, `${root}/${e.path}`);
  }
  const sizeOf = new Map(entries.filter(isRegular).map((e) => [e.digest, e.size]));
  const progress: SyncProgress = { phase: 'walk', files, bytesTotal, bytesToUpload: 0, bytesUploaded: 0 };
  opts.onProgress?.({ ...progress });

  const call = opts.metadata ? client.sync(opts.metadata) : client.sync();
  const onAbort = () => call.cancel();
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  // Errors surface through the response iterator; this keeps an early one from going unhandled.
  call.on('error', () => {});
  const responses = call[Symbol.asyncIterator]() as AsyncIterator<SyncResponse>;
  try {
    progress.phase = 'negotiate';
    opts.onProgress?.({ ...progress });
    let batch: ProtoContextEntry[] = [];
    let batchBytes = 0;
    for (const entry of entries) {
      const e: ProtoContextEntry = { ...entry, modTime: entry.modTime ?? '0' };
      const size = ProtoContextEntry.encode(e).finish().length + 8;
      if (batch.length > 0 && batchBytes + size > MAX_BATCH_BYTES) {
        await send(call, { entries: { entries: batch } });
        batch = [];
        batchBytes = 0;
      }
      batch.push(e);
      batchBytes += size;
    }
    if (batch.length > 0) await send(call, { entries: { entries: batch } });
    await send(call, { entriesDone: true });

    const missing: string[] = [];
    for (;;) {
      const res = await nextResponse(responses, 'missing digests');
      if (res.missing) {
        for (const d of res.missing.digests) {
          if (!pathOf.has(d)) throw new ContextError(`context sync: server asked for ${d}, which is not in the context; the server is misbehaving`, 'internal');
          missing.push(d);
        }
      } else if (res.missingDone) break;
      else throw new ContextError('context sync: unexpected message from the server before missing_done', 'internal');
    }
    progress.phase = 'upload';
    progress.bytesToUpload = missing.reduce((n, d) => n + (sizeOf.get(d) ?? 0), 0);
    opts.onProgress?.({ ...progress });

    const onBytes = (n: number) => {
      progress.bytesUploaded += n;
      opts.onProgress?.({ ...progress });
    };
    // Small files are read ahead a few at a time so many tiny files do not serialise on open/read.
    const readAhead = new Map<string, Promise<Buffer>>();
    const small = missing.filter((d) => (sizeOf.get(d) ?? 0) <= CHUNK_SIZE);
    let ahead = 0;
    for (const digest of missing) {
      while (ahead < small.length && readAhead.size < READ_AHEAD) {
        const d = small[ahead++];
        const p = readFile(pathOf.get(d)!);
        p.catch(() => {});
        readAhead.set(d, p);
      }
      const pre = readAhead.get(digest);
      if (pre) {
        readAhead.delete(digest);
        const data = await pre;
        if (data.length > CHUNK_SIZE) await uploadFile(call, digest, pathOf.get(digest)!, onBytes);
        else {
          await send(call, { chunk: { digest, data, last: true } });
          onBytes(data.length);
        }
      } else {
        await uploadFile(call, digest, pathOf.get(digest)!, onBytes);
      }
    }
    await send(call, { uploadDone: true });
    call.end();
    const res = await nextResponse(responses, 'completion');
    if (!res.complete) throw new ContextError('context sync: server answered without a completion', 'internal');
    progress.phase = 'complete';
    opts.onProgress?.({ ...progress });
    return { contextId: res.complete.contextId, files: res.complete.files, bytesTotal: res.complete.bytesTotal, bytesUploaded: res.complete.bytesUploaded };
  } catch (err) {
    call.cancel();
    throw err;
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
  }
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

