import { Cluster, Redis } from 'ioredis';
import { duplicateRedis, openRedis, type RedisClient, type RedisConnection } from '@buildyard/contracts';

/** A single Redis or a Redis Cluster: the scheduler keeps all its keys in one slot (see keys). */
export type { RedisClient };

/** Where Redis is: a URL (`redis://127.0.0.1:6379/0`), a URL with `cluster`, or a client. */
export type RedisTarget = string | RedisConnection | RedisClient;

function isClient(target: RedisTarget): target is RedisClient {
  return target instanceof Redis || target instanceof Cluster;
}

/**
 * Opens a new connection of our own, with `maxRetriesPerRequest: null` as BullMQ requires of
 * connections that block. A caller's client only lends its options; we close what we open.
 */
export function connectRedis(target: RedisTarget): RedisClient {
  let client: RedisClient;
  if (typeof target === 'string') client = openRedis({ url: target }, { maxRetriesPerRequest: null });
  else if (!isClient(target)) client = openRedis(target, { maxRetriesPerRequest: null });
  else client = duplicateRedis(target, { maxRetriesPerRequest: null, lazyConnect: false });
  // ioredis reconnects by itself and a failed command rejects on its own; without a listener an
  // 'error' event is logged as unhandled (seen on subscribers under load). Owners that want to
  // report errors add their own listener.
  client.on('error', () => undefined);
  return client;
}

/** A client for plain commands: the caller's own if given (not closed by us), else a new one. */
export function useRedis(target: RedisTarget): { client: RedisClient; owned: boolean } {
  if (isClient(target)) return { client: target, owned: false };
  return { client: connectRedis(target), owned: true };
}

