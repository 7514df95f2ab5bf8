// /etc/hosts, /etc/resolv.conf and /etc/hostname for a container. They are written to the bundle
// and bind-mounted, never into the rootfs, so they cannot end up in a layer.
import type { ExtraHost, NetworkMode } from './types.js';

/** The worker's DNS settings for RUN steps (buildkitd.toml's [dns] section). */
export interface DnsConfig {
  nameservers: string[];
  search: string[];
  options: string[];
}

/** Google's resolvers: BuildKit's fallback when the host names only loopback resolvers. */
const defaultNameservers = ['8.8.8.8', '8.8.4.4'];

export function hostsFile(hostname: string, extraHosts: ExtraHost[] = []): string {
  const lines = [`127.0.0.1\tlocalhost ${hostname}`, '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const h of extraHosts) lines.push(`${h.ip}\t${h.host}`);
  return lines.join('\n') + '\n';
}

/**
 * As BuildKit: the configured [dns] settings when given; otherwise the host's file for
 * network=host, and for the step's own namespace the host's file without loopback nameservers
 * (they would point at the step's own loopback), falling back to Google's when none is left.
 */
export function resolvConf(hostResolvConf: string, network: NetworkMode, dns?: DnsConfig): string {
  if (dns && dns.nameservers.length > 0) {
    const lines = dns.nameservers.map((n) => `nameserver ${n}`);
    if (dns.search.length > 0) lines.push(`search ${dns.search.join(' ')}`);
    if (dns.options.length > 0) lines.push(`options ${dns.options.join(' ')}`);
    return lines.join('\n') + '\n';
  }
  if (network === 'host') return hostResolvConf;
  const kept = hostResolvConf.split('\n').filter((line) => {
    const ip = nameserverOf(line);
    if (ip === undefined) return /^\s*(search|domain|options)\b/.test(line);
    return !isLoopback(ip);
  });
  if (!kept.some((l) => nameserverOf(l) !== undefined)) kept.push(...defaultNameservers.map((n) => `nameserver ${n}`));
  return kept.join('\n') + '\n';
}

/** Whether every nameserver of a resolv.conf is a loopback one (systemd-resolved's stub). */
export function onlyLoopbackNameservers(text: string): boolean {
  const servers = text.split('\n').map(nameserverOf).filter((s): s is string => s !== undefined);
  return servers.length > 0 && servers.every(isLoopback);
}

export function nameservers(text: string): string[] {
  return text.split('\n').map(nameserverOf).filter((s): s is string => s !== undefined);
}

function nameserverOf(line: string): string | undefined {
  return /^\s*nameserver\s+(\S+)/.exec(line)?.[1];
}

function isLoopback(ip: string): boolean {
  return ip.startsWith('127.') || ip === '::1' || ip === '0:0:0:0:0:0:0:1';
}
