// The client's content stores over the session (BuildKit's session/content): buildctl and buildx
// serve containerd's content service for `--export-cache type=local,dest=DIR` and
// `--import-cache type=local,src=DIR`, one store per directory, chosen by a header.
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { contentStore } from '@buildyard/proto';
import { GrpcCallError, SessionIdleError } from './grpcOverHttp2.js';
import type { ClientSession } from './SessionManager.js';
import { unaryCall } from './unaryCall.js';

/** Largest document read whole into memory: the distribution spec's manifests are up to 4 MiB. */
const MAX_DOCUMENT_BYTES = 8 * 1024 * 1024;

const SERVICE = '/containerd.services.content.v1.Content';
/** BuildKit's session/content GRPCHeaderID. */
const STORE_HEADER = 'buildkit-attachable-store-id';
const ALREADY_EXISTS = 6;
const NOT_FOUND = 5;
/** Bytes per Write message: well under gRPC's default 4 MiB message limit. */
const CHUNK = 1 << 20;

const codecOf = <Req, Res>(req: { encode(m: Req): { finish(): Uint8Array } }, res: { decode(b: Uint8Array): Res }) =>
  ({ encode: (m: Req) => req.encode(m).finish(), decode: (b: Uint8Array) => res.decode(b) });

/** One of the client's content stores: `local:DIR`, as the client's cache options name it. */
export class SessionContentStore {
  constructor(private readonly session: ClientSession, readonly id: string, private readonly signal: AbortSignal) {}

  /** Whether the client serves the content service at all (buildctl and buildx do when a local cache is asked). */
  static served(session: ClientSession): boolean {
    return session.supports(`${SERVICE}/Write`) && session.supports(`${SERVICE}/Read`);
  }

  /** `idle`: what the client does in the call, for its idle deadline (limits.sessionIdleTimeoutMs). */
  private call<Req, Res>(method: string, codec: { encode(m: Req): Uint8Array; decode(b: Uint8Array): Res }, idle: string) {
    const call = this.session.call(`${SERVICE}/${method}`, { [STORE_HEADER]: this.id }, codec, idle);
    const onAbort = () => call.cancel();
    this.signal.addEventListener('abort', onAbort, { once: true });
    return { call, done: () => this.signal.removeEventListener('abort', onAbort) };
  }

  /** The blob's size, or undefined when the store lacks it. */
  async size(digest: string): Promise<number | undefined> {
    try {
      const answer = await unaryCall(this.session, `${SERVICE}/Info`, { [STORE_HEADER]: this.id }, codecOf(contentStore.InfoRequest, contentStore.InfoResponse), contentStore.InfoRequest.fromPartial({ digest }), this.signal);
      return answer?.info?.size;
    } catch (err) {
      if (err instanceof GrpcCallError && err.code === NOT_FOUND) return undefined;
      throw new Error(`reading ${this.id} on the client: ${(err as Error).message}`);
    }
  }

  /** The blob's bytes as the client streams them. */
  open(digest: string): Readable {
    const { call, done } = this.call('Read', codecOf(contentStore.ReadContentRequest, contentStore.ReadContentResponse), `sending ${digest.slice(0, 80)} from ${this.id.slice(0, 200)}`);
    const id = this.id;
    async function* chunks() {
      try {
        await call.send(contentStore.ReadContentRequest.fromPartial({ digest }));
        call.end();
        for await (const res of call.messages()) yield res.data;
      } catch (err) {
        if (err instanceof SessionIdleError) throw err;
        throw Object.assign(new Error(`reading ${digest.slice(0, 80)} from ${id} on the client: ${(err as Error).message}`), { code: err instanceof GrpcCallError && err.code === NOT_FOUND ? 'ENOENT' : undefined });
      } finally { done(); }
    }
    return Readable.from(chunks(), { objectMode: false });
  }

