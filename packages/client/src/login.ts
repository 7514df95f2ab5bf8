// `buildyard login`: check the credentials against the registry's /v2/, then store them in a
// docker-style config.json (DOCKER_CONFIG or ~/.docker/config.json) as `docker login` does.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { RegistryClient, dockerConfigPath, normalizeRegistryHost, parseWwwAuthenticate } from '@buildyard/oci';
import { ClientError, ExitCode, usageError } from './ClientError.js';

export interface LoginOptions {
  registry: string;
  username: string;
  password: string;
  /** config.json to update; default DOCKER_CONFIG or ~/.docker/config.json */
  configPath?: string;
  env?: NodeJS.ProcessEnv;
  timeoutMs?: number;
}

/** docker keeps Docker Hub under its historical v1 URL. */
function configKey(registry: string): string {
  return normalizeRegistryHost(registry) === 'docker.io' ? 'https://index.docker.io/v1/' : normalizeRegistryHost(registry);
}

/** Proves the credentials work: /v2/ with Basic auth, or a token from the Bearer realm. */
export async function verifyRegistryLogin(registry: string, username: string, password: string, timeoutMs = 15_000): Promise<void> {
  const base = new RegistryClient({ dockerConfig: false }).baseUrl(normalizeRegistryHost(registry) === 'docker.io' ? 'docker.io' : registry);
  const basic = `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
  const get = async (url: string | URL, authorization?: string): Promise<Response> => {
    try {
      return await fetch(url, { headers: authorization ? { authorization } : {}, signal: AbortSignal.timeout(timeoutMs) });
    } catch (err) {
      const e = err as Error & { cause?: Error };
      throw new ClientError(`login: cannot reach ${registry} at ${base}/v2/: ${e.cause?.message ?? e.message}; check the registry address`, ExitCode.Unreachable);
    }
  };
  const first = await get(`${base}/v2/`);
  await first.arrayBuffer().catch(() => undefined);
  if (first.status === 200) return; // open registry: nothing to prove, docker accepts it too
  if (first.status !== 401) throw new ClientError(`login: ${base}/v2/ answered HTTP ${first.status}; is ${registry} a registry?`, ExitCode.Unreachable);
  const challenges = parseWwwAuthenticate(first.headers.get('www-authenticate') ?? '');
  const bearer = challenges.find((c) => c.scheme === 'bearer');
  let res: Response;
  if (bearer?.params.realm) {
    const realm = new URL(bearer.params.realm);
    if (bearer.params.service) realm.searchParams.set('service', bearer.params.service);
    realm.searchParams.set('account', username);
    res = await get(realm, basic);
  } else {
    res = await get(`${base}/v2/`, basic);
  }
  await res.arrayBuffer().catch(() => undefined);
  if (res.status === 401 || res.status === 403) {
    throw new ClientError(`login: ${registry} refused the credentials of "${username}" (HTTP ${res.status}); check the user name and password`, ExitCode.Unreachable);
  }
  if (res.status !== 200) throw new ClientError(`login: ${registry} answered HTTP ${res.status} while checking the credentials; retry later`, ExitCode.Unreachable);
}

/** Verifies and stores the credentials; returns the config file written. */
export async function login(o: LoginOptions): Promise<string> {
  if (!o.username) throw usageError('login: no user name; pass -u USER');
  if (!o.password) throw usageError('login: empty password; pipe it with --password-stdin');
  await verifyRegistryLogin(o.registry, o.username, o.password, o.timeoutMs);
  const path = o.configPath ?? dockerConfigPath(o.env ?? process.env);
  let doc: Record<string, unknown> = {};
  try {
    doc = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new ClientError(`login: cannot read ${path}: ${(err as Error).message}; fix or remove the file`, ExitCode.Usage);
  }
  const auths = (doc.auths && typeof doc.auths === 'object' ? doc.auths : {}) as Record<string, unknown>;
  auths[configKey(o.registry)] = { auth: Buffer.from(`${o.username}:${o.password}`).toString('base64') };
  doc.auths = auths;
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  await writeFile(tmp, JSON.stringify(doc, null, '\t') + '\n', { mode: 0o600 });
  await chmod(tmp, 0o600);
  await rename(tmp, path);
  return path;
}
