// A real Redis Cluster for tests: Debian's redis-server with `cluster-enabled yes`, one process
// per node on free loopback ports, joined with `redis-cli --cluster create` (which assigns the
// 16384 slots and, with replicas, pairs each replica with a master). Each node runs under the
// same watchdog as startRedis, so none outlives the test process.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, requireCommand } from '@buildyard/hostkit';
import { supervise, waitUntilReady, type SupervisedProcess } from './supervise.js';
import { until } from './until.js';

const run = promisify(execFile);

export interface RedisClusterNode {
  host: string;
  port: number;
}

export interface RedisClusterService {
  /** Seed nodes for a cluster client (every node; a client learns the slot map from any). */
  nodes: RedisClusterNode[];
  password: string;
  /**
   * `redis://:PASSWORD@127.0.0.1:PORT` of the first node: with the cluster option set, a seed URL
   * (the client follows the slot map from there).
   */
  url: string;
  /** The node currently serving `key`'s slot as master. */
  masterFor(key: string): Promise<RedisClusterNode>;
  /**
   * SIGKILLs the master serving `key`, once its replicas acknowledged its writes, and waits until
   * one of them took over its slots and the cluster answers again (needs `replicas >= 1`).
   * Returns the killed node.
   */
  killMasterFor(key: string): Promise<RedisClusterNode>;
  stop(): Promise<void>;
}

export interface RedisClusterOptions {
  /** Masters (default 3, the fewest `redis-cli --cluster create` accepts). */
  masters?: number;
  /** Replicas per master (default 0); 1 or more to test failover. */
  replicas?: number;
  /** How long a node may be unreachable before the others fail it over (default 2000 ms). */
  nodeTimeoutMs?: number;
}

/** Runs redis-cli against one node; the password goes through the environment, not argv. */
async function cli(password: string, node: RedisClusterNode, ...args: string[]): Promise<string> {
  const { stdout } = await run('redis-cli', ['-h', node.host, '-p', String(node.port), ...args], {
    env: { ...process.env, REDISCLI_AUTH: password },
    timeout: 30_000,
  });
  return stdout;
}

async function clusterState(password: string, node: RedisClusterNode): Promise<string> {
  return (await cli(password, node, 'CLUSTER', 'INFO').catch(() => '')).match(/cluster_state:(\w+)/)?.[1] ?? 'down';
}

