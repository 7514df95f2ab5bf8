import { createReadStream } from 'node:fs';
import { S_IFDIR, S_IFLNK, S_IFREG, entryXattrs, sortEntries, validateEntry, validateEntrySet, type ContextEntry, type ContextStore } from '@buildyard/context';
import { buildkit, fsutil } from '@buildyard/proto';
import { SessionIdleError } from './grpcOverHttp2.js';
import type { ClientSession } from './SessionManager.js';

const { Packet, Packet_PacketType: T } = fsutil;
type Packet = fsutil.Packet;

const DIFF_COPY = '/moby.filesync.v1.FileSync/DiffCopy';
const packetCodec = { encode: (p: Packet) => Packet.encode(p).finish(), decode: (b: Uint8Array) => Packet.decode(b) };

// Go's os.FileMode bits, which fsutil puts on the wire (not st_mode).
const GO_DIR = 2 ** 31;
const GO_SYMLINK = 2 ** 27;
// `>>> 0` throughout: JS bitwise results are signed 32-bit, and the directory bit is bit 31.
const GO_TYPE = (GO_DIR | 2 ** 27 | 2 ** 26 | 2 ** 25 | 2 ** 24 | 2 ** 21 | 2 ** 19) >>> 0;
const GO_SETUID = 2 ** 23;
const GO_SETGID = 2 ** 22;
const GO_STICKY = 2 ** 20;

/** st_mode from a Go os.FileMode; undefined for what a build context cannot hold (devices, pipes, sockets). */
export function unixMode(goMode: number): number | undefined {
  const perm = (goMode & 0o777) | (goMode & GO_SETUID ? 0o4000 : 0) | (goMode & GO_SETGID ? 0o2000 : 0) | (goMode & GO_STICKY ? 0o1000 : 0);
  const type = (goMode & GO_TYPE) >>> 0;
  if (type === 0) return S_IFREG | perm;
  if (type === GO_DIR) return S_IFDIR | perm;
  if (type === GO_SYMLINK) return S_IFLNK | perm;
  return undefined;
}

export interface LocalOptions {
  includePatterns?: string[];
  excludePatterns?: string[];
  followPaths?: string[];
}

/** What the receiver does with one regular file: skip it (already known) or take its bytes. */
export interface FileSink {
  write(chunk: Buffer): Promise<void>;
  /** All bytes received. */
  end(): Promise<void>;
  /** The transfer failed before the file was complete: drop what was received. */
  abort?(): Promise<void>;
}

export interface ReceiveHandlers {
  /** Called for each entry in walk order; return a sink to request a regular file's content. */
  entry(stat: fsutil.Packet['stat'] & object, mode: number | undefined): Promise<FileSink | undefined>;
}

export class LocalSyncError extends Error {}

/**
 * Reads the client's local directory `name` with fsutil's DiffCopy protocol, as the receiver:
 * the client streams a STAT per entry (walk order, the n-th STAT is file id n, an empty STAT
 * ends the list); we REQ the files we want, the client streams their DATA (an empty DATA ends
 * a file); when every requested file is complete we send FIN and the client answers FIN.
 */
