// What a build may reach on the network, decided in one place for both ways a build reaches
// out: RUN steps (EgressNetworks writes these lists into a step's nftables sets, matched in the
// order check() applies them) and what the worker fetches for a build itself (ADD <url>, every
// redirect hop), which never passes through a step's firewall and so asks check() directly.
import { networkInterfaces } from 'node:os';
import { isIP } from 'node:net';
import { cidrContains, parseCidr, parseCidrList, parseIPv4, type Cidr } from './ipv4.js';
import type { EgressLists } from './types.js';

/** Always rejected: "this" network, loopback, link-local (169.254.169.254 and friends),
 *  multicast, reserved/broadcast, and the metadata endpoints outside link-local. */
export const builtinProtected = [
  '0.0.0.0/8', '127.0.0.0/8', '169.254.0.0/16', '224.0.0.0/4', '240.0.0.0/4',
  '100.100.100.200/32', // Alibaba Cloud metadata
  '168.63.129.16/32', // Azure wire server
];

/**
 * The private ranges (RFC 1918 and carrier-grade NAT's RFC 6598): where a cluster's frontends,
 * dashboard, workers, pods, Services and Docker networks live, and the LAN of the hosts around
 * them. Denied by default (worker.egress.denyPrivate), so a build reaches the internet and none
 * of the cluster, whatever addresses a deployment was given.
 */
export const privateRanges = ['10.0.0.0/8', '172.16.0.0/12', '192.168.0.0/16', '100.64.0.0/10'];

/** Says what opens a private address, as the operator may mean to (an internal package mirror). */
const privateRefusal = 'worker.egress.denyPrivate, a private range; worker.egress.allow opens an address';

export interface EgressRuleLists {
  /** Never reachable, whatever `allow` says: the cluster's services (the host's own addresses
   *  and the built-in ranges are added). */
  protect: string[];
  /** Not reachable unless also in `allow` (`0.0.0.0/0` here makes `allow` an allowlist). */
  deny: string[];
  /** Exceptions to `deny`. */
  allow: string[];
  /** Deny `privateRanges` too (`allow` makes exceptions, as to `deny`). */
  denyPrivate?: boolean;
}

/** `by` names the setting that refused, for the user's error message. */
export type EgressVerdict = { allowed: true } | { allowed: false; by: string };

/** The worker's lists joined with one tenant's, at one moment (the host's addresses change). */
export interface TenantEgressRules {
  protect: Cidr[];
  deny: Cidr[];
  allow: Cidr[];
  /** May a build of this tenant open a connection to `address` (an IP address, not a name)? */
  check(address: string): EgressVerdict;
  /** check() as a connection policy: the setting that refuses `address`, or undefined. */
  refuse(address: string): string | undefined;
}

export class EgressRules {
  private readonly protect: Cidr[];
  private readonly deny: Cidr[];
  private readonly denyPrivate: Cidr[];
  private readonly allow: Cidr[];

  constructor(lists: EgressRuleLists) {
    this.protect = parseCidrList([...builtinProtected, ...lists.protect], 'protected egress ranges');
    this.deny = parseCidrList(lists.deny, 'egress deny list');
    this.denyPrivate = lists.denyPrivate ? parseCidrList(privateRanges, 'private ranges') : [];
    this.allow = parseCidrList(lists.allow, 'egress allow list');
  }

  /** Throws a one-line error naming the list when a tenant's entry is not IPv4. */
  forTenant(tenant: EgressLists = {}): TenantEgressRules {
    const tenantDeny = parseCidrList(tenant.deny ?? [], 'tenant egress deny list');
    const tenantAllow = parseCidrList(tenant.allow ?? [], 'tenant egress allow list');
    const within = (list: Cidr[], ip: number) => list.some((c) => cidrContains(c, ip));
    // Leaving out what a listed range holds already (the steps' gateways in the pool, above
    // all) keeps a step's table the same text while other steps come and go, so a spare
    // network made with it serves the next step as it is.
    const protect = [...this.protect, ...hostAddresses().filter((a) => !within(this.protect, a.base))];
    const deny = [...this.deny, ...this.denyPrivate, ...tenantDeny];
    const allow = [...this.allow, ...tenantAllow];
    const rules: TenantEgressRules = {
      protect, deny, allow,
      refuse: (address) => { const verdict = rules.check(address); return verdict.allowed ? undefined : verdict.by; },
      check: (address) => {
        // Builds have no IPv6 (a step's namespace has no IPv6 address; its table drops IPv6).
        const ip = isIP(address) === 4 ? parseIPv4(address) : undefined;
        if (ip === undefined) return { allowed: false, by: 'worker.egress: builds reach IPv4 addresses only' };
        // Same order as the step's nftables chain: protect, then allow, then deny.
        if (within(protect, ip)) return { allowed: false, by: 'worker.egress' };
        if (within(allow, ip)) return { allowed: true };
        if (within(this.deny, ip)) return { allowed: false, by: 'worker.egress.deny' };
        if (within(this.denyPrivate, ip)) return { allowed: false, by: privateRefusal };
        if (within(tenantDeny, ip)) return { allowed: false, by: 'worker.egress.tenantDeny' };
        return { allowed: true };
      },
    };
    return rules;
  }
}

/** Every IPv4 address of this host, read per decision: interfaces come and go. */
function hostAddresses(): Cidr[] {
  const out: Cidr[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const c = a.family === 'IPv4' ? parseCidr(a.address) : undefined;
      if (c) out.push(c);
    }
  }
  return out;
}
