// `buildyard up` / `buildyard down`: an all-in-one cluster on this machine (Redis, registry,
// frontend, N workers, dashboard) as background processes, with all state under one directory.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { connect } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { cleanupUnder, freePort, generateEndpointPki, hasCommand, seedBusybox } from '@buildyard/hostkit';
import { BuilderStore } from './BuilderStore.js';
import type { InfoResponse } from '@buildyard/proto';
import { withBuilderConnection } from './connectBuilder.js';

export interface LocalClusterInfo {
  frontend: string;
  registry: string;
  dashboard: string;
  /** The dashboard with its read token: opening it signs the browser in (read-only). The read
   *  token is the dashboard's own, not the build token, so showing it grants no builds. */
  dashboardUrl: string;
  redis: string;
  stateDir: string;
  builder: string;
  workers: number;
  /** name -> pid, in start order */
  pids: Record<string, number>;
  dashboardAdminToken: string;
  /** The BuildKit endpoint (buildctl, docker buildx --driver remote) and the client's TLS files. */
  buildkit?: { addr: string; cacert: string; cert: string; key: string };
}

export const LOCAL_BUILDER = 'local';
const clusterFile = (stateDir: string) => join(stateDir, 'cluster.json');

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

/** The server programs `up` starts, found as installed packages (npm's resolution, not a path into a checkout). */
const PROGRAMS = { buildyardd: '@buildyard/buildyardd', worker: '@buildyard/worker', dashboard: '@buildyard/dashboard' } as const;

function programPath(pkg: string): string {
  let manifest: string;
  try {
    manifest = createRequire(import.meta.url).resolve(`${pkg}/package.json`);
  } catch {
    throw new Error(`buildyard up needs ${pkg} installed beside the CLI: install it (npm install ${pkg}) or run up from a Buildyard checkout after npm ci`);
  }
  const main = join(dirname(manifest), 'dist/main.js');
  if (!existsSync(main)) throw new Error(`${pkg} is not built (${main} is missing): run npm run build first`);
  return main;
}

function requireSystemParts(): Record<keyof typeof PROGRAMS, string> {
  const missing = [['redis-server', 'redis-server'], ['docker-registry', 'docker-registry'], ['runc', 'runc'], ['skopeo', 'skopeo']]
    .filter(([cmd]) => !hasCommand(cmd)).map(([, pkg]) => pkg);
  if (missing.length > 0) throw new Error(`missing system parts: ${missing.join(', ')}; install them with: sudo bash infra/dev/setup.sh`);
  if (process.getuid?.() !== 0) throw new Error('buildyard up runs workers with runc and overlayfs, which need root: run it as root');
  return { buildyardd: programPath(PROGRAMS.buildyardd), worker: programPath(PROGRAMS.worker), dashboard: programPath(PROGRAMS.dashboard) };
}

async function waitFor(what: string, probe: () => Promise<boolean>, logFile: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').trim().split('\n').slice(-5).join('\n  ') : '';
  throw new Error(`${what} did not come up within ${timeoutMs / 1000}s; its log (${logFile}) ends with:\n  ${tail}`);
}

function tcpAnswers(port: number): Promise<boolean> {
  return new Promise((done) => {
    const socket = connect(port, '127.0.0.1', () => { socket.destroy(); done(true); });
    socket.on('error', () => done(false));
  });
}

/** Reads the running cluster of a state dir, if its processes are still alive. */
export async function readLocalCluster(stateDir: string): Promise<LocalClusterInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(clusterFile(stateDir), 'utf8')) as LocalClusterInfo;
    if (!Object.values(info.pids).every(alive)) return undefined;
    // Clusters started before the dashboard had a read token of its own read with the build token.
    info.dashboardUrl ??= `${info.dashboard}/?token=${(await readFile(join(stateDir, 'token'), 'utf8')).trim()}`;
    return info;
  } catch {
    return undefined;
  }
}