export async function receiveLocal(session: ClientSession, name: string, opts: LocalOptions, handlers: ReceiveHandlers, signal: AbortSignal): Promise<void> {
  if (!session.supports(DIFF_COPY)) throw new LocalSyncError(`the client does not serve local directories (no ${DIFF_COPY} in its session): use buildctl --local or docker buildx`);
  const metadata: Record<string, string | string[]> = { 'dir-name': name };
  if (opts.includePatterns?.length) metadata['include-patterns'] = opts.includePatterns;
  if (opts.excludePatterns?.length) metadata['exclude-patterns'] = opts.excludePatterns;
  if (opts.followPaths?.length) metadata.followpaths = opts.followPaths;
  // A client that opens the transfer and goes silent is cut off (limits.sessionIdleTimeoutMs).
  const call = session.call(DIFF_COPY, metadata, packetCodec, `sending the build context "${name.slice(0, 200)}"`);
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  const sinks = new Map<number, FileSink>();
  let nextId = 0;
  let statsDone = false;
  let finSent = false;
  const finishIfDone = async () => {
    if (statsDone && sinks.size === 0 && !finSent) {
      finSent = true;
      await call.send(Packet.fromPartial({ type: T.PACKET_FIN }));
    }
  };
  try {
    for await (const p of call.messages()) {
      switch (p.type) {
        case T.PACKET_STAT: {
          if (!p.stat) { statsDone = true; await finishIfDone(); break; }
          const id = nextId++;
          const sink = await handlers.entry(p.stat, unixMode(p.stat.mode));
          if (sink) {
            sinks.set(id, sink);
            await call.send(Packet.fromPartial({ type: T.PACKET_REQ, ID: id }));
          }
          break;
        }
        case T.PACKET_DATA: {
          const sink = sinks.get(p.ID);
          if (!sink) throw new LocalSyncError(`local "${name}": the client sent data for file ${p.ID}, which was not requested`);
          if (p.data.length > 0) { await sink.write(p.data); break; }
          sinks.delete(p.ID);
          await sink.end();
          await finishIfDone();
          break;
        }
        case T.PACKET_FIN:
          call.end();
          break;
        case T.PACKET_ERR:
          throw new LocalSyncError(`local "${name}": the client failed to send it: ${Buffer.from(p.data).toString('utf8').slice(0, 300)}`);
        default:
          break;
      }
    }
    if (!finSent || sinks.size > 0) throw new LocalSyncError(`local "${name}": the client ended the transfer early`);
  } catch (err) {
    call.cancel();
    // Files cut off half-way (the client went silent, or ended early) leave nothing behind.
    await Promise.all([...sinks.values()].map((sink) => sink.abort?.().catch(() => {})));
    if (signal.aborted) throw new LocalSyncError(`local "${name}": the transfer was cancelled`);
    if (err instanceof SessionIdleError) throw new LocalSyncError(err.message);
    throw err instanceof LocalSyncError ? err : new LocalSyncError(`local "${name}": ${(err as Error).message}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** Reads a few small files of a local into memory (the Dockerfile and its .dockerignore). */
export async function readLocalFiles(session: ClientSession, name: string, paths: string[], maxBytes: number, signal: AbortSignal): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  let total = 0;
  await receiveLocal(session, name, { includePatterns: paths }, {
    entry: async (stat, mode) => {
      if (mode === undefined || (mode & 0o170000) !== S_IFREG || !paths.includes(stat.path)) return undefined;
      const chunks: Buffer[] = [];
      return {
        write: async (chunk) => {
          total += chunk.length;
          if (total > maxBytes) throw new LocalSyncError(`local "${name}": ${stat.path} is larger than ${maxBytes} bytes`);
          chunks.push(Buffer.from(chunk));
        },
        end: async () => { files.set(stat.path, Buffer.concat(chunks)); },
      };
    },
  }, signal);
  return files;
}

/** What the previous sync of the same local held: a file whose stat is unchanged is not sent again. */
export type PreviousSync = Map<string, { size: number; modTime: string; mode: number; digest: string }>;

export interface StoredLocal {
  contextId: string;
  entries: ContextEntry[];
  /** Bytes of file content actually received (unchanged files are not). */
  bytesReceived: number;
  /** This sync's stats, for the next one. */
  stats: PreviousSync;
}

/**
 * Receives a local into the tenant's content-addressed context store: every file's content is
 * stored once by digest, then the manifest; the manifest digest is the context id the planner
 * and the workers use, exactly as for a `buildyard build` upload.
 */
export async function receiveLocalToStore(
  session: ClientSession, name: string, opts: LocalOptions, store: ContextStore, tenant: string, previous: PreviousSync | undefined, signal: AbortSignal,
): Promise<StoredLocal> {
  const entries = new Map<string, ContextEntry>();
  const stats: PreviousSync = new Map();
  const pendingHardlinks: Array<{ path: string; target: string }> = [];
  const received: string[] = [];
  let bytesReceived = 0;
  let bytesTotal = 0;
  await receiveLocal(session, name, opts, {
    entry: async (stat, mode) => {
      if (mode === undefined) return undefined; // devices, pipes, sockets: BuildKit's COPY skips them too
      const path = stat.path;
      const isReg = (mode & 0o170000) === S_IFREG;
      // fsutil's Stat.Xattrs: those a context keeps go with the entry, and COPY writes them.
      const xattrPairs = Object.entries(stat.xattrs);
      const xattrs = xattrPairs.length > 0 ? entryXattrs(JSON.stringify(path.slice(0, 200)), xattrPairs) : undefined;
      // Every entry, a hard link's too, is a clean path inside the context and counts to the limit:
      // a hard link named ../../x once went into the manifest unchecked.
      if (entries.size >= store.maxFiles) throw new LocalSyncError(`local "${name}" has more than ${store.maxFiles} entries: add unneeded files to .dockerignore`);
      if (isReg && stat.linkname) {
        validateEntry({ path, mode, size: stat.size, digest: `sha256:${'0'.repeat(64)}`, linkTarget: '', modTime: stat.modTime });
        // A hard link: another name of the file its target names, which the walk sent earlier.
        pendingHardlinks.push({ path, target: stat.linkname });
        entries.set(path, { path, mode, size: stat.size, digest: '', linkTarget: '', modTime: stat.modTime, hardlinkTo: stat.linkname, ...(xattrs ? { xattrs } : {}) });
        return undefined;
      }
      // modTime: fsutil's Stat.ModTime (ns), kept so COPY gives the client's mtime as BuildKit does.
      const entry: ContextEntry = { path, mode, size: isReg ? stat.size : 0, digest: '', linkTarget: (mode & 0o170000) === S_IFLNK ? stat.linkname : '', modTime: stat.modTime };
      validateEntry({ ...entry, digest: isReg ? `sha256:${'0'.repeat(64)}` : '' });
      if (xattrs) entry.xattrs = xattrs;
      entries.set(path, entry);
      // Attribute values count towards the size limit too: the manifest holds them.
      bytesTotal += (isReg ? stat.size : 0) + xattrPairs.reduce((n, [, value]) => n + value.length, 0);
      if (bytesTotal > store.maxContextBytes) throw new LocalSyncError(`local "${name}" is larger than ${store.maxContextBytes} bytes (at ${JSON.stringify(path.slice(0, 200))}): add large files to .dockerignore`);
      if (!isReg) return undefined;
      const before = previous?.get(path);
      if (before && before.size === stat.size && before.modTime === stat.modTime && before.mode === mode && (await store.tenantHasContent(tenant, before.digest))) {
        entry.digest = before.digest;
        stats.set(path, before);
        return undefined;
      }
      // The size the client declared (and the context limit counted) bounds what it may send: a
      // file sent on past it is cut off at the first byte over, not once the disk is full.
      const writer = await store.content.writer({ expectedSize: stat.size });
      const changed = () => new LocalSyncError(`local "${name}": ${JSON.stringify(path.slice(0, 200))} changed while it was sent; run the build again`);
      return {
        abort: () => writer.abort(),
        write: async (chunk) => {
          bytesReceived += chunk.length;
          try {
            await writer.write(chunk);
          } catch {
            await writer.abort();
            throw changed();
          }
        },
        end: async () => {
          const info = await writer.commit().catch(async () => { await writer.abort(); throw changed(); });
          if (info.size !== stat.size) throw changed();
          entry.digest = info.digest;
          received.push(info.digest);
          stats.set(path, { size: stat.size, modTime: stat.modTime, mode, digest: info.digest });
        },
      };
    },
  }, signal);
  for (const link of pendingHardlinks) {
    const target = entries.get(link.target);
    const entry = entries.get(link.path)!;
    if (!target?.digest) throw new LocalSyncError(`local "${name}": hard link ${JSON.stringify(link.path.slice(0, 200))} points to ${JSON.stringify(link.target.slice(0, 200))}, which was not sent`);
    // Stored as a link, as fsutil's receiver links it: one inode, so its target's metadata (a
    // link to a link names the first name; validateEntrySet refuses the rest).
    entries.set(link.path, { ...target, path: entry.path, hardlinkTo: target.hardlinkTo ?? target.path });
  }
  const sorted = sortEntries([...entries.values()]);
  try {
    validateEntrySet(sorted);
  } catch (err) {
    throw new LocalSyncError(`local "${name}": ${(err as Error).message}`);
  }
  await store.grantContent(tenant, received);
  const contextId = await store.putManifest(sorted, tenant);
  return { contextId, entries: sorted, bytesReceived, stats };
}

const FILE_SEND = '/moby.filesync.v1.FileSend/DiffCopy';
/** What the client does in a FileSend call, for its idle deadline: a client that stops reading holds the export's files. */
const OUTPUT_IDLE = 'receiving the build\'s output';
const SEND_CHUNK = 1024 * 1024;
const bytesCodec = { encode: (m: buildkit.BytesMessage) => buildkit.BytesMessage.encode(m).finish(), decode: (b: Uint8Array) => buildkit.BytesMessage.decode(b) };

/**
 * Streams one exported file (a tar, OCI or docker archive) to the client, as BuildKit's
 * CopyFileWriter does: FileSend.DiffCopy carrying the bytes in BytesMessages; the client writes
 * them to its --output dest and ends the call once it has them all.
 */
export async function sendFileToClient(session: ClientSession, content: AsyncIterable<Uint8Array>, signal: AbortSignal): Promise<void> {
  if (!session.supports(FILE_SEND)) throw new LocalSyncError('the client does not receive outputs in its session (no FileSend): use buildctl --output or docker buildx -o');
  const call = session.call(FILE_SEND, {}, bytesCodec, OUTPUT_IDLE);
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    for await (const chunk of content) {
      for (let i = 0; i < chunk.length; i += SEND_CHUNK) await call.send(buildkit.BytesMessage.fromPartial({ data: Buffer.from(chunk.subarray(i, i + SEND_CHUNK)) }));
    }
    call.end();
    for await (const _ of call.messages()) { /* the client sends nothing back; the call ends when it has written all */ }
  } catch (err) {
    call.cancel();
    throw new LocalSyncError(err instanceof SessionIdleError ? err.message : `sending the output to the client: ${(err as Error).message}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}

/** One entry of a directory sent to the client: st_mode, and for a regular file where its bytes are. */
export interface OutgoingEntry {
  path: string;
  mode: number;
  linkTarget?: string;
  size: number;
  /** A file on this machine holding a regular file's content. */
  source?: string;
  /** Stat.ModTime (nanoseconds, as a string): the client sets it; the send's time when absent. */
  modTime?: string;
  /** Another name of the regular file entry at this path (content-less). */
  hardlinkTo?: string;
}

/**
 * fsutil's receiver links a hardlink (a regular file's Stat with a linkname) to a name it has
 * already received, so as fsutil's sender the first name of a file in walk order carries the
 * content and its other names name that one, whichever name the exporter met first.
 */
function hardlinksToFirstName(sorted: OutgoingEntry[]): OutgoingEntry[] {
  const byPath = new Map(sorted.map((e) => [e.path, e]));
  const firstName = new Map<string, string>();
  return sorted.map((e) => {
    if (e.hardlinkTo === undefined && !e.source) return e; // not a regular file
    const file = e.hardlinkTo === undefined ? e : byPath.get(e.hardlinkTo);
    if (!file?.source || file.hardlinkTo !== undefined) throw new LocalSyncError(`the output's "${e.path}" is a hardlink to "${e.hardlinkTo}", which is not one of its regular files`);
    const first = firstName.get(file.path);
    if (first !== undefined) return { path: e.path, mode: e.mode, size: 0, linkTarget: first, modTime: e.modTime };
    firstName.set(file.path, e.path);
    return e === file ? e : { ...file, path: e.path, mode: e.mode, modTime: e.modTime };
  });
}

/** st_mode as Go's os.FileMode, which fsutil expects on the wire. */
export function goMode(mode: number): number {
  const perm = mode & 0o777;
  const extra = (mode & 0o4000 ? GO_SETUID : 0) + (mode & 0o2000 ? GO_SETGID : 0) + (mode & 0o1000 ? GO_STICKY : 0);
  const type = mode & 0o170000;
  return perm + extra + (type === S_IFDIR ? GO_DIR : type === S_IFLNK ? GO_SYMLINK : 0);
}

/**
 * Sends a directory to the client's --output dest (type=local), as BuildKit's fsutil sender
 * does over FileSend.DiffCopy: a STAT per entry in walk order (the n-th is file id n), an empty
 * STAT, then the DATA of every file the client REQuests, until it sends FIN.
 */
export async function sendDirToClient(session: ClientSession, entries: OutgoingEntry[], signal: AbortSignal): Promise<void> {
  if (!session.supports(FILE_SEND)) throw new LocalSyncError('the client does not receive outputs in its session (no FileSend): use buildctl --output or docker buildx -o');
  const sorted = hardlinksToFirstName(sortEntries([...entries]));
  const call = session.call(FILE_SEND, {}, packetCodec, OUTPUT_IDLE);
  const onAbort = () => call.cancel();
  signal.addEventListener('abort', onAbort, { once: true });
  const now = (BigInt(Date.now()) * 1_000_000n).toString();
  try {
    const sending = (async () => {
      for (const e of sorted) {
        const isReg = (e.mode & 0o170000) === S_IFREG;
        await call.send(Packet.fromPartial({ type: T.PACKET_STAT, stat: { path: e.path, mode: goMode(e.mode), size: isReg ? e.size : 0, modTime: e.modTime ?? now, linkname: e.linkTarget ?? '' } }));
      }
      await call.send(Packet.fromPartial({ type: T.PACKET_STAT }));
    })();
    let finished = false;
    for await (const p of call.messages()) {
      if (p.type === T.PACKET_REQ) {
        const e = sorted[p.ID];
        if (!e?.source) throw new LocalSyncError(`the client asked for file ${p.ID}, which is not a regular file of the output`);
        await sending;
        for await (const chunk of createReadStream(e.source, { highWaterMark: SEND_CHUNK })) await call.send(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID, data: chunk as Buffer }));
        await call.send(Packet.fromPartial({ type: T.PACKET_DATA, ID: p.ID }));
      } else if (p.type === T.PACKET_FIN) {
        await sending;
        await call.send(Packet.fromPartial({ type: T.PACKET_FIN }));
        call.end();
        finished = true;
      } else if (p.type === T.PACKET_ERR) {
        throw new LocalSyncError(`the client could not write the output: ${Buffer.from(p.data).toString('utf8').slice(0, 300)}`);
      }
    }
    await sending;
    if (!finished) throw new LocalSyncError('the client ended the output transfer early');
  } catch (err) {
    call.cancel();
    throw err instanceof LocalSyncError ? err : new LocalSyncError(err instanceof SessionIdleError ? err.message : `sending the output to the client: ${(err as Error).message}`);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
