import type { RedisClient as Redis } from '@buildyard/contracts';
import type { RedisKeys } from '@buildyard/contracts';
import { encodeEvent, type LogStream, type ProgressEvent, type VertexRef } from './ProgressEvent.js';
import { END_FIELD, EVENT_FIELD, progressStreamKey } from './progressStream.js';
import { incompleteUtf8Tail, utf8SafeCut } from './utf8.js';

export interface ProgressWriterOptions {
  /** Log bytes kept per vertex (both streams together); later output is dropped. Default 1 MiB. */
  maxLogBytesPerVertex?: number;
  /** Approximate MAXLEN of the stream. Default 100 000 entries. */
  streamMaxLen?: number;
  /** Logs are flushed at least this often. Default 100 ms. */
  flushIntervalMs?: number;
  /** ...or when this many bytes are pending for one vertex stream. Default 16 KiB. */
  flushBytes?: number;
  /** TTL set on the stream by close(). Default 24 h. */
  ttlSeconds?: number;
  /** Clock, for tests. */
  now?: () => number;
  /** The deployment's Redis keys (default prefix when absent). */
  keys?: RedisKeys;
}

type EventInput = ProgressEvent extends infer E ? E extends ProgressEvent ? Omit<E, 'timestampMs'> & { timestampMs?: number } : never : never;

interface PendingLog {
  digest: string;
  stream: LogStream;
  chunks: Buffer[];
  bytes: number;
}

export const TRUNCATION_MARKER = (limit: number) => `\n[buildyard] log output clipped: this step printed more than ${limit} bytes; later output was dropped\n`;

/**
 * Appends one build's events to its Redis stream. Log output is batched (per vertex and
 * stream, flushed every `flushIntervalMs` or `flushBytes`) and capped per vertex. All writes
 * go out in call order; a non-log event first flushes pending logs so readers see logs before
 * the step's finish. Batches never end inside a UTF-8 character.
 */
