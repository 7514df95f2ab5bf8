// BuildKit's entitlements: RUN --network=host (and a build's --network host) needs
// `network.host`, RUN --security=insecure needs `security.insecure`. buildkitd grants them with
// --allow-insecure-entitlement for the whole daemon; a Buildyard server grants them per tenant
// (auth.entitlements), since one server builds for several tenants. None is granted by default.
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

/** The first use of an entitlement the tenant lacks, in BuildKit's words ("network.host is not
 *  allowed") with where it is used and what to do; undefined when everything is granted. */
export function missingEntitlement(plan: BuildPlan, buildNetwork: string, granted: ReadonlySet<Entitlement>): { message: string; line?: number } | undefined {
  const fix = (e: Entitlement) => `the server grants ${e} per tenant (auth.entitlements, e.g. BUILDYARD_ENTITLEMENTS=<tenant>:${e})`;
  if (buildNetwork === 'host' && !granted.has('network.host')) return { message: `network.host is not allowed: --network host needs it; ${fix('network.host')}` };
  for (const platform of plan.platforms) {
    for (const stage of platform.stages) {
      for (const v of stage.vertices) {
        if (v.kind !== 'exec') continue;
        if (v.network === 'host' && !granted.has('network.host')) return { message: `network.host is not allowed: RUN --network=host at line ${v.line} needs it; ${fix('network.host')}`, line: v.line };
        if (v.security === 'insecure' && !granted.has('security.insecure')) return { message: `security.insecure is not allowed: RUN --security=insecure at line ${v.line} needs it; ${fix('security.insecure')}`, line: v.line };
      }
    }
  }
  return undefined;
}
