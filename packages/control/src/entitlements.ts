// BuildKit's entitlements: RUN --network=host (and a build's --network host) needs
// `network.host`, RUN --security=insecure needs `security.insecure`. buildkitd grants them with
// --allow-insecure-entitlement for the whole daemon; a Buildyard server grants them per tenant
// (auth.entitlements), since one server builds for several tenants. None is granted by default.
// As in BuildKit, a build uses one only if its client also asks for it (--allow).
import type { BuildPlan } from '@buildyard/graph';

export const ENTITLEMENTS = ['network.host', 'security.insecure'] as const;
export type Entitlement = (typeof ENTITLEMENTS)[number];

/** `tenant:entitlement` entries (`*:` for every tenant) -> what a tenant is granted. */
export function parseEntitlements(entries: readonly string[]): (tenant: string) => ReadonlySet<Entitlement> {
  const granted = new Map<string, Set<Entitlement>>();
  for (const entry of entries) {
    const colon = entry.lastIndexOf(':');
    const tenant = entry.slice(0, colon);
    const name = entry.slice(colon + 1);
    if (colon <= 0 || !(ENTITLEMENTS as readonly string[]).includes(name)) {
      throw new Error(`auth.entitlements: "${entry.slice(0, 80)}" is not tenant:entitlement with entitlement ${ENTITLEMENTS.join(' or ')} (e.g. alice:network.host, *:security.insecure)`);
    }
    const set = granted.get(tenant) ?? new Set<Entitlement>();
    set.add(name as Entitlement);
    granted.set(tenant, set);
  }
  return (tenant) => new Set([...(granted.get('*') ?? []), ...(granted.get(tenant) ?? [])]);
}

/** The client's --allow list (buildx/buildctl spelling), checked against what the server grants
 *  the tenant, as buildkitd checks a Solve's entitlements against its own configuration: asking
 *  for one the server does not grant fails the build at once, in BuildKit's words, whether or
 *  not the build uses it. Answers the set the build may use; throws a one-line Error. */
export function allowedEntitlements(requested: readonly string[], granted: ReadonlySet<Entitlement>): ReadonlySet<Entitlement> {
  const allowed = new Set<Entitlement>();
  for (const name of requested) {
    if (!(ENTITLEMENTS as readonly string[]).includes(name)) throw new Error(`unknown entitlement ${JSON.stringify(name.slice(0, 60))}: --allow takes ${ENTITLEMENTS.join(' or ')}`);
    const e = name as Entitlement;
    if (!granted.has(e)) throw new Error(`granting entitlement ${e} is not allowed by build daemon configuration: ${grantFix(e)}`);
    allowed.add(e);
  }
  return allowed;
}

function grantFix(e: Entitlement): string {
  return `the server grants ${e} per tenant (auth.entitlements, e.g. BUILDYARD_ENTITLEMENTS=<tenant>:${e})`;
}

/** The first use of an entitlement the build may not use, in BuildKit's words ("network.host is
 *  not allowed") with where it is used and what to do; undefined when everything is allowed.
 *  `allowed`: what the client asked for (and the server grants, see allowedEntitlements);
 *  `granted`: what the server grants the tenant, to say whether asking would be enough. */
export function missingEntitlement(plan: BuildPlan, buildNetwork: string, allowed: ReadonlySet<Entitlement>, granted: ReadonlySet<Entitlement>): { message: string; line?: number } | undefined {
  const fix = (e: Entitlement) => `build with --allow ${e}${granted.has(e) ? '' : `, which the server must also grant your tenant (auth.entitlements, e.g. BUILDYARD_ENTITLEMENTS=<tenant>:${e})`}`;
  if (buildNetwork === 'host' && !allowed.has('network.host')) return { message: `network.host is not allowed: --network host needs it; ${fix('network.host')}` };
  for (const platform of plan.platforms) {
    for (const stage of platform.stages) {
      for (const v of stage.vertices) {
        if (v.kind !== 'exec') continue;
        if (v.network === 'host' && !allowed.has('network.host')) return { message: `network.host is not allowed: RUN --network=host at line ${v.line} needs it; ${fix('network.host')}`, line: v.line };
        if (v.security === 'insecure' && !allowed.has('security.insecure')) return { message: `security.insecure is not allowed: RUN --security=insecure at line ${v.line} needs it; ${fix('security.insecure')}`, line: v.line };
      }
    }
  }
  return undefined;
}
