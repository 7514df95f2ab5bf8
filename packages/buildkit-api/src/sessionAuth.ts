import { expandWord, parse } from '@buildyard/dockerfile';
import { parseReference, registryApiHost } from '@buildyard/oci';
import { sessionAuth, type KeyValueSpec, type RegistryAuth } from '@buildyard/proto';
import { GrpcCallError } from './grpcOverHttp2.js';
import type { ClientSession } from './SessionManager.js';
import { unaryCall } from './unaryCall.js';

const CREDENTIALS = '/moby.filesync.v1.Auth/Credentials';
const codec = { encode: (m: sessionAuth.CredentialsRequest) => sessionAuth.CredentialsRequest.encode(m).finish(), decode: (b: Uint8Array) => sessionAuth.CredentialsResponse.decode(b) };
const UNIMPLEMENTED = 12;

const registryOf = (ref: string): string | undefined => {
  try { return parseReference(ref).registry; } catch { return undefined; }
};

/**
 * The registries a build talks to: its FROM images (build args and global ARG defaults
 * expanded; stage names left out), pushed image names and registry cache refs. The session
 * answers credentials per host, so the hosts are found before the build, as BuildKit's
 * resolver asks for each host it meets.
 */
export function registryHosts(dockerfile: string, filename: string, buildArgs: Record<string, string>, outputs: KeyValueSpec[], caches: KeyValueSpec[]): string[] {
  const hosts = new Set<string>();
  const add = (ref: string | undefined) => { const r = ref && registryOf(ref); if (r) hosts.add(r); };
  try {
    const df = parse(dockerfile, { file: filename });
    const env = new Map<string, string>();
    for (const arg of df.metaArgs) {
      for (const a of arg.args) {
        const eq = a.indexOf('=');
        const name = eq < 0 ? a : a.slice(0, eq);
        const value = buildArgs[name] ?? (eq < 0 ? undefined : a.slice(eq + 1));
        if (value !== undefined) env.set(name, value);
      }
    }
    const stages = new Set<string>();
    for (const stage of df.stages) {
      let base: string | undefined;
      try { base = expandWord(stage.from.args[0] ?? '', env); } catch { /* the planner reports it */ }
      if (base && base !== 'scratch' && !stages.has(base.toLowerCase())) add(base);
      if (stage.name) stages.add(stage.name);
    }
  } catch { /* a Dockerfile that does not parse fails in the planner with its own message */ }
  for (const o of outputs) if ((o.type === 'image' || o.type === 'registry') && o.attrs.name) for (const n of o.attrs.name.split(',')) add(n.trim());
  for (const c of caches) if (c.type === 'registry') add(c.attrs.ref);
  return [...hosts];
}

/**
 * Asks the client's session (buildctl's and buildx's docker config) for each registry's
 * credentials, as BuildKit's resolver does; hosts it has none for are left out (anonymous).
 */
export async function fetchRegistryAuth(session: ClientSession, registries: string[], signal: AbortSignal): Promise<RegistryAuth[]> {
  if (registries.length === 0 || !session.supports(CREDENTIALS)) return [];
  const found: RegistryAuth[] = [];
  for (const registry of registries) {
    try {
      // BuildKit asks for the API host (registry-1.docker.io for Docker Hub), which the client maps to its config's key.
      const answer = await unaryCall(session, CREDENTIALS, {}, codec, sessionAuth.CredentialsRequest.fromPartial({ Host: registryApiHost(registry) }), signal);
      if (!answer?.Secret) continue;
      // No user name: the secret is an identity token, as in BuildKit's authprovider.
      found.push({ registry, username: answer.Username, password: answer.Username ? answer.Secret : '', identityToken: answer.Username ? '' : answer.Secret });
    } catch (err) {
      if (!(err instanceof GrpcCallError && err.code === UNIMPLEMENTED)) throw new Error(`reading registry credentials for ${registry.slice(0, 100)} from the client: ${(err as Error).message}`);
    }
  }
  return found;
}