  /**
   * A document's bytes (an index, a manifest, a config): at most `maxBytes`, since the client
   * chooses how much it sends, and refused unless they hash to `digest` when it is one.
   */
  async read(digest: string, maxBytes = MAX_DOCUMENT_BYTES): Promise<Buffer> {
    const parts: Buffer[] = [];
    let bytes = 0;
    const stream = this.open(digest);
    for await (const chunk of stream) {
      bytes += (chunk as Buffer).length;
      if (bytes > maxBytes) {
        stream.destroy();
        throw new Error(`reading ${digest.slice(0, 80)} from ${this.id} on the client: more than ${maxBytes} bytes, more than a document of an OCI layout holds`);
      }
      parts.push(chunk as Buffer);
    }
    const body = Buffer.concat(parts);
    if (digest.startsWith('sha256:') && `sha256:${createHash('sha256').update(body).digest('hex')}` !== digest) {
      throw new Error(`reading ${digest.slice(0, 80)} from ${this.id} on the client: the bytes sent do not match that digest`);
    }
    return body;
  }

  /** True when the client's blob has exactly that content (read and hashed: a store's say-so is not proof). */
  async holds(digest: string): Promise<boolean> {
    const hash = createHash('sha256');
    try { for await (const chunk of this.open(digest)) hash.update(chunk as Buffer); } catch { return false; }
    return `sha256:${hash.digest('hex')}` === digest;
  }

  /**
   * Writes a blob as containerd's proxy writer does: STAT (the client may hold part of it), WRITE
   * from there, COMMIT with the expected digest (the client's store verifies it). A blob the
   * store already has is done (ALREADY_EXISTS, as contentutil.Copy takes it).
   */
  async write(digest: string, size: number, content: () => Readable): Promise<void> {
    const { call, done } = this.call('Write', codecOf(contentStore.WriteContentRequest, contentStore.WriteContentResponse), `receiving ${digest.slice(0, 80)} into ${this.id.slice(0, 200)}`);
    const replies = call.messages();
    const reply = async () => {
      const r = await replies.next();
      if (r.done) throw new GrpcCallError(2, 'the client ended the write without a reply');
      return r.value;
    };
    const ref = `buildyard-cache-${digest}`;
    try {
      await call.send(contentStore.WriteContentRequest.fromPartial({ action: contentStore.WriteAction.STAT, ref, total: size, expected: digest }));
      let offset = (await reply()).offset;
      if (offset > size) offset = 0;
      let at = 0;
      for await (const chunk of content()) {
        let buf = chunk as Buffer;
        if (at + buf.length <= offset) { at += buf.length; continue; }
        if (at < offset) { buf = buf.subarray(offset - at); at = offset; }
        for (let i = 0; i < buf.length; i += CHUNK) {
          const data = buf.subarray(i, i + CHUNK);
          await call.send(contentStore.WriteContentRequest.fromPartial({ action: contentStore.WriteAction.WRITE, ref, offset: at, data }));
          at += data.length;
          await reply();
        }
      }
      await call.send(contentStore.WriteContentRequest.fromPartial({ action: contentStore.WriteAction.COMMIT, ref, total: size, offset: at, expected: digest }));
      const committed = await reply();
      if (committed.digest && committed.digest !== digest) throw new Error(`the client committed ${committed.digest.slice(0, 80)}`);
      call.end();
      for await (const _ of replies) { /* drain to the call's status */ }
    } catch (err) {
      call.cancel();
      if (err instanceof GrpcCallError && err.code === ALREADY_EXISTS) return;
      if (err instanceof SessionIdleError) throw err;
      throw new Error(`writing ${digest.slice(0, 80)} to ${this.id} on the client: ${(err as Error).message}`);
    } finally { done(); }
  }
}

/** The client's content store `id` (buildctl's "export" for tar=false outputs, a cache's directory). */
export function clientContentStore(session: ClientSession, id: string, signal: AbortSignal): SessionContentStore {
  if (!SessionContentStore.served(session)) throw new Error(`the client serves no content store for ${id.slice(0, 200)}: use buildctl or docker buildx`);
  return new SessionContentStore(session, id, signal);
}
