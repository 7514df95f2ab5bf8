import { duplicateRedis, type RedisClient as Redis } from '@buildyard/contracts';
import type { RedisKeys } from '@buildyard/contracts';
import type { StreamedProgressEvent } from './ProgressEvent.js';
import { decodeEvent } from './storedEvent.js';
import { END_FIELD, EVENT_FIELD, progressStreamKey } from './progressStream.js';

export interface ReadProgressOptions {
  /** Replay the build's events from the first one (default: only events after the latest). */
  fromStart?: boolean;
  /** Resume after this stream id (takes precedence over fromStart). */
  after?: string;
  /** Ends the iteration (the blocked XREAD is interrupted). */
  signal?: AbortSignal;
  /** How long one XREAD blocks; the loop re-blocks until the end marker or abort. */
  blockMs?: number;
  /** Entries fetched per XREAD. */
  count?: number;
  /** The deployment's Redis keys (default prefix when absent). */
  keys?: RedisKeys;
}

type XReadReply = [key: string, entries: [id: string, fields: string[]][]][] | null;

/**
 * Follows one build's event stream until its end marker (or abort). Uses a dedicated
 * connection duplicated from `redis`, because XREAD BLOCK holds the connection it runs on.
 */
export async function* readProgress(redis: Redis, buildId: string, opts: ReadProgressOptions = {}): AsyncGenerator<StreamedProgressEvent> {
  const key = progressStreamKey(buildId, opts.keys);
  const signal = opts.signal;
  if (signal?.aborted) return;
  let last = opts.after ?? (opts.fromStart ? '0-0' : undefined);
  if (last === undefined) {
    // "From the latest event": start after it, or stop at once if the build already ended.
    const tail = (await redis.xrevrange(key, '+', '-', 'COUNT', 1)) as [string, string[]][];
    if (tail.length > 0 && tail[0][1].includes(END_FIELD)) return;
    last = tail.length > 0 ? tail[0][0] : '0-0';
  }
  const conn = duplicateRedis(redis, { lazyConnect: true, maxRetriesPerRequest: null });
  const onAbort = () => conn.disconnect();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    await conn.connect();
    while (!signal?.aborted) {
      let reply: XReadReply;
      try {
        reply = (await conn.xread('COUNT', opts.count ?? 500, 'BLOCK', opts.blockMs ?? 5000, 'STREAMS', key, last)) as XReadReply;
      } catch (err) {
        if (signal?.aborted) return;
        throw err;
      }
      if (!reply) continue;
      for (const [, entries] of reply) {
        for (const [id, fields] of entries) {
          last = id;
          for (let i = 0; i + 1 < fields.length; i += 2) {
            if (fields[i] === END_FIELD) return;
            if (fields[i] === EVENT_FIELD) yield { ...decodeEvent(fields[i + 1]), streamId: id };
          }
          if (signal?.aborted) return;
        }
      }
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    conn.disconnect();
  }
}
