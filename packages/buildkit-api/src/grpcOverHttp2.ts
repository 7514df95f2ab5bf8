import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';

/** A gRPC call on a session ended with a non-OK status (or without one). */
export class GrpcCallError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

export interface Codec<Req, Res> {
  encode(message: Req): Uint8Array;
  decode(bytes: Uint8Array): Res;
}

/** Messages buffered before the HTTP/2 stream is paused (flow control back to the sender). */
const HIGH_WATER = 64;
/** Largest message a client may send on a session call, as the server's own receive limit. */
export const MAX_SESSION_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * The bytes received on a call and not yet decoded, in one buffer that grows by doubling. A peer
 * may send a 16 MiB message as millions of 1-byte DATA frames: appending each to the previous
 * bytes (Buffer.concat) copied the whole message per frame, and a list of the frames (as `bl`
 * keeps) holds an object per byte; here every byte is copied about twice.
 */
export class ReceiveBuffer {
  private bytes = Buffer.alloc(0);
  private start = 0;
  private end = 0;

  get length(): number {
    return this.end - this.start;
  }

  push(chunk: Buffer): void {
    if (this.end + chunk.length > this.bytes.length) {
      const needed = this.length + chunk.length;
      // Room is made by moving the unread bytes to the front, or into a buffer twice as large.
      const into = needed <= this.bytes.length / 2 ? this.bytes : Buffer.allocUnsafe(Math.max(needed, 2 * this.bytes.length, 4096));
      this.bytes.copy(into, 0, this.start, this.end);
      this.bytes = into;
      this.end = this.length;
      this.start = 0;
    }
    chunk.copy(this.bytes, this.end);
    this.end += chunk.length;
  }

  byteAt(offset: number): number {
    return this.bytes[this.start + offset]!;
  }

  readUInt32BE(offset: number): number {
    return this.bytes.readUInt32BE(this.start + offset);
  }

  /** The next `n` bytes (a copy: the buffer is reused), no longer held. */
  take(n: number): Buffer {
    const out = Buffer.from(this.bytes.subarray(this.start, this.start + n));
    this.start += n;
    if (this.start === this.end) this.clear();
    return out;
  }

  clear(): void {
    this.start = this.end = 0;
    if (this.bytes.length > 64 * 1024) this.bytes = Buffer.alloc(0);
  }
}

/**
 * One bidirectional gRPC call spoken directly over an HTTP/2 client session: length-prefixed
 * messages on a POST stream, the status in the trailers. BuildKit's session is a connection the
 * client opened to us, on which we are the HTTP/2 client; grpc-js cannot run over such a
 * connection, and a session needs only this small part of gRPC.
 */
export class BidiCall<Req, Res> {
  private readonly stream: ClientHttp2Stream;
  private readonly queue: Res[] = [];
  private readonly received = new ReceiveBuffer();
  private waiter?: () => void;
  private ended = false;
  private failure?: Error;
  private grpcStatus?: { code: number; message: string };

  constructor(session: ClientHttp2Session, path: string, metadata: Record<string, string | string[]>, private readonly codec: Codec<Req, Res>) {
    this.stream = session.request({
      [constants.HTTP2_HEADER_METHOD]: 'POST', [constants.HTTP2_HEADER_PATH]: path,
      'content-type': 'application/grpc', te: 'trailers', ...metadata,
    }, { endStream: false });
    this.stream.on('response', (headers) => this.takeStatus(headers));
    this.stream.on('trailers', (headers) => this.takeStatus(headers));
    this.stream.on('data', (chunk: Buffer) => this.onData(chunk));
    this.stream.on('error', (err: Error) => { this.failure ??= err; });
    this.stream.on('close', () => {
      this.ended = true;
      if (!this.grpcStatus && !this.failure) this.failure = new GrpcCallError(constants.NGHTTP2_INTERNAL_ERROR, `${path}: the client closed the call without a status (HTTP/2 code ${this.stream.rstCode})`);
      this.wake();
    });
  }

  private takeStatus(headers: IncomingHttpHeaders): void {
    const code = headers['grpc-status'];
    if (code === undefined) return;
    const raw = headers['grpc-message'];
    // The client's text: malformed percent-encoding (`%`) must not throw out of this listener,
    // which would take the whole frontend down.
    let message = typeof raw === 'string' ? raw : '';
    try { message = decodeURIComponent(message); } catch { /* kept as sent */ }
    message = message.slice(0, 1000);
    this.grpcStatus = { code: Number(code), message };
  }

  private onData(chunk: Buffer): void {
    this.received.push(chunk);
    while (this.received.length >= 5) {
      const size = this.received.readUInt32BE(1);
      // Refused from its length prefix: buffering towards a 4 GiB message would hold memory and
      // a core for as long as the client sends.
      if (size > MAX_SESSION_MESSAGE_BYTES) {
        this.failure ??= new GrpcCallError(8, `a session message of ${size} bytes is larger than ${MAX_SESSION_MESSAGE_BYTES}`);
        this.received.clear();
        this.stream.close(constants.NGHTTP2_CANCEL);
        this.wake();
        return;
      }
      if (this.received.length < 5 + size) break;
      if (this.received.byteAt(0) !== 0) {
        this.failure ??= new GrpcCallError(12, 'compressed session messages are not supported');
        this.stream.close(constants.NGHTTP2_CANCEL);
        return;
      }
      try {
        this.queue.push(this.codec.decode(this.received.take(5 + size).subarray(5)));
      } catch (err) {
        this.failure ??= new GrpcCallError(13, `undecodable message from the client: ${(err as Error).message}`);
        this.stream.close(constants.NGHTTP2_CANCEL);
        return;
      }
    }
    if (this.queue.length >= HIGH_WATER) this.stream.pause();
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  /** Sends one message; resolves when the stream took it (back-pressure aware). */
  send(message: Req): Promise<void> {
    const body = this.codec.encode(message);
    const frame = Buffer.alloc(5 + body.length);
    frame.writeUInt32BE(body.length, 1);
    frame.set(body, 5);
    return new Promise((resolve, reject) => {
      if (this.stream.destroyed || this.stream.writableEnded) { reject(this.failure ?? new GrpcCallError(1, 'the session call is closed')); return; }
      this.stream.write(frame, (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Half-closes: no more messages from this side. */
  end(): void {
    if (!this.stream.writableEnded) this.stream.end();
  }

  cancel(): void {
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
  }

  /** The peer's messages in order; throws GrpcCallError if the call ends with an error. */
  async *messages(): AsyncGenerator<Res> {
    for (;;) {
      const next = this.queue.shift();
      if (next !== undefined) {
        if (this.queue.length < HIGH_WATER / 2 && this.stream.isPaused()) this.stream.resume();
        yield next;
        continue;
      }
      if (this.ended) break;
      await new Promise<void>((resolve) => { this.waiter = resolve; });
    }
    if (this.grpcStatus && this.grpcStatus.code !== 0) throw new GrpcCallError(this.grpcStatus.code, this.grpcStatus.message);
    if (!this.grpcStatus && this.failure) throw this.failure;
  }
}
