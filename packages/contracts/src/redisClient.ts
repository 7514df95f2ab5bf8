// Opening Redis the same way in every process: a single Redis, or a Redis Cluster seeded by one
// node (`redis.cluster`). Code above this takes a RedisClient and uses only what both offer;
// the few operations whose form differs (a duplicate with other options, a SCAN of every key)
// are here.
import { Cluster, Redis, type RedisOptions } from 'ioredis';

/** A single Redis or a Redis Cluster. */
export type RedisClient = Redis | Cluster;

/** Where Redis is, as configured (`redis.url`, `redis.cluster`). */
export interface RedisConnection {
  url: string;
  cluster?: boolean;
}

/** Options that apply to every connection of a client (each node's, for a cluster). */
export type RedisClientOptions = Pick<RedisOptions, 'maxRetriesPerRequest' | 'lazyConnect'>;

/** What a `redis.url` names: `redis[s]://[user][:password]@host[:port][,host[:port]...][/db]`. */
export interface RedisUrlParts {
  tls: boolean;
  /** One node, or (Redis Cluster only) several seed nodes separated by commas. */
  nodes: Array<{ host: string; port: number }>;
  username?: string;
  password?: string;
  db: number;
}

// A query (ioredis' options of a single Redis) is left to ioredis.
const URL_FORM = /^(rediss?):\/\/(?:([^@/]*)@)?([^/?#@]+)(?:\/(\d*))?\/?(?:\?[^#]*)?$/;

export function parseRedisUrl(url: string): RedisUrlParts {
  const m = URL_FORM.exec(url);
  const shown = url.replace(/\/\/[^@/]*@/, '//…@').slice(0, 200);
  if (!m) throw new Error(`redis.url "${shown}" is not redis[s]://[:password@]host[:port][,host:port...][/db]; fix BUILDYARD_REDIS_URL or redis.url`);
  const [, scheme, userinfo, hosts, db] = m;
  const nodes = hosts.split(',').map((h) => {
    const node = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d+))?$/.exec(h);
    if (!node) throw new Error(`redis.url "${shown}": "${h.slice(0, 100)}" is not host[:port]`);
    return { host: node[1].replace(/^\[|\]$/g, ''), port: Number(node[2] ?? 6379) };
  });
  const colon = userinfo?.indexOf(':') ?? -1;
  const username = userinfo === undefined ? '' : decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
  const password = userinfo === undefined || colon < 0 ? '' : decodeURIComponent(userinfo.slice(colon + 1));
  return { tls: scheme === 'rediss', nodes, ...(username ? { username } : {}), ...(password ? { password } : {}), db: Number(db || 0) };
}

/**
 * A client for `url`: with `cluster`, a Redis Cluster client seeded by the node(s) it names (it
 * learns the others from the slot map; a process starting while one seed is down connects
 * through another); user, password and TLS apply to every node.
 */
export function openRedis(target: RedisConnection, options: RedisClientOptions = {}): RedisClient {
  if (!target.cluster) {
    // ioredis reads a single Redis's URL itself (query options included); only a node list is ours.
    if (/^rediss?:\/\/(?:[^@/]*@)?[^/@]*,/.test(target.url)) throw new Error('redis.url names several nodes: set redis.cluster (BUILDYARD_REDIS_CLUSTER=true) for a Redis Cluster, or name one Redis');
    return new Redis(target.url, options);
  }
  const parts = parseRedisUrl(target.url);
  if (parts.db !== 0) throw new Error(`redis.url: Redis Cluster has only database 0; drop the /${parts.db} from the URL`);
  const { lazyConnect, ...perNode } = options;
  return new Cluster(parts.nodes, {
    lazyConnect,
    // While a master fails over, its slots answer nothing until a replica takes them: Redis
    // waits cluster-node-timeout (15 s by default) before the election. A command retries that
    // long (150 tries 200 ms apart, ~30 s) instead of failing the build after ioredis' 1.6 s.
    retryDelayOnFailover: 200,
    retryDelayOnClusterDown: 200,
    maxRedirections: 150,
    redisOptions: {
      ...perNode,
      username: parts.username,
      password: parts.password,
      tls: parts.tls ? {} : undefined,
    },
  });
}

/**
 * A new connection like `client` with other options (for blocking reads and subscriptions,
 * which hold their connection). A cluster's copy is seeded with every node it knows now, not
 * only its seed: the seed may be a master that failed over since.
 */
export function duplicateRedis(client: RedisClient, options: RedisClientOptions = {}): RedisClient {
  if (client instanceof Cluster) {
    const { lazyConnect, ...perNode } = options;
    const known = client.nodes('all').map((n) => ({ host: n.options.host, port: n.options.port }));
    return client.duplicate(known.length > 0 ? known : undefined, {
      ...(lazyConnect !== undefined ? { lazyConnect } : {}),
      redisOptions: { ...client.options.redisOptions, ...perNode },
    });
  }
  return client.duplicate(options);
}

/** What reportOutages logs with (a pino logger, say). */
export interface OutageLog {
  warn(fields: { err: string }, message: string): void;
  info(fields: object, message: string): void;
}

/**
 * Logs a Redis outage once, at its first error, and the recovery once the client is ready again
 * (ioredis reconnects by itself). Without an 'error' listener ioredis prints each failed
 * reconnect as "[ioredis] Unhandled error event", which reads as a bug in the process.
 */