export async function startLocalCluster(options: { stateDir: string; workers: number; store?: BuilderStore; onStep?(message: string): void }): Promise<LocalClusterInfo> {
  const stateDir = resolve(options.stateDir);
  const step = options.onStep ?? (() => {});
  const running = await readLocalCluster(stateDir);
  if (running) return running;
  const programs = requireSystemParts();
  if (existsSync(clusterFile(stateDir))) await stopLocalCluster(stateDir, { store: options.store });
  await mkdir(join(stateDir, 'logs'), { recursive: true });
  const pids: Record<string, number> = {};
  const launch = (name: string, command: string, args: string[], env: Record<string, string> = {}) => {
    const log = openSync(join(stateDir, 'logs', `${name}.log`), 'a');
    const child = spawn(command, args, { cwd: stateDir, detached: true, stdio: ['ignore', log, log], env: { ...process.env, ...env } });
    child.unref();
    pids[name] = child.pid!;
    return join(stateDir, 'logs', `${name}.log`);
  };
  try {
    const [redisPort, registryPort, frontendPort, dashboardPort, healthPort, buildkitPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    step('starting redis');
    await mkdir(join(stateDir, 'redis'), { recursive: true });
    // Redis always requires a password (a build must not reach queues, records or the cache
    // index): a fresh one per `up`, kept in 0600 files of the state dir, never in argv.
    const redisPassword = randomBytes(24).toString('hex');
    await writeFile(join(stateDir, 'redis-password'), redisPassword + '\n', { mode: 0o600 });
    await writeFile(join(stateDir, 'redis', 'redis.conf'), [
      `port ${redisPort}`, 'bind 127.0.0.1', `dir ${join(stateDir, 'redis')}`, 'appendonly yes', 'save ""', 'protected-mode yes', `requirepass ${redisPassword}`, '',
    ].join('\n'), { mode: 0o600 });
    const redisUrl = `redis://:${redisPassword}@127.0.0.1:${redisPort}`;
    const redisLog = launch('redis', 'redis-server', [join(stateDir, 'redis', 'redis.conf')]);
    step('starting the registry');
    await mkdir(join(stateDir, 'registry'), { recursive: true });
    await writeFile(join(stateDir, 'registry/config.yml'), `version: 0.1\nlog: { level: warn, accesslog: { disabled: true } }\nstorage:\n  filesystem: { rootdirectory: ${join(stateDir, 'registry/data')} }\n  delete: { enabled: true }\nhttp:\n  addr: 127.0.0.1:${registryPort}\n`);
    const registryLog = launch('registry', 'docker-registry', ['serve', join(stateDir, 'registry/config.yml')]);
    await waitFor('redis', () => tcpAnswers(redisPort), redisLog);
    await waitFor('the registry', async () => (await fetch(`http://127.0.0.1:${registryPort}/v2/`)).ok, registryLog);

    const token = randomBytes(24).toString('hex');
    const adminToken = randomBytes(24).toString('hex');
    const dashboardReadToken = randomBytes(24).toString('hex');
    await writeFile(join(stateDir, 'token'), token + '\n', { mode: 0o600 });
    const env = {
      BUILDYARD_REDIS_URL: redisUrl,
      BUILDYARD_SHARED_DIR: join(stateDir, 'shared'),
      BUILDYARD_SECRETS_KEY: randomBytes(32).toString('hex'),
      BUILDYARD_TOKENS: `local:${token}`,
      BUILDYARD_INSECURE_REGISTRIES: `127.0.0.1:${registryPort}`,
    };
    // The BuildKit endpoint serves TLS with client certificates, as buildkitd: a fresh CA per
    // `up`; the client certificate names the cluster's one tenant.
    step('generating the BuildKit endpoint\'s certificates');
    const pki = await generateEndpointPki(join(stateDir, 'buildkit'), { tenant: 'local', hosts: ['127.0.0.1'] });
    step('starting the frontend');
    const frontendLog = launch('buildyardd', process.execPath, [programs.buildyardd], {
      ...env, BUILDYARD_STATE_DIR: join(stateDir, 'frontend'), BUILDYARD_LISTEN: `127.0.0.1:${frontendPort}`, BUILDYARD_HEALTH_LISTEN: `127.0.0.1:${healthPort}`,
      BUILDYARD_BUILDKIT_LISTEN: `127.0.0.1:${buildkitPort}`, BUILDYARD_BUILDKIT_TLS_CERT: pki.serverCert, BUILDYARD_BUILDKIT_TLS_KEY: pki.serverKey, BUILDYARD_BUILDKIT_TLS_CLIENT_CA: pki.caCert,
    });
    for (let i = 1; i <= options.workers; i++) {
      step(`starting worker-${i}`);
      launch(`worker-${i}`, process.execPath, [programs.worker, 'serve'], { ...env, BUILDYARD_STATE_DIR: join(stateDir, `worker-${i}`), BUILDYARD_WORKER_ID: `worker-${i}` });
    }
    step('starting the dashboard');
    const dashboardLog = launch('dashboard', process.execPath, [programs.dashboard], {
      ...env, BUILDYARD_DASHBOARD_LISTEN: `127.0.0.1:${dashboardPort}`, BUILDYARD_DASHBOARD_READ_TOKEN: dashboardReadToken, BUILDYARD_DASHBOARD_ADMIN_TOKEN: adminToken,
    });
    await waitFor('the frontend', async () => (await fetch(`http://127.0.0.1:${healthPort}/readyz`)).ok, frontendLog);
    await waitFor('the dashboard', async () => (await fetch(`http://127.0.0.1:${dashboardPort}/healthz`)).ok, dashboardLog);
    await waitFor(`${options.workers} workers`, async () => (await workersAlive(frontendPort, token)) >= options.workers, join(stateDir, 'logs', 'worker-1.log'));

    step('seeding busybox into the registry');
    await seedBusybox({ host: `127.0.0.1:${registryPort}` });

    const store = options.store ?? new BuilderStore();
    await store.remove(LOCAL_BUILDER).catch(() => undefined);
    await store.create({ name: LOCAL_BUILDER, endpoint: `tcp://127.0.0.1:${frontendPort}`, tokenFile: join(stateDir, 'token') }, { use: true });
    const info: LocalClusterInfo = {
      frontend: `tcp://127.0.0.1:${frontendPort}`, registry: `127.0.0.1:${registryPort}`, dashboard: `http://127.0.0.1:${dashboardPort}`,
      dashboardUrl: `http://127.0.0.1:${dashboardPort}/?token=${dashboardReadToken}`,
      redis: redisUrl, stateDir, builder: LOCAL_BUILDER, workers: options.workers, pids, dashboardAdminToken: adminToken,
      buildkit: { addr: `tcp://127.0.0.1:${buildkitPort}`, cacert: pki.caCert, cert: pki.clientCert, key: pki.clientKey },
    };
    await writeFile(clusterFile(stateDir), JSON.stringify(info, null, 2) + '\n', { mode: 0o600 });
    return info;
  } catch (err) {
    await writeFile(clusterFile(stateDir), JSON.stringify({ pids }) + '\n').catch(() => undefined);
    await stopLocalCluster(stateDir, { store: options.store }).catch(() => undefined);
    throw err;
  }
}

/** Counts live workers the way any client sees them: the frontend's Info call. */
async function workersAlive(frontendPort: number, token: string): Promise<number> {
  const address = `127.0.0.1:${frontendPort}`;
  return withBuilderConnection({ name: LOCAL_BUILDER, endpoint: `tcp://${address}`, address, tls: false, token, source: 'flag' },
    async (conn) => (await conn.unary<InfoResponse>('count workers', (md, o, cb) => conn.control.info({}, md, o, cb), 5_000)).workers);
}

/** Stops every process of the cluster, then removes any mount and container left under the state dir. */
export async function stopLocalCluster(stateDir: string, options: { store?: BuilderStore } = {}): Promise<{ stopped: string[] }> {
  stateDir = resolve(stateDir);
  let pids: Record<string, number> = {};
  try { pids = (JSON.parse(await readFile(clusterFile(stateDir), 'utf8')) as LocalClusterInfo).pids ?? {}; } catch { /* nothing recorded */ }
  // Workers first (they hold mounts), redis last (everyone talks to it).
  const order = Object.keys(pids).sort((a, b) => rank(a) - rank(b));
  const stopped: string[] = [];
  for (const name of order) {
    const pid = pids[name];
    if (!alive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + 10_000;
    while (alive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    if (alive(pid)) process.kill(pid, 'SIGKILL');
    stopped.push(name);
  }
  cleanupUnder(stateDir);
  await rm(clusterFile(stateDir), { force: true });
  await (options.store ?? new BuilderStore()).remove(LOCAL_BUILDER).catch(() => undefined);
  return { stopped };
}

function rank(name: string): number {
  if (name.startsWith('worker')) return 0;
  return ['dashboard', 'buildyardd', 'registry', 'redis'].indexOf(name) + 1;
}
