// Real Redis and a real OCI registry for tests: through testcontainers when a Docker engine
// answers, otherwise Debian's redis-server and docker-registry as local processes on free
// loopback ports with temporary state.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:net';
import bcrypt from 'bcryptjs';
import { freePort, requireCommand } from '@buildyard/hostkit';
import { supervise, waitUntilReady } from './supervise.js';

export interface RedisService {
  /** redis://:PASSWORD@127.0.0.1:PORT: Redis always requires a password, as in production. */
  url: string;
  host: string;
  port: number;
  password: string;
  /** Directory holding this instance's data (AOF when enabled). */
  dataDir: string;
  stop(): Promise<void>;
  /** Stops and starts the same instance on the same port and data (for restart tests). */
  restart(): Promise<void>;
}

export interface RegistryService {
  /** 127.0.0.1:PORT, the form image references use */
  host: string;
  /** http://127.0.0.1:PORT */
  url: string;
  stop(): Promise<void>;
}

async function dockerEngineReachable(): Promise<boolean> {
  if (process.env.BUILDYARD_TESTKIT_LOCAL === '1') return false;
  if (!process.env.DOCKER_HOST && !(await import('node:fs')).existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

/** Up means it answers; AUTH first, since every test Redis requires a password. */
function redisPing(port: number, password: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let reply = '';
    socket.setTimeout(1_000);
    socket.once('connect', () => socket.write(`AUTH ${password}\r\nPING\r\n`));
    socket.on('data', (d) => {
      reply += d.toString();
      if (reply.includes('+PONG') || reply.startsWith('-')) { socket.destroy(); resolve(reply.includes('+PONG')); }
    });
    socket.once('error', () => resolve(false));
    socket.once('timeout', () => { socket.destroy(); resolve(false); });
  });
}

const redisUrl = (password: string, port: number) => `redis://:${password}@127.0.0.1:${port}`;

/**
 * Starts a server on a port freePort() found. Between that port's release and the server's bind
 * another process may take it (a listener, or a connection's local port), and the server exits
 * before it is ready: it is then started again on another port, a few times.
 */
export async function onFreePort<T>(start: (port: number) => Promise<T>, attempts = 4): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await start(await freePort());
    } catch (err) {
      if (attempt >= attempts || !/exited before it was ready/.test((err as Error).message)) throw err;
    }
  }
}

export async function startRedis(options: { appendOnly?: boolean } = {}): Promise<RedisService> {
  // Hex: safe inside a URL without escaping.
  const password = randomBytes(24).toString('hex');
  if (await dockerEngineReachable()) return startRedisContainer(options, password);
  requireCommand('redis-server', 'redis-server');
  const dataDir = await mkdtemp(join(tmpdir(), 'buildyard-redis-'));
  // The password goes in a 0600 config file, not argv, which any local user can read in /proc.
  const configPath = join(dataDir, 'redis.conf');
  let port = 0;
  const launch = async () => {
    const service = supervise('redis-server', 'redis-server', [configPath]);
    await waitUntilReady(service, () => redisPing(port, password));
    return service;
  };
  let current = await onFreePort(async (free) => {
    port = free;
    await writeFile(configPath, [
      `port ${port}`, 'bind 127.0.0.1', `dir ${dataDir}`, 'save ""', `appendonly ${options.appendOnly ? 'yes' : 'no'}`,
      'protected-mode yes', 'daemonize no', `requirepass ${password}`, '',
    ].join('\n'), { mode: 0o600 });
    return launch();
  });
  return {
    url: redisUrl(password, port),
    host: '127.0.0.1',
    port,
    password,
    dataDir,
    async stop() {
      await current.stop();
      await rm(dataDir, { recursive: true, force: true });
    },
    async restart() {
      await current.stop();
      current = await launch();
    },
  };
}

async function startRedisContainer(options: { appendOnly?: boolean }, password: string): Promise<RedisService> {
  const { RedisContainer } = await import('@testcontainers/redis');
  const container = await new RedisContainer('redis:7')
    // withPassword appends --requirepass to the command.
    .withCommand(['redis-server', '--appendonly', options.appendOnly ? 'yes' : 'no', '--protected-mode', 'yes'])
    .withPassword(password)
    .start();
  const port = container.getMappedPort(6379);
  return {
    url: redisUrl(password, port),
    host: '127.0.0.1',
    port,
    password,
    dataDir: '/data',
    stop: async () => { await container.stop(); },
    restart: async () => { await container.restart(); },
  };
}

export interface RegistryOptions {
  /** htpasswd (Basic) auth with this one user: /v2/ answers 401 without it. Always a local
   *  docker-registry process (the container path has no htpasswd file to mount). */
  login?: { user: string; password: string };
}

export async function startRegistry(options: RegistryOptions = {}): Promise<RegistryService> {
  if (!options.login && await dockerEngineReachable()) {
    const { GenericContainer, Wait } = await import('testcontainers');
    const container = await new GenericContainer('registry:2').withExposedPorts(5000).withWaitStrategy(Wait.forHttp('/v2/', 5000)).start();
    const host = `127.0.0.1:${container.getMappedPort(5000)}`;
    return { host, url: `http://${host}`, stop: async () => { await container.stop(); } };
  }
  requireCommand('docker-registry', 'docker-registry');
  const stateDir = await mkdtemp(join(tmpdir(), 'buildyard-registry-'));
  const configPath = join(stateDir, 'config.yml');
  const htpasswd = join(stateDir, 'htpasswd');
  if (options.login) await writeFile(htpasswd, `${options.login.user}:${bcrypt.hashSync(options.login.password, 5)}\n`);
  let port = 0;
  const service = await onFreePort(async (free) => {
    port = free;
    await writeFile(configPath, [
      'version: 0.1',
      'log: { level: error, accesslog: { disabled: true } }',
      'storage:',
      `  filesystem: { rootdirectory: ${join(stateDir, 'data')} }`,
      '  delete: { enabled: true }',
      '  maintenance: { uploadpurging: { enabled: false } }',
      ...(options.login ? [`auth: { htpasswd: { realm: buildyard-test, path: ${htpasswd} } }`] : []),
      'http:',
      `  addr: 127.0.0.1:${port}`,
      '',
    ].join('\n'));
    const started = supervise('docker-registry', 'docker-registry', ['serve', configPath]);
    await waitUntilReady(started, async () => (await fetch(`http://127.0.0.1:${port}/v2/`)).status === (options.login ? 401 : 200));
    return started;
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    host: `127.0.0.1:${port}`,
    url,
    async stop() {
      await service.stop();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}