export function reportOutages(client: RedisClient, log: OutageLog): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (down) return;
    down = true;
    log.warn({ err: err.message }, 'Redis does not answer: retrying until it does');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    log.info({}, 'Redis answers again');
  });
}

/** How long a stopping process waits for Redis to answer a command before it gives the command up. */
const STOP_REPLY_MS = 2_000;

/**
 * `command`, or a rejection once `ms` passed without a reply: on a client with
 * `maxRetriesPerRequest: null` a command waits for an unreachable Redis forever.
 */
export function replyWithin<T>(command: Promise<T>, what: string, ms = STOP_REPLY_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`Redis did not answer ${what} within ${ms} ms`)), ms); });
  return Promise.race([command, late]).finally(() => clearTimeout(timer));
}

/**
 * How long a stopping process waits for work that goes through Redis (builds handing over,
 * stages handed back) once Redis has stopped answering: then it stops without it.
 */
export const STOP_WITHOUT_REDIS_MS = 10_000;

/**
 * Settles as `work` does, or rejects once `client` has been unable to reach Redis for `graceMs`
 * in a row: work that waits on Redis (a build handing itself over) would otherwise wait for as
 * long as the outage lasts. While Redis answers, it waits as long as `work` takes. A Redis that
 * keeps its connections open but answers nothing (stopped, or stuck) sends no connection event:
 * a PING unanswered for `graceMs` counts as gone too (one at a time, every `graceMs`).
 */
export function untilRedisGone<T>(client: RedisClient, work: Promise<T>, graceMs: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    let probe: NodeJS.Timeout | undefined;
    let settled = false;
    const gone = () => {
      if (settled) return;
      stop();
      reject(new Error(`Redis has not answered for ${graceMs} ms`));
    };
    const down = () => { timer ??= setTimeout(gone, graceMs); };
    const up = () => { clearTimeout(timer); timer = undefined; };
    const ping = () => {
      replyWithin(client.ping(), 'PING', graceMs).then(() => { if (!settled) probe = setTimeout(ping, graceMs).unref(); }, gone);
    };
    const stop = () => {
      settled = true;
      clearTimeout(timer);
      clearTimeout(probe);
      for (const event of ['close', 'reconnecting', 'end']) client.off(event, down);
      client.off('ready', up);
    };
    for (const event of ['close', 'reconnecting', 'end']) client.on(event, down);
    client.on('ready', up);
    if (client.status !== 'ready') down();
    ping();
    work.then((value) => { if (!settled) { stop(); resolve(value); } }, (err: unknown) => { if (!settled) { stop(); reject(err); } });
  });
}

/**
 * Closes `client` at once and fails with `reason` every command that waits for Redis, and every
 * command sent from now on. ioredis's disconnect() alone does neither for a client between two
 * reconnect attempts: its socket is gone already, so no close event flushes the queued commands,
 * and the client stays 'reconnecting', queueing new ones for ever. Hand-written because ioredis
 * offers no such call; flushQueue and options.enableOfflineQueue are what its own close handler
 * and command path use (Redis and Cluster alike).
 */
export function abandonRedis(client: RedisClient, reason: Error): void {
  client.options.enableOfflineQueue = false;
  client.disconnect();
  (client as unknown as { flushQueue(error: Error): void }).flushQueue(reason);
}

/** QUIT (pending replies arrive first), or a plain disconnect when Redis does not answer it. */
export async function closeRedis(client: RedisClient, ms = STOP_REPLY_MS): Promise<void> {
  await replyWithin(client.quit(), 'QUIT', ms).catch(() => client.disconnect());
}

/**
 * Every key matching `pattern`. SCAN walks one node's keys, so on a cluster it runs on each
 * master (replicas hold copies of the same keys).
 */
export async function scanKeys(client: RedisClient, pattern: string, count = 500): Promise<string[]> {
  if (client instanceof Cluster && client.status !== 'ready') {
    // The masters are known once the client has read the slot map.
    if (client.status === 'wait') await client.connect();
    else await new Promise<void>((resolve, reject) => {
      const ready = () => { client.off('end', end); resolve(); };
      const end = () => { client.off('ready', ready); reject(new Error('the Redis Cluster connection closed before it was ready')); };
      client.once('ready', ready);
      client.once('end', end);
    });
  }
  const nodes: Redis[] = client instanceof Cluster ? client.nodes('master') : [client];
  const out: string[] = [];
  for (const node of nodes) {
    let cursor = '0';
    do {
      const [next, keys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next;
      out.push(...keys);
    } while (cursor !== '0');
  }
  return out;
}

/**
 * Keeps `sub` subscribed to `channels`: subscribes once its connection is ready and again each
 * time it is ready after a reconnect, and calls `onSubscribed` (if given) after each confirmed subscription;
 * resolves after the first. ioredis restores the subscriptions of a connection that had been
 * ready, but a SUBSCRIBE it writes during the connection's handshake (it lets one through)
 * makes its ready check fail (an INFO in subscriber mode, redis/ioredis#2037): it reconnects, and
 * the new connection comes back with no subscription at all. A consumer whose subscribe() had
 * resolved then sat in the idle sets where no wake-up could reach it.
 */
export function keepSubscribed(sub: RedisClient, channels: string[], onError: (err: Error) => void, onSubscribed?: () => void): Promise<void> {
  return new Promise((resolve) => {
    const subscribe = () => {
      sub.subscribe(...channels).then(() => { onSubscribed?.(); resolve(); }, onError);
    };
    sub.on('ready', subscribe);
    if (sub.status === 'ready') subscribe();
  });
}
