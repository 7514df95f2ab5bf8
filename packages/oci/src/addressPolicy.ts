// The network policy of what a builder fetches for a build outside any RUN step's firewall: ADD
// <url> downloads, git sources, and the registries a build names (FROM, COPY --from=<image>,
// --cache-from/--cache-to, pushes). `refuse` is the build's egress rules (the worker's lists
// joined with the tenant's); these helpers make every connection open to exactly an address it
// allows: a name is resolved once, inside the connect, and the socket opens to the vetted
// address, so a DNS answer that changes between check and connect (rebinding) reaches nothing.
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { isIP, type LookupFunction } from 'node:net';
import { registryApiHost } from './reference.js';

/** Why `address` (an IP) may not be connected to for a build, or undefined to allow it. */
export type AddressPolicy = (address: string) => string | undefined;

/** The policy refused the address a connection would open to; `by` names the setting. */
export class AddressRefusedError extends Error {
  /** The redirect hop that led there, when it was not the URL asked for. */
  redirectedTo?: URL;
  constructor(readonly address: string, readonly by: string) {
    super(`the address ${address} is not reachable from builds (${by})`);
  }
}

/** Resolves (IPv4: builds have no IPv6) and answers only addresses the policy allows; when it
 *  allows none, fails with the first refused one. */
export function vettedLookup(refuse: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { all: true, family: 4 }, (err, found: LookupAddress[]) => {
      if (err) { callback(err, '', 4); return; }
      const allowed = found.filter((a) => refuse(a.address) === undefined);
      if (allowed.length === 0) {
        const first = found[0]?.address ?? hostname;
        callback(new AddressRefusedError(first, refuse(first) ?? 'worker.egress') as NodeJS.ErrnoException, '', 4);
        return;
      }
      if (options.all) (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, allowed);
      else callback(null, allowed[0]!.address, 4);
    });
  };
}

/** An address in a URL is never looked up by node:net: it is vetted as it is. */
export function refusedLiteral(hostname: string, refuse: AddressPolicy): AddressRefusedError | undefined {
  const literal = hostname.replace(/^\[|\]$/g, '');
  const by = isIP(literal) ? refuse(literal) : undefined;
  return by ? new AddressRefusedError(literal, by) : undefined;
}

/**
 * A fetch() whose every connection (redirect hops included: fetch follows them through the same
 * dispatcher) obeys `refuse`. It is undici's own fetch with an undici Agent: Node's built-in
 * fetch bundles another undici version, whose requests fail through that Agent (a 202
 * answer with an empty body: "invalid content-length header"). undici is loaded only here: the CLI, which fetches with no policy, never
 * loads it.
 */
export async function vettedFetch(refuse: AddressPolicy, exempt: (hostPort: string) => boolean = () => false): Promise<typeof fetch> {
  const undici = await loadUndici();
  const connect = undici.buildConnector({ lookup: vettedLookup(refuse) });
  const connectUnvetted = undici.buildConnector({});
  const dispatcher = new undici.Agent({
    connect: (options, callback) => {
      // `exempt`: a host:port the operator trusts (registry.trusted), as its URL names it.
      const port = options.port || (options.protocol === 'https:' ? '443' : '80');
      if (exempt(`${options.hostname.replace(/^\[|\]$/g, '').toLowerCase()}:${port}`)) { connectUnvetted(options, callback); return; }
      const refused = refusedLiteral(options.hostname, refuse);
      if (refused) { callback(refused, null); return; }
      connect(options, callback);
    },
  });
  // The same Request/Response API; undici's types differ from the ones Node's fetch is typed with.
  return ((input: string | URL, init?: RequestInit) => undici.fetch(input, { ...init, dispatcher } as Parameters<typeof undici.fetch>[1])) as unknown as typeof fetch;
}

/**
 * Loading undici makes its Agent the process's global dispatcher when Node's built-in fetch has
 * not made its own yet (Node makes it when its fetch first runs); Node's fetch would then send
 * through an Agent of another version, which fails some of its requests ("invalid
 * content-length header" on an empty 202). A fetch of a data: URL (no network) runs Node's first.
 */
async function loadUndici(): Promise<typeof import('undici')> {
  await fetch('data:,');
  return import('undici');
}

/**
 * A build's network policy for the registries it names, with the connections made under it:
 * connections open only to addresses `refuse` allows, but for the `trusted` registries' own
 * host:port. A trusted registry is trusted where it is, not where it points: its redirects and
 * token realms elsewhere obey `refuse` as any registry's. Registry clients that share one share
 * its connections (share one per tenant: TenantRegistryNetworks).
 */
export class RegistryNetwork {
  private readonly trusted: Set<string>;
  /** The trusted registries as connections name them: host:port, a port-less name on 80 and 443. */
  private readonly trustedHostPorts: Set<string>;
  private vetted?: Promise<typeof fetch>;
  private vettedButTrusted?: Promise<typeof fetch>;

  /** `trusted`: registries as image references name them (host:port). */
  constructor(readonly refuse: AddressPolicy, trusted: readonly string[]) {
    this.trusted = new Set(trusted.flatMap((h) => [h.toLowerCase(), registryApiHost(h).toLowerCase()]));
    this.trustedHostPorts = new Set([...this.trusted].flatMap((h) => (/:\d+$/.test(h) ? [h.replace(/^\[|\](?=:)/g, '')] : [`${h}:80`, `${h}:443`])));
  }

  /** The fetch() of requests of an operation on `registry`; one connection pool for the untrusted, one for the trusted. */
  fetchFor(registry: string): Promise<typeof fetch> {
    if (this.trusted.has(registry.toLowerCase()) || this.trusted.has(registryApiHost(registry).toLowerCase())) {
      return this.vettedButTrusted ??= vettedFetch(this.refuse, (hostPort) => this.trustedHostPorts.has(hostPort));
    }
    return this.vetted ??= vettedFetch(this.refuse);
  }
}

/**
 * One RegistryNetwork per tenant, so a tenant's builds reuse connections to the registries they
 * name (a new connection and TLS handshake per build otherwise). Made again once `maxAgeMs` old: the
 * policy holds this host's addresses as they were when it was made.
 */
export class TenantRegistryNetworks {
  private readonly byTenant = new Map<string, { network: RegistryNetwork; madeAt: number }>();

  constructor(private readonly make: (tenant: string) => RegistryNetwork, private readonly maxAgeMs = 60_000) {}

  get(tenant: string): RegistryNetwork {
    const now = Date.now();
    let kept = this.byTenant.get(tenant);
    if (!kept || now - kept.madeAt >= this.maxAgeMs) {
      kept = { network: this.make(tenant), madeAt: now };
      this.byTenant.set(tenant, kept);
    }
    return kept.network;
  }
}

/** The AddressRefusedError behind a failed fetch (undici wraps it as the cause), if any. */
export function addressRefusal(err: unknown): AddressRefusedError | undefined {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof AddressRefusedError) return e;
  }
  return undefined;
}
