// A real Buildyard cluster for e2e tests: Redis, a registry seeded with busybox, one frontend
// and N workers as separate processes (from TypeScript sources, so no build is needed), all
// under the testkit watchdog.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRedis, startRegistry, type RedisService, type RegistryService } from './services.js';
import { cleanupUnder, seedBusybox, type SeededImage } from '@buildyard/hostkit';
import { supervise, type SupervisedProcess } from './supervise.js';

const repoRoot = resolve(fileURLToPath(import.meta.url), '../../../..');
const tsxArgs = ['--conditions=source', '--import', 'tsx'];

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
  redis: RedisService;
  registry: RegistryService;
  busybox: SeededImage;
  workers: ClusterWorker[];
  frontendProcess: SupervisedProcess;
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
  const [redis, registry] = await Promise.all([startRedis({ appendOnly: true }), options.registry ?? startRegistry()]);
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
    ...options.env,
  };
  const launchFrontend = (listen: string) => supervise('buildyardd', process.execPath, [...tsxArgs, join(repoRoot, 'apps/buildyardd/src/main.ts')], {
    cwd: repoRoot, env: { ...env, BUILDYARD_STATE_DIR: join(stateDir, 'frontend'), BUILDYARD_LISTEN: listen },
  });
  let frontendProcess = launchFrontend('127.0.0.1:0');
  const extraFrontends: SupervisedProcess[] = [];
  const workers: ClusterWorker[] = [];
  let counter = 0;
  const addWorker = async (id = `worker-${++counter}`): Promise<ClusterWorker> => {
    const workerState = join(stateDir, id);
    const p = supervise(id, process.execPath, [...tsxArgs, join(repoRoot, 'apps/worker/src/main.ts'), 'serve'], {
      cwd: repoRoot, env: { ...env, BUILDYARD_STATE_DIR: workerState, BUILDYARD_WORKER_ID: id },
    });
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
    await Promise.all(Array.from({ length: options.workers ?? 2 }, () => addWorker()));
    const cluster: Cluster = {
      frontend, address: frontend.replace(/^(tcp|tls):\/\//, ''), token: tokens.default, tenant: 'default', tokens,
      redis, registry, busybox, workers, frontendProcess, stateDir, addWorker, stop: stopAll, env,
      addFrontend: async (listen = '127.0.0.1:0') => {
        const p = supervise('buildyardd', process.execPath, [...tsxArgs, join(repoRoot, 'apps/buildyardd/src/main.ts')], {
          cwd: repoRoot, env: { ...env, BUILDYARD_STATE_DIR: join(stateDir, `frontend-${extraFrontends.length + 2}`), BUILDYARD_LISTEN: listen },
        });
        extraFrontends.push(p);
        const [, url] = await waitForLine(p, frontendLine);
        return { address: url.replace(/^(tcp|tls):\/\//, ''), process: p };
      },
      restartFrontend: async () => {
        frontendProcess.kill('SIGKILL');
        await frontendProcess.stop();
        frontendProcess = launchFrontend(frontend.replace(/^(tcp|tls):\/\//, ''));
        cluster.frontendProcess = frontendProcess;
        await waitForLine(frontendProcess, frontendLine);
      },
    };
    return cluster;
  } catch (err) {
    await stopAll();
    throw err;
  }
}