export async function startRedisCluster(options: RedisClusterOptions = {}): Promise<RedisClusterService> {
  requireCommand('redis-server', 'redis-server');
  requireCommand('redis-cli', 'redis-tools');
  const masters = options.masters ?? 3;
  const replicas = options.replicas ?? 0;
  const password = randomBytes(24).toString('hex');
  const root = await mkdtemp(join(tmpdir(), 'buildyard-redis-cluster-'));
  const services = new Map<number, SupervisedProcess>();
  const nodes: RedisClusterNode[] = [];
  const stop = async () => {
    await Promise.all([...services.values()].map((s) => s.stop()));
    await rm(root, { recursive: true, force: true });
  };
  try {
    for (let i = 0; i < masters * (1 + replicas); i++) {
      // Another process may take a free port before the node binds it: then new ports.
      for (let attempt = 1; ; attempt++) {
        const port = await freePort();
        // The cluster bus port is chosen too: by default it is port + 10000, which nothing checked
        // was free (a client's ephemeral port there failed a CI run).
        const busPort = await freePort();
        const dir = join(root, String(port));
        await mkdir(dir);
        const config = join(dir, 'redis.conf');
        // masterauth: replicas authenticate to their master with the same password.
        await writeFile(config, [
          `port ${port}`, `cluster-port ${busPort}`, 'bind 127.0.0.1', `dir ${dir}`, 'save ""', 'appendonly no', 'protected-mode yes', 'daemonize no',
          'cluster-enabled yes', `cluster-config-file ${join(dir, 'nodes.conf')}`, `cluster-node-timeout ${options.nodeTimeoutMs ?? 2000}`,
          `requirepass ${password}`, `masterauth ${password}`, '',
        ].join('\n'), { mode: 0o600 });
        const node = { host: '127.0.0.1', port };
        const service = supervise(`redis-cluster-${port}`, 'redis-server', [config]);
        services.set(port, service);
        try {
          await waitUntilReady(service, async () => (await cli(password, node, 'PING').catch(() => '')).trim() === 'PONG');
        } catch (err) {
          if (attempt >= 3 || !/Address already in use/.test((err as Error).message)) throw err;
          await service.stop();
          services.delete(port);
          continue;
        }
        nodes.push(node);
        break;
      }
    }
    await cli(password, nodes[0], '--cluster', 'create', ...nodes.map((n) => `${n.host}:${n.port}`),
      '--cluster-replicas', String(replicas), '--cluster-yes');
    await until('the Redis Cluster to be up on every node', async () =>
      (await Promise.all(nodes.map((n) => clusterState(password, n)))).every((s) => s === 'ok'), 60_000, 100);
    if (replicas > 0) {
      // A replica fails its master over only once it has synced; wait for every link to be up.
      await until('every replica to sync with its master', async () => {
        const roles = await Promise.all(nodes.map((n) => cli(password, n, 'INFO', 'replication').catch(() => '')));
        return roles.filter((r) => /role:slave/.test(r)).length === masters * replicas
          && roles.every((r) => !/role:slave/.test(r) || /master_link_status:up/.test(r));
      }, 60_000, 100);
    }
  } catch (err) {
    await stop();
    throw err;
  }

  const masterFor = async (key: string): Promise<RedisClusterNode> => {
    // Asked of the first node still running (a killed master answers nothing).
    const live = nodes.find((n) => services.has(n.port))!;
    const slot = Number((await cli(password, live, 'CLUSTER', 'KEYSLOT', key)).trim());
    for (const line of (await cli(password, live, 'CLUSTER', 'NODES')).split('\n')) {
      // <id> <ip:port@cport> <flags> <master> <ping> <pong> <epoch> <link> <slot ranges...>
      const f = line.split(' ');
      if (!f[2]?.includes('master') || f[2].includes('fail') || f[7] !== 'connected') continue;
      const [host, port] = f[1].split('@')[0].split(':');
      const owns = f.slice(8).some((r) => {
        const [a, b] = r.split('-').map(Number);
        return slot >= a && slot <= (b ?? a);
      });
      if (owns) return { host, port: Number(port) };
    }
    throw new Error(`no master serves slot ${slot} of ${key.slice(0, 100)}`);
  };

  return {
    nodes,
    password,
    // A node still running: a client seeded with a killed master never connects.
    get url() {
      const live = nodes.find((n) => services.has(n.port)) ?? nodes[0];
      return `redis://:${password}@${live.host}:${live.port}`;
    },
    masterFor,
    async killMasterFor(key) {
      if (replicas < 1) throw new Error('killMasterFor needs a cluster started with replicas >= 1');
      const victim = await masterFor(key);
      // Replication is asynchronous: a replica still catching up (after a full resync, or a
      // failover a loaded machine set off by itself) is promoted without the last writes, and
      // a CI run lost a build record that way. What is tested is a failover that keeps what
      // Redis acknowledged, so the victim's replicas confirm its writes first (WAIT).
      await until(`the replicas of ${victim.host}:${victim.port} to hold its writes`, async () =>
        Number((await cli(password, victim, 'WAIT', String(replicas), '1000').catch(() => '0')).trim()) >= replicas, 60_000, 100);
      const service = services.get(victim.port)!;
      service.kill('SIGKILL');
      await service.stop();
      services.delete(victim.port);
      const alive = nodes.filter((n) => services.has(n.port));
      await until(`a replica to take over ${victim.host}:${victim.port}'s slots`, async () => {
        const owner = await masterFor(key).catch(() => undefined);
        return owner !== undefined && owner.port !== victim.port
          && (await Promise.all(alive.map((n) => clusterState(password, n)))).every((s) => s === 'ok');
      }, 60_000, 100);
      return victim;
    },
    stop,
  };
}