export class ProgressWriter {
  readonly key: string;
  private readonly maxLog: number;
  private readonly maxLen: number;
  private readonly flushInterval: number;
  private readonly flushBytes: number;
  private readonly ttl: number;
  private readonly now: () => number;
  private readonly pending = new Map<string, PendingLog>();
  private readonly logBytes = new Map<string, number>();
  private readonly truncated = new Set<string>();
  private chain: Promise<void> = Promise.resolve();
  private failure: unknown;
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly redis: Redis, readonly buildId: string, opts: ProgressWriterOptions = {}) {
    this.key = progressStreamKey(buildId, opts.keys);
    this.maxLog = opts.maxLogBytesPerVertex ?? 1024 * 1024;
    this.maxLen = opts.streamMaxLen ?? 100_000;
    this.flushInterval = opts.flushIntervalMs ?? 100;
    this.flushBytes = opts.flushBytes ?? 16 * 1024;
    this.ttl = opts.ttlSeconds ?? 24 * 3600;
    this.now = opts.now ?? Date.now;
  }

  /** Appends a non-log event (logs pending before it are written first). */
  emit(event: EventInput): Promise<void> {
    this.assertOpen();
    if (event.type === 'vertex.log') {
      this.log(event.digest, event.data, event.stream);
      return this.flush();
    }
    this.flushPending();
    const e = { ...event, timestampMs: event.timestampMs ?? this.now() } as ProgressEvent;
    return this.enqueue([EVENT_FIELD, encodeEvent(e)]);
  }

  // Convenience emitters for the common events.
  started(vertex: VertexRef, startedMs = this.now()): Promise<void> {
    return this.emit({ type: 'vertex.started', vertex, startedMs });
  }
  cached(vertex: VertexRef): Promise<void> {
    return this.emit({ type: 'vertex.cached', vertex });
  }
  finished(vertex: VertexRef, startedMs: number, completedMs = this.now()): Promise<void> {
    return this.emit({ type: 'vertex.finished', vertex, startedMs, completedMs, durationMs: completedMs - startedMs });
  }
  failed(vertex: VertexRef, startedMs: number, error: string, completedMs = this.now()): Promise<void> {
    return this.emit({ type: 'vertex.error', vertex, startedMs, completedMs, error });
  }

  /** Buffers log output of a vertex; returns false once the vertex's log cap has been reached. */
  log(digest: string, data: Buffer | string, stream: LogStream = 1): boolean {
    this.assertOpen();
    if (this.truncated.has(digest)) return false;
    let buf = typeof data === 'string' ? Buffer.from(data) : data;
    const used = this.logBytes.get(digest) ?? 0;
    let hitCap = false;
    if (used + buf.length > this.maxLog) {
      hitCap = true;
      // Cut on a character boundary, counting bytes still held back from earlier writes.
      const p = this.pending.get(`${digest}\0${stream}`);
      const joined = p ? Buffer.concat([...p.chunks, buf]) : buf;
      const held = p?.bytes ?? 0;
      const cut = utf8SafeCut(joined, held + (this.maxLog - used));
      if (p) { p.chunks = []; p.bytes = 0; }
      buf = joined.subarray(0, cut);
      this.logBytes.set(digest, used - held);
    }
    const pk = `${digest}\0${stream}`;
    let p = this.pending.get(pk);
    if (!p) {
      p = { digest, stream, chunks: [], bytes: 0 };
      this.pending.set(pk, p);
    }
    if (buf.length > 0) {
      p.chunks.push(buf);
      p.bytes += buf.length;
      this.logBytes.set(digest, (this.logBytes.get(digest) ?? 0) + buf.length);
    }
    if (hitCap) {
      this.truncated.add(digest);
      // Everything kept so far, ending with the marker line, goes out as the final event.
      this.flushOne(pk, p, true, true);
      return false;
    }
    if (p.bytes >= this.flushBytes) this.flushOne(pk, p, false, false);
    else this.armTimer();
    return true;
  }

  /** Writes pending logs now; resolves when everything emitted so far is in Redis. */
  flush(): Promise<void> {
    this.flushPending();
    return this.settle();
  }

  /** Flushes, writes the end marker and sets the stream's TTL. Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return this.settle();
    this.flushPending(true);
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.enqueue([END_FIELD, String(this.now())]);
    await this.redis.expire(this.key, this.ttl);
  }

  private assertOpen(): void {
    if (this.closed) throw new Error(`progress writer for build ${this.buildId} is closed; events after close() are lost`);
    if (this.failure) throw this.failure;
  }

  private armTimer(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.flushPending();
    }, this.flushInterval);
    this.timer.unref();
  }

  private flushPending(final = false): void {
    for (const [pk, p] of this.pending) this.flushOne(pk, p, final, false);
  }

  // Sends one vertex stream's pending bytes, holding back an incomplete UTF-8 tail unless final.
  private flushOne(pk: string, p: PendingLog, final: boolean, truncated: boolean): void {
    let data: Buffer = p.chunks.length === 1 ? p.chunks[0] : Buffer.concat(p.chunks);
    let rest: Buffer = Buffer.alloc(0);
    if (!final) {
      const tail = incompleteUtf8Tail(data);
      if (tail > 0) {
        rest = data.subarray(data.length - tail);
        data = data.subarray(0, data.length - tail);
      }
    }
    p.chunks = rest.length > 0 ? [rest] : [];
    p.bytes = rest.length;
    if (rest.length === 0) this.pending.delete(pk);
    if (truncated) data = Buffer.concat([data, Buffer.from(TRUNCATION_MARKER(this.maxLog))]);
    if (data.length === 0) return;
    const e: ProgressEvent = { type: 'vertex.log', digest: p.digest, stream: p.stream, data, truncated, timestampMs: this.now() };
    void this.enqueue([EVENT_FIELD, encodeEvent(e)]).catch(() => {});
  }

  private enqueue(fields: [string, string]): Promise<void> {
    const add = () => this.redis.xadd(this.key, 'MAXLEN', '~', this.maxLen, '*', ...fields).then(() => {});
    // One connection answers its commands in the order they were sent, so the events are
    // appended in call order without waiting for each reply (20 CACHED steps: one round trip,
    // not 20). A cluster client may resend a command to another node after a redirect, out of
    // order with the ones after it: there each waits for the one before.
    const p = this.redis.isCluster ? this.chain.then(add) : add();
    this.chain = Promise.all([this.chain, p.catch((err: unknown) => { this.failure ??= err; })]).then(() => {});
    return p;
  }

  private async settle(): Promise<void> {
    await this.chain;
    if (this.failure) throw this.failure;
  }
}
