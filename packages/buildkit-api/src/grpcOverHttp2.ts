import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import { clientIdleMessage } from '@buildyard/context';

/** A gRPC call on a session ended with a non-OK status (or without one). */
export class GrpcCallError extends Error {
  constructor(readonly code: number, message: string) {
    super(message);
  }
}

/** The client went silent past a call's idle deadline (DEADLINE_EXCEEDED); the call was cancelled. */
export class SessionIdleError extends GrpcCallError {
  constructor(message: string) {
    super(4, message);
  }
}

/**
 * The idle deadline of a call (limits.sessionIdleTimeoutMs): while this side waits on the client
 * (for its next message, or for it to take what was sent), it must make progress within `ms`.
 */
export interface IdleDeadline {
  ms: number;
  /** What the client is doing, for the error: `sending the build context "context"`. */
  what: string;
}

export interface Codec<Req, Res> {
  encode(message: Req): Uint8Array;
  decode(bytes: Uint8Array): Res;
}

/** Messages buffered before the HTTP/2 stream is paused (flow control back to the sender). */
const HIGH_WATER = 64;
/** Bytes of decoded messages buffered before the stream is paused: 64 messages may each be 16 MiB. */
const HIGH_WATER_BYTES = 1024 * 1024;
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
  private readonly queue: Array<{ message: Res; bytes: number }> = [];
  private queuedBytes = 0;
  private readonly received = new ReceiveBuffer();
  private waiter?: () => void;
  private ended = false;
  private failure?: Error;
  private grpcStatus?: { code: number; message: string };
  /** Runs while this side waits on the client with an idle deadline; any byte from it, or any send it takes, starts it again. */
  private idleTimer?: NodeJS.Timeout;
  private waitingForMessage = false;
  private sendsPending = 0;

  constructor(session: ClientHttp2Session, path: string, metadata: Record<string, string | string[]>, private readonly codec: Codec<Req, Res>, private readonly idle?: IdleDeadline) {
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
      this.stopIdle();
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
    this.clientProgressed();
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
        this.queue.push({ message: this.codec.decode(this.received.take(5 + size).subarray(5)), bytes: size });
        this.queuedBytes += size;
      } catch (err) {
        this.failure ??= new GrpcCallError(13, `undecodable message from the client: ${(err as Error).message}`);
        this.stream.close(constants.NGHTTP2_CANCEL);
        return;
      }
    }
    if (this.queue.length >= HIGH_WATER || this.queuedBytes >= HIGH_WATER_BYTES) this.stream.pause();
    this.wake();
  }

  /** Starts the idle deadline when this side now waits on the client and it is not running yet. */
  private armIdle(): void {
    if (!this.idle || this.idleTimer || this.ended || this.failure) return;
    if (!this.waitingForMessage && this.sendsPending === 0) return;
    this.idleTimer = setTimeout(() => this.onIdle(), this.idle.ms);
    this.idleTimer.unref();
  }

  private stopIdle(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
  }

  /** The client sent a byte or took one: the deadline starts again if this side still waits on it. */
  private clientProgressed(): void {
    if (!this.idleTimer) return;
    this.stopIdle();
    this.armIdle();
  }

  /** The client was silent for the whole deadline: the call fails and is cancelled, and what it buffered goes. */
  private onIdle(): void {
    this.idleTimer = undefined;
    const { ms, what } = this.idle!;
    this.failure ??= new SessionIdleError(clientIdleMessage(ms, what, this.waitingForMessage));
    this.queue.length = 0;
    this.queuedBytes = 0;
    this.received.clear();
    this.cancel();
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
      if (this.failure instanceof SessionIdleError || this.stream.destroyed || this.stream.writableEnded) { reject(this.failure ?? new GrpcCallError(1, 'the session call is closed')); return; }
      this.sendsPending++;
      this.armIdle();
      this.stream.write(frame, (err) => {
        this.sendsPending--;
        this.clientProgressed();
        if (!err) resolve();
        else reject(this.failure instanceof SessionIdleError ? this.failure : err);
      });
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
      if (this.failure instanceof SessionIdleError) throw this.failure;
      const next = this.queue.shift();
      if (next !== undefined) {
        this.queuedBytes -= next.bytes;
        if (this.queue.length < HIGH_WATER / 2 && this.queuedBytes < HIGH_WATER_BYTES / 2 && this.stream.isPaused()) this.stream.resume();
        yield next.message;
        continue;
      }
      if (this.ended) break;
      this.waitingForMessage = true;
      this.armIdle();
      await new Promise<void>((resolve) => { this.waiter = resolve; });
      this.waitingForMessage = false;
      // Still waiting on a send, the deadline runs on; else it starts again at the next wait.
      if (this.sendsPending === 0) this.stopIdle();
    }
    if (this.failure instanceof SessionIdleError) throw this.failure;
    if (this.grpcStatus && this.grpcStatus.code !== 0) throw new GrpcCallError(this.grpcStatus.code, this.grpcStatus.message);
    if (!this.grpcStatus && this.failure) throw this.failure;
  }
}
