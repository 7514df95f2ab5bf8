// Only the credentials of registries this build touches go to the server: the build's tags,
// image outputs, registry cache refs and the images the Dockerfile names (FROM / COPY --from).
import { credentialsFor, normalizeRegistryHost, parseReference, type CredentialMap } from '@buildyard/oci';
import type { KeyValueSpec, RegistryAuth } from '@buildyard/proto';

/** Image references named by FROM and COPY/ADD --from= lines, minus stage names, scratch and ${ARG}s. Best effort. */
export function imageRefsInDockerfile(text: string): string[] {
  const stages = new Set<string>();
  const refs: string[] = [];
  // Join backslash continuations so flags split over lines are still seen.
  const lines = text.replace(/\\\r?\n/g, ' ').split(/\r?\n/);
  for (const raw of lines) {
    const line = raw.trim();
    const from = /^from\s+(.*)$/i.exec(line);
    if (from) {
      const words = from[1].split(/\s+/).filter((w) => !w.startsWith('--'));
      const image = words[0];
      if (words.length >= 3 && words[1].toLowerCase() === 'as') stages.add(words[2].toLowerCase());
      if (image && !stages.has(image.toLowerCase())) refs.push(image);
      continue;
    }
    const copy = /^(?:copy|add)\s.*?--from=(\S+)/i.exec(line);
    if (copy && !stages.has(copy[1].toLowerCase()) && !/^\d+$/.test(copy[1])) refs.push(copy[1]);
    const mount = /--mount=\S*from=([^,\s]+)/i.exec(line);
    if (mount && !stages.has(mount[1].toLowerCase())) refs.push(mount[1]);
  }
  return refs.filter((r) => r !== 'scratch' && !r.includes('$'));
}

export interface AuthScope {
  tags: readonly string[];
  outputs: readonly KeyValueSpec[];
  cacheFrom: readonly KeyValueSpec[];
  cacheTo: readonly KeyValueSpec[];
  dockerfile: string;
}

/** Registry hosts (as config.json keys are normalised) that the build reads from or writes to. */
export function registriesOf(scope: AuthScope): string[] {
  const names: string[] = [...scope.tags, ...imageRefsInDockerfile(scope.dockerfile)];
  for (const o of scope.outputs) if (o.attrs.name) names.push(...o.attrs.name.split(',').map((s) => s.trim()).filter(Boolean));
  for (const c of [...scope.cacheFrom, ...scope.cacheTo]) if (c.type === 'registry' && c.attrs.ref) names.push(c.attrs.ref);
  const hosts = new Set<string>();
  for (const n of names) {
    try {
      hosts.add(normalizeRegistryHost(parseReference(n).registry));
    } catch {
      // Not a reference (e.g. an unexpanded name): nothing to authenticate.
    }
  }
  return [...hosts].sort();
}

export function selectRegistryAuth(scope: AuthScope, credentials: CredentialMap): RegistryAuth[] {
  const out: RegistryAuth[] = [];
  for (const host of registriesOf(scope)) {
    const c = credentialsFor(credentials, host);
    if (!c) continue;
    out.push({ registry: host, username: c.username ?? '', password: c.password ?? c.registryToken ?? '', identityToken: c.identityToken ?? '' });
  }
  return out;
}
