// Which registry repositories a tenant's build may name: base images, COPY --from=<image>, RUN
// --mount from=<image>, docker-image:// contexts, pushed names, --cache-from/--cache-to refs.
// A registry the operator shares between tenants (the cluster's own, which has no accounts)
// would otherwise let any tenant read, overwrite or poison another's images and caches: on the
// hosts of registry.tenantScoped a tenant has the repositories under `<tenant>/`, and may pull
// (never push) under the prefixes of registry.sharedReadOnly (base images the operator seeds).
// The shared blob store's repository (blobStore.type=registry: every tenant's layers and
// contexts) is no build's to name, on any host. The frontend asks before any work (naming the
// flag or Dockerfile line), and a build's RegistryClient asks again before every operation.
import { normalizeRegistryHost } from './credentials.js';
import { InvalidReferenceError, parseReference, type RepositoryReference } from './reference.js';

export type RepositoryAccess = 'pull' | 'push';

/** What a build's RegistryClient asks before each operation; throws RepositoryRefusedError. */
export type RepositoryGuard = (repository: RepositoryReference, access: RepositoryAccess) => void;

export interface RepositoryPolicyOptions {
  /** registry.tenantScoped: registries (host[:port]) where a tenant may only use `<tenant>/…`. */
  tenantScoped?: readonly string[];
  /** registry.sharedReadOnly: `host[:port]/prefix` every tenant may pull from, on a tenantScoped host. */
  sharedReadOnly?: readonly string[];
  /** blobStore.repository when blobStore.type=registry. */
  blobRepository?: string;
}

/** A build named a repository the policy refuses it; the message is the one line to show. */
export class RepositoryRefusedError extends Error {
  /** The planner reports an image resolution failing with this code as it is, at its line. */
  readonly code = 'REPOSITORY_REFUSED';
  constructor(message: string) {
    super(message);
    this.name = 'RepositoryRefusedError';
  }
}

/** distribution/reference's path component: a tenant's name must be one to name its namespace. */
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;

/** A registry host; a port-less one is reached on 80 or 443, so it matches either. */
interface Host { name: string; ports: readonly string[] }

function parseHost(hostPort: string): Host {
  const normalized = normalizeRegistryHost(hostPort);
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(normalized);
  if (!m || !m[1]) throw new Error(`"${hostPort.slice(0, 100)}" is not host[:port]`);
  return { name: m[1], ports: m[2] ? [m[2]] : ['80', '443'] };
}

const sameHost = (a: Host, b: Host) => a.name === b.name && a.ports.some((p) => b.ports.includes(p));

/** The tenant as messages quote it (a name from a token file or a certificate: cut short). */
const quoted = (tenant: string) => JSON.stringify(tenant.length > 64 ? `${tenant.slice(0, 64)}…` : tenant);

export class RepositoryPolicy {
  private readonly scoped: Host[];
  private readonly shared: Array<{ host: Host; prefix: string }>;
  private readonly blobRepository?: string;

  /** Throws one line naming the option for an entry it cannot read. */
  constructor(options: RepositoryPolicyOptions = {}) {
    this.scoped = (options.tenantScoped ?? []).map((entry) => {
      if (entry.includes('/')) throw new Error(`registry.tenantScoped: "${entry.slice(0, 100)}" is not a registry: list host[:port] entries (repositories go in registry.sharedReadOnly)`);
      try { return parseHost(entry); } catch (err) { throw new Error(`registry.tenantScoped: ${(err as Error).message}`); }
    });
    this.shared = (options.sharedReadOnly ?? []).map((entry) => {
      const slash = entry.indexOf('/');
      const prefix = entry.slice(slash + 1).replace(/\/+$/, '');
      if (slash <= 0 || !prefix) throw new Error(`registry.sharedReadOnly: "${entry.slice(0, 100)}" is not host[:port]/prefix (e.g. registry.example:5000/library)`);
      const host = parseHost(entry.slice(0, slash));
      if (!this.scoped.some((s) => sameHost(s, host))) {
        throw new Error(`registry.sharedReadOnly: "${entry.slice(0, 100)}" is not on a registry of registry.tenantScoped: list its host there too (on other registries every tenant may use every repository)`);
      }
      return { host, prefix };
    });
    if (options.blobRepository) this.blobRepository = parseReference(options.blobRepository, { defaultTag: false }).repository;
  }

