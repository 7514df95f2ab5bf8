// The worker's RUN sandbox from its config: the egress policy (operator lists resolved to
// addresses, plus the cluster's own services, which steps must never reach), DNS, and the
// tenants' own egress lists.
import { lookup } from 'node:dns/promises';
import { parseCidr, type EgressLists, type RuncExecutorOptions, type StepLimits } from '@buildyard/executor';
import type { BuildyardConfig } from '@buildyard/config';
import { parseRedisUrl } from '@buildyard/contracts';

export interface WorkerSandbox {
  executor: Omit<RuncExecutorOptions, 'stateDir'>;
  tenantEgress(tenant: string): EgressLists | undefined;
  /** The tenant's own limits, replacing the worker's per limit. */
  tenantLimits(tenant: string): StepLimits | undefined;
}

const limitNames = ['pids', 'memoryBytes', 'cpus', 'diskBytes'] as const;

/** `tenant:limit=value` entries -> limits by tenant. */
export function parseTenantLimits(entries: readonly string[]): Map<string, StepLimits> {
  const byTenant = new Map<string, StepLimits>();
  for (const entry of entries) {
    const m = /^(.+):(\w+)=(\d+(?:\.\d+)?)$/.exec(entry);
    const name = m?.[2] as (typeof limitNames)[number] | undefined;
    if (!m || !name || !limitNames.includes(name)) throw new Error(`worker.sandbox.tenantLimits: "${entry.slice(0, 80)}" is not tenant:limit=value with limit ${limitNames.join(', ')} (e.g. alice:pids=512)`);
    const limits = byTenant.get(m[1]!) ?? {};
    limits[name] = Number(m[3]);
    byTenant.set(m[1]!, limits);
  }
  return byTenant;
}

export async function sandboxOptions(config: Pick<BuildyardConfig, 'worker' | 'redis' | 'blobStore' | 'registry'>): Promise<WorkerSandbox> {
  const { egress, dns, sandbox } = config.worker;
  const tenantLimits = parseTenantLimits(sandbox.tenantLimits);
  const tenants = new Map<string, { allow: string[]; deny: string[] }>();
  const addTenant = (entries: string[], key: 'allow' | 'deny', option: string) => {
    for (const entry of entries) {
      const eq = entry.indexOf('=');
      if (eq <= 0) throw new Error(`${option}: "${entry.slice(0, 80)}" is not tenant=range: write e.g. alice=10.0.0.0/8`);
      const tenant = entry.slice(0, eq);
      const lists = tenants.get(tenant) ?? { allow: [], deny: [] };
      lists[key].push(entry.slice(eq + 1));
      tenants.set(tenant, lists);
    }
  };
  addTenant(egress.tenantDeny, 'deny', 'worker.egress.tenantDeny');
  addTenant(egress.tenantAllow, 'allow', 'worker.egress.tenantAllow');
  for (const lists of tenants.values()) {
    lists.deny = await resolveTargets(lists.deny, 'worker.egress.tenantDeny');
    lists.allow = await resolveTargets(lists.allow, 'worker.egress.tenantAllow');
  }
  const clusterHosts = [...redisHostsOf(config.redis.url), ...(config.blobStore.type === 'registry' ? [config.blobStore.repository.split('/')[0] ?? ''] : []), ...config.registry.insecure, ...config.registry.trusted]
    .map((h) => h.replace(/:\d+$/, '').replace(/^\[|\]$/g, '')).filter((h) => h !== '');
  return {
    executor: {
      dns: { nameservers: dns.nameservers, search: dns.search, options: dns.options },
      seccompProfile: config.worker.seccompProfile === 'unconfined' ? false : config.worker.seccompProfile,
      limits: { pids: sandbox.pids, memoryBytes: sandbox.memoryBytes, cpus: sandbox.cpus, diskBytes: sandbox.diskBytes },
      // Also when RUN egress is off: the lists still bound what the worker fetches for builds (ADD <url>).
      egress: {
        enabled: egress.enabled,
        pool: egress.pool,
        protect: await resolveTargets(clusterHosts, 'the cluster\'s services'),
        deny: await resolveTargets(egress.deny, 'worker.egress.deny'),
        denyPrivate: egress.denyPrivate,
        allow: await resolveTargets(egress.allow, 'worker.egress.allow'),
      },
    },
    tenantEgress: (tenant) => tenants.get(tenant),
    tenantLimits: (tenant) => tenantLimits.get(tenant),
  };
}

/** Every node redis.url names (a Redis Cluster's seed nodes are separated by commas). */
function redisHostsOf(url: string): string[] {
  try { return parseRedisUrl(url).nodes.map((n) => n.host); } catch { return []; }
}

/** Addresses and ranges stay; host names become their IPv4 addresses (IPv6 is never routed). */
async function resolveTargets(entries: string[], what: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of entries) {
    if (parseCidr(entry)) { out.push(entry); continue; }
    if (entry.includes(':')) continue; // an IPv6 address: steps have no IPv6 at all
    try {
      out.push(...(await lookup(entry, { all: true, family: 4 })).map((a) => a.address));
    } catch (err) {
      throw new Error(`${what}: cannot resolve "${entry.slice(0, 80)}" (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): give an address or fix the name`);
    }
  }
  return out;
}
