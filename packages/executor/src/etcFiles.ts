// /etc/hosts, /etc/resolv.conf and /etc/hostname for a container. They are written to the bundle
// and bind-mounted, never into the rootfs, so they cannot end up in a layer.
import type { ExtraHost, NetworkMode } from './types.js';

export function hostsFile(hostname: string, extraHosts: ExtraHost[] = []): string {
  const lines = [`127.0.0.1\tlocalhost ${hostname}`, '::1\tlocalhost ip6-localhost ip6-loopback'];
  for (const h of extraHosts) lines.push(`${h.ip}\t${h.host}`);
  return lines.join('\n') + '\n';
}

/** The host's file for network=host; otherwise the same without loopback nameservers, which
 *  would point at the container's own (empty) loopback. */
export function resolvConf(hostResolvConf: string, network: NetworkMode): string {
  if (network === 'host') return hostResolvConf;
  const kept = hostResolvConf.split('\n').filter((line) => {
    const m = /^\s*nameserver\s+(\S+)/.exec(line);
    if (!m) return /^\s*(search|domain|options)\b/.test(line);
    const ip = m[1] as string;
    return !(ip.startsWith('127.') || ip === '::1' || ip === '0:0:0:0:0:0:0:1');
  });
  return kept.length > 0 ? kept.join('\n') + '\n' : '';
}
