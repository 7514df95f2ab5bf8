// A real Buildyard cluster for e2e tests: Redis, a registry seeded with busybox, one frontend
// and N workers as separate processes (from TypeScript sources, or from the build in `npm test`:
// appCommand.ts), all under the testkit watchdog. Redis is a single instance, or a 3-master Redis
// Cluster with a replica each (`redisCluster`, or BUILDYARD_TEST_REDIS=cluster for a whole suite).
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cluster as RedisClusterClient, Redis } from 'ioredis';
import { startRedis, startRegistry, type RedisService, type RegistryService } from './services.js';
import { startRedisCluster, type RedisClusterService } from './redisCluster.js';
import { cleanupUnder, seedBusybox, type SeededImage } from '@buildyard/hostkit';
import { supervise, type SupervisedProcess } from './supervise.js';
import { appCommand } from './appCommand.js';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');

export interface ClusterWorker {
  id: string;
  process: SupervisedProcess;
  stateDir: string;
}

export interface Cluster {
  /** tcp://127.0.0.1:PORT */
  frontend: string;
  /** host:port for gRPC clients */
  address: string;
  token: string;
  tenant: string;
  /** Extra tenants: name -> token. */
  tokens: Record<string, string>;
  /** The single Redis; on a Redis Cluster, `url` names a running node and restart() is refused. */
  redis: RedisService;
  /** The Redis Cluster, when the cluster runs on one (failover: killMasterFor). */
  redisCluster?: RedisClusterService;
  /** A new client of this cluster's Redis (a cluster client on a Redis Cluster); the caller disconnects it. */
  openRedis(): Redis | RedisClusterClient;
  registry: RegistryService;
  busybox: SeededImage;
  workers: ClusterWorker[];
  frontendProcess: SupervisedProcess;
  /**
   * tcp://127.0.0.1:PORT of the frontend's BuildKit endpoint, as it announced it, when `env`
   * sets BUILDYARD_BUILDKIT_LISTEN (give it `127.0.0.1:0`: the kernel's port cannot be taken
   * between picking and binding, a free port picked beforehand can). It accepts connections.
   */
  buildkit?: string;
  stateDir: string;
  /** Starts another worker (e.g. after killing one). */
  addWorker(id?: string): Promise<ClusterWorker>;
  /** SIGKILLs the frontend and starts a new one on the same address (frontendProcess is replaced). */
  restartFrontend(): Promise<void>;
  /** Starts another frontend (own state dir) on `listen` (default a free port); stop() ends it too. */
  addFrontend(listen?: string): Promise<{ address: string; process: SupervisedProcess }>;
  /** The environment every process of the cluster gets. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export interface ClusterOptions {
  workers?: number;
  /** Extra environment for every process (BUILDYARD_* options). */
  env?: Record<string, string>;
  tenants?: string[];
  /** Use this registry instead of starting one (it is left running on stop). */
  registry?: RegistryService;
  /** More registries builds may use on loopback besides the cluster's (registry.trusted): proxies
   *  in front of it, a port a test closed. */
  trustRegistries?: string[];
  /** Run on a 3-master Redis Cluster with a replica each; default: BUILDYARD_TEST_REDIS=cluster. */
  redisCluster?: boolean;
  /**
   * Each frontend and worker in a mount namespace of its own (`unshare -m`, needs root) where the
   * cluster's dir is an empty tmpfs but for the process's own state dir: as on separate machines,
   * no process can reach another's files. Pair it with `BUILDYARD_SHARED_DIR: ''` (each sharedDir
   * is then `<own stateDir>/shared`) and a registry blob store.
   */
  privateMounts?: boolean;
}

// Run by `sh -c` inside the new namespace: $1 the process's own dir, $2 the cluster's dir. The own
// dir is opened first so that it can be bound back over the tmpfs (`-c`: through the fd, not its path).
const PRIVATE_MOUNTS = 'set -e; exec 3<"$1"; mount -t tmpfs -o mode=0755 buildyard-private "$2"; mkdir -p "$1"; mount -c --bind /proc/self/fd/3 "$1"; exec 3<&-; shift 2; exec "$@"';

