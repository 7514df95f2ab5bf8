import { Redis } from 'ioredis';

/** A Redis URL (`redis://127.0.0.1:6379/0`) or an ioredis client. */
export type RedisTarget = string | Redis;

/**
 * Opens a new connection of our own, with `maxRetriesPerRequest: null` as BullMQ requires of
 * connections that block. A caller's client only lends its options; we close what we open.
 */
export function connectRedis(target: RedisTarget): Redis {
  const client = typeof target === 'string'
    ? new Redis(target, { maxRetriesPerRequest: null })
    : new Redis({ ...target.options, maxRetriesPerRequest: null, lazyConnect: false });
  // ioredis reconnects by itself and a failed command rejects on its own; without a listener an
  // 'error' event is logged as unhandled (seen on subscribers under load). Owners that want to
  // report errors add their own listener.
  client.on('error', () => undefined);
  return client;
}

/** A client for plain commands: the caller's own if given (not closed by us), else a new one. */
export function useRedis(target: RedisTarget): { client: Redis; owned: boolean } {
  if (typeof target === 'string') return { client: connectRedis(target), owned: true };
  return { client: target, owned: false };
}
