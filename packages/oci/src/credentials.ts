// Registry credentials from a docker-style config.json (`auths` entries with `auth` base64 or
// username/password, or `identitytoken`). Credential helpers (credsStore/credHelpers) are not run.
import { readFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';

export interface Credentials {
  username?: string;
  password?: string;
  /** OAuth2 refresh token (`docker login` with an identity provider). */
  identityToken?: string;
  /** A bearer token to send as is. */
  registryToken?: string;
}

/** Maps a registry host to its credentials. */
export type CredentialMap = Record<string, Credentials>;

/** A registry login as it travels from the client (Solve) through the frontend to workers. */
export interface RegistryLogin {
  registry: string;
  username: string;
  password: string;
  identityToken: string;
}

/** The credential map of a build's logins: an identity token wins over username/password. */
export function credentialsFromLogins(logins: readonly RegistryLogin[]): CredentialMap {
  return Object.fromEntries(logins.map((a) => [a.registry, a.identityToken ? { identityToken: a.identityToken } : { username: a.username, password: a.password }]));
}

interface DockerConfigAuth {
  auth?: string;
  username?: string;
  password?: string;
  identitytoken?: string;
  registrytoken?: string;
}

/** `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. */
export function dockerConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.DOCKER_CONFIG || join(homedir(), '.docker'), 'config.json');
}

/** Reduces `https://index.docker.io/v1/`, `http://host:5000/path` etc. to the host key we look up by. */
export function normalizeRegistryHost(key: string): string {
  let k = key.trim().toLowerCase().replace(/^[a-z]+:\/\//, '');
  k = k.split('/')[0];
  if (k === 'index.docker.io' || k === 'registry-1.docker.io' || k === 'registry.hub.docker.com') return 'docker.io';
  return k;
}

/** Parses the text of a config.json; a malformed file gives one line naming `source`. */
export function parseDockerConfig(text: string, source = 'docker config'): CredentialMap {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    throw new Error(`cannot parse ${source}: ${(err as Error).message}; fix or remove the file`);
  }
  const out: CredentialMap = {};
  const auths = (doc as { auths?: unknown } | null)?.auths;
  if (!auths || typeof auths !== 'object') return out;
  for (const [key, raw] of Object.entries(auths as Record<string, DockerConfigAuth>)) {
    if (!raw || typeof raw !== 'object') continue;
    const c: Credentials = {};
    if (raw.auth) {
      const decoded = Buffer.from(raw.auth, 'base64').toString('utf8');
      const i = decoded.indexOf(':');
      if (i < 0) throw new Error(`invalid "auth" for ${key} in ${source}: expected base64 of username:password; run docker login again`);
      c.username = decoded.slice(0, i);
      c.password = decoded.slice(i + 1);
    }
    if (raw.username) c.username = raw.username;
    if (raw.password) c.password = raw.password;
    if (raw.identitytoken) c.identityToken = raw.identitytoken;
    if (raw.registrytoken) c.registryToken = raw.registrytoken;
    if (Object.keys(c).length > 0) out[normalizeRegistryHost(key)] = c;
  }
  return out;
}

/** Reads credentials from `path` (default: DOCKER_CONFIG or ~/.docker/config.json); a missing file is empty. */
export async function loadDockerConfig(path: string = dockerConfigPath()): Promise<CredentialMap> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return {};
    throw err;
  }
  return parseDockerConfig(text, path);
}

export function credentialsFor(map: CredentialMap, registry: string): Credentials | undefined {
  return map[normalizeRegistryHost(registry)];
}
