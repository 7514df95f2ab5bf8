import { Cluster, Redis } from 'ioredis';

/** A single Redis or a Redis Cluster: the scheduler keeps all its keys in one slot (see keys). */
export type RedisClient = Redis | Cluster;

/** Where Redis is: a URL (`redis://127.0.0.1:6379/0`), a URL with `cluster`, or a client. */
export type RedisTarget = string | { url: string; cluster?: boolean } | RedisClient;

/**
 * A client for `url`: with `cluster`, a Redis Cluster client seeded by that node (it learns the
 * others from the slot map); user, password and TLS apply to every node.
 */
export function redisClient(url: string, cluster: boolean, options: { maxRetriesPerRequest?: null } = {}): RedisClient {
  if (!cluster) return new Redis(url, options);
  const u = new URL(url);
  if (u.pathname.length > 1 && u.pathname !== '/0') {
    throw new Error(`redis.url ${u.protocol}//${u.host}${u.pathname}: Redis Cluster has only database 0; drop the /${u.pathname.slice(1)} from the URL`);
  }
  return new Cluster([{ host: u.hostname, port: Number(u.port || 6379) }], {
    redisOptions: {
      ...options,
      username: u.username ? decodeURIComponent(u.username) : undefined,
      password: u.password ? decodeURIComponent(u.password) : undefined,
      tls: u.protocol === 'rediss:' ? {} : undefined,
    },
  });
}

function isClient(target: RedisTarget): target is RedisClient {
  return target instanceof Redis || target instanceof Cluster;
}

/**
 * Opens a new connection of our own, with `maxRetriesPerRequest: null` as BullMQ requires of
 * connections that block. A caller's client only lends its options; we close what we open.
 */
export function connectRedis(target: RedisTarget): RedisClient {
  let client: RedisClient;
  if (typeof target === 'string') client = redisClient(target, false, { maxRetriesPerRequest: null });
  else if (!isClient(target)) client = redisClient(target.url, target.cluster === true, { maxRetriesPerRequest: null });
  else if (target instanceof Cluster) {
    // Seeded with every node the client knows now, not only its seed: the seed may be the
    // master that failed over.
    const known = target.nodes('all').map((n) => ({ host: n.options.host, port: n.options.port }));
    client = target.duplicate(known.length > 0 ? known : undefined, { redisOptions: { ...target.options.redisOptions, maxRetriesPerRequest: null } });
  } else client = new Redis({ ...target.options, maxRetriesPerRequest: null, lazyConnect: false });
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