/** A Redis Cluster in RedisService's shape (the processes get its url with BUILDYARD_REDIS_CLUSTER). */
function clusterAsService(c: RedisClusterService): RedisService {
  return {
    get url() { return c.url; },
    get host() { return new URL(c.url).hostname; },
    get port() { return Number(new URL(c.url).port); },
    password: c.password,
    dataDir: '',
    stop: () => c.stop(),
    restart: () => Promise.reject(new Error('restart() is for a single Redis; on a Redis Cluster use redisCluster.killMasterFor')),
  };
}

async function waitForLine(p: SupervisedProcess, pattern: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const match = p.output().match(pattern);
    if (match) return match;
    if (p.child.exitCode !== null) throw new Error(`${p.name} exited with ${p.child.exitCode}: ${p.output().slice(-2000)}`);
    if (Date.now() > deadline) throw new Error(`${p.name} not ready within ${timeoutMs} ms: ${p.output().slice(-2000)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export async function startCluster(options: ClusterOptions = {}): Promise<Cluster> {
  const stateDir = await mkdtemp(join(tmpdir(), 'buildyard-cluster-'));
  const onCluster = options.redisCluster ?? process.env.BUILDYARD_TEST_REDIS === 'cluster';
  const [redisCluster, single, registry] = await Promise.all([
    onCluster ? startRedisCluster({ replicas: 1 }) : undefined,
    onCluster ? undefined : startRedis({ appendOnly: true }),
    options.registry ?? startRegistry(),
  ]);
  const redis = redisCluster ? clusterAsService(redisCluster) : single!;
  const busybox = await seedBusybox(registry);
  const tokens: Record<string, string> = {};
  for (const tenant of ['default', ...(options.tenants ?? [])]) tokens[tenant] = randomBytes(16).toString('hex');
  const env: Record<string, string> = {
    BUILDYARD_REDIS_URL: redis.url,
    BUILDYARD_SHARED_DIR: join(stateDir, 'shared'),
    BUILDYARD_SECRETS_KEY: randomBytes(32).toString('hex'),
    BUILDYARD_TOKENS: Object.entries(tokens).map(([t, k]) => `${t}:${k}`).join(','),
    BUILDYARD_HEARTBEAT_MS: '500',
    BUILDYARD_HEARTBEAT_TIMEOUT_MS: '3000',
    BUILDYARD_LOG_LEVEL: 'warn',
    // The cluster's registry lives on loopback, which builds may not reach unless trusted (as
    // `buildyard up` trusts its own as an insecure registry).
    BUILDYARD_TRUSTED_REGISTRIES: [registry.host, ...options.trustRegistries ?? []].join(','),
    // A failover here (node timeout 2 s, then the election) can outlast the 3 s heartbeat
    // timeout: the workers, whose beats fail meanwhile, would count as gone ("no worker can
    // build") though none is. The heartbeat must outlast a failover, as the default 10 s does.
    ...(redisCluster ? { BUILDYARD_REDIS_CLUSTER: 'true', BUILDYARD_HEARTBEAT_TIMEOUT_MS: '10000' } : {}),
    ...options.env,
  };
  // On a Redis Cluster every process is seeded with every node, as an operator would list them:
  // one started after a failover connects through the nodes still running.
  const clusterUrl = redisCluster && `redis://:${redisCluster.password}@${redisCluster.nodes.map((n) => `${n.host}:${n.port}`).join(',')}`;
  const processEnv = (extra: Record<string, string>) => ({ ...env, ...(clusterUrl ? { BUILDYARD_REDIS_URL: clusterUrl } : {}), ...extra });
  const launch = (name: string, args: string[], own: string, extra: Record<string, string>) => {
    const processOptions = { cwd: repoRoot, env: processEnv({ BUILDYARD_STATE_DIR: own, ...extra }) };
    if (!options.privateMounts) return supervise(name, process.execPath, args, processOptions);
    mkdirSync(own, { recursive: true });
    // unshare and sh exec in turn: the supervised pid is the service's own.
    return supervise(name, 'unshare', ['-m', '--propagation', 'private', 'sh', '-c', PRIVATE_MOUNTS, 'sh', own, stateDir, process.execPath, ...args], processOptions);
  };
  const launchFrontend = (listen: string, extra: Record<string, string> = {}) => launch('buildyardd', appCommand('buildyardd'), join(stateDir, 'frontend'), { BUILDYARD_LISTEN: listen, ...extra });
  let frontendProcess = launchFrontend('127.0.0.1:0');
  const extraFrontends: SupervisedProcess[] = [];
  const workers: ClusterWorker[] = [];
  let counter = 0;
  const addWorker = async (id = `worker-${++counter}`): Promise<ClusterWorker> => {
    const workerState = join(stateDir, id);
    const p = launch(id, appCommand('worker', 'serve'), workerState, { BUILDYARD_WORKER_ID: id });
    await waitForLine(p, /buildyard-worker ready/);
    const worker = { id, process: p, stateDir: workerState };
    workers.push(worker);
    return worker;
  };
  const stopAll = async () => {
    await Promise.allSettled([frontendProcess.stop(), ...extraFrontends.map((f) => f.stop()), ...workers.map((w) => w.process.stop())]);
    cleanupUnder(stateDir);
    await Promise.allSettled([redis.stop(), options.registry ? Promise.resolve() : registry.stop()]);
    await rm(stateDir, { recursive: true, force: true });
  };
  try {
    const frontendLine = /"frontend":"((?:tcp|tls):\/\/127\.0\.0\.1:\d+)"/;
    const [, frontend] = await waitForLine(frontendProcess, frontendLine);
    // Announced once it listens (after the frontend's own line).
    const buildkitLine = /"buildkit":"(tcp:\/\/127\.0\.0\.1:\d+)"/;
    const buildkit = env.BUILDYARD_BUILDKIT_LISTEN ? (await waitForLine(frontendProcess, buildkitLine))[1] : undefined;
    await Promise.all(Array.from({ length: options.workers ?? 2 }, () => addWorker()));
    const cluster: Cluster = {
      frontend, address: frontend.replace(/^(tcp|tls):\/\//, ''), token: tokens.default, tenant: 'default', tokens,
      redis, redisCluster, registry, busybox, workers, frontendProcess, buildkit, stateDir, addWorker, stop: stopAll, env,
      openRedis: () => redisCluster
        ? new RedisClusterClient(redisCluster.nodes, { redisOptions: { password: redisCluster.password } })
        : new Redis(redis.url),
      addFrontend: async (listen = '127.0.0.1:0') => {
        const p = launch('buildyardd', appCommand('buildyardd'), join(stateDir, `frontend-${extraFrontends.length + 2}`), { BUILDYARD_LISTEN: listen });
        extraFrontends.push(p);
        const [, url] = await waitForLine(p, frontendLine);
        return { address: url.replace(/^(tcp|tls):\/\//, ''), process: p };
      },
      restartFrontend: async () => {
        frontendProcess.kill('SIGKILL');
        await frontendProcess.stop();
        // The BuildKit endpoint comes back where it was too (it may have been given port 0).
        frontendProcess = launchFrontend(frontend.replace(/^(tcp|tls):\/\//, ''), buildkit ? { BUILDYARD_BUILDKIT_LISTEN: buildkit.replace('tcp://', '') } : {});
        cluster.frontendProcess = frontendProcess;
        await waitForLine(frontendProcess, frontendLine);
        if (buildkit) await waitForLine(frontendProcess, buildkitLine);
      },
    };
    return cluster;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