  /** Whether the policy can refuse anything (else builds need not ask). */
  get refusesAny(): boolean {
    return this.scoped.length > 0 || this.blobRepository !== undefined;
  }

  /** Why `tenant`'s build may not `access` the repository, as one line naming it; undefined when it may. */
  refusal(tenant: string, repo: RepositoryReference, access: RepositoryAccess): string | undefined {
    const reason = this.reason(tenant, repo, access);
    return reason && `${repo.registry}/${repo.repository}: ${reason}`;
  }

  /**
   * Throws RepositoryRefusedError when `tenant`'s build may not `access` what `reference` names;
   * `what` replaces the repository at the start of the message (the flag that named it). A
   * reference that does not parse is left to the code that uses it, which reports it.
   */
  check(tenant: string, reference: string | RepositoryReference, access: RepositoryAccess, what?: string): void {
    let repo: RepositoryReference;
    try { repo = typeof reference === 'string' ? parseReference(reference, { defaultTag: false }) : reference; } catch (err) {
      if (err instanceof InvalidReferenceError) return;
      throw err;
    }
    const reason = this.reason(tenant, repo, access);
    if (reason) throw new RepositoryRefusedError(`${what ?? `${repo.registry}/${repo.repository}`}: ${reason}`);
  }

  /** The guard of a build's RegistryClient (undefined when nothing is refused). */
  guard(tenant: string): RepositoryGuard | undefined {
    if (!this.refusesAny) return undefined;
    return (repo, access) => this.check(tenant, repo, access);
  }

  private reason(tenant: string, repo: RepositoryReference, access: RepositoryAccess): string | undefined {
    // By path on every host: another name of the same registry (its address, a shorter service
    // name) reaches the same repository.
    if (this.blobRepository !== undefined && repo.repository === this.blobRepository) {
      return 'this is the builder\'s shared blob store (blobStore.repository), which holds every tenant\'s layers and contexts: no build may pull from or push to it; use a repository of your own';
    }
    let host: Host;
    try { host = parseHost(repo.registry); } catch { return undefined; }
    if (!this.scoped.some((s) => sameHost(s, host))) return undefined;
    const named = PATH_COMPONENT.test(tenant);
    if (named && repo.repository.startsWith(`${tenant}/`)) return undefined;
    const shared = this.shared.filter((s) => sameHost(s.host, host));
    const readOnly = shared.find((s) => repo.repository === s.prefix || repo.repository.startsWith(`${s.prefix}/`));
    if (readOnly && access === 'pull') return undefined;
    const own = `${repo.registry}/${tenant}/`;
    const sharedList = shared.map((s) => `${repo.registry}/${s.prefix}/`).join(', ');
    if (!named) {
      return `tenant ${quoted(tenant)} has no repositories on this shared registry (registry.tenantScoped): a tenant's repositories are under its name, which must be lowercase letters and digits with . _ - between them${sharedList && access === 'pull' ? `; pull from ${sharedList} (registry.sharedReadOnly)` : ''}; ask the operator to rename the tenant`;
    }
    if (readOnly) return `every tenant may pull from ${repo.registry}/${readOnly.prefix}/ but no build may push there (registry.sharedReadOnly); push to ${own}…`;
    return `tenant ${quoted(tenant)} may only use repositories under ${own} on this shared registry (registry.tenantScoped)${sharedList ? ` and pull from ${sharedList} (registry.sharedReadOnly)` : ''}; ${access === 'push' ? 'push to' : 'pull from'} ${own}…`;
  }
}
