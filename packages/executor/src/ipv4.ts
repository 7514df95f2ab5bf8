// IPv4 addresses and CIDR ranges for the egress firewall: small enough that a library
// (ip-address, ipaddr.js) would add more surface than it saves, and nft wants canonical text.

export interface Cidr {
  /** Network address as an unsigned 32-bit number. */
  base: number;
  prefix: number;
}

export function parseIPv4(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let n = 0;
  for (const p of parts) {
    if (!/^\d{1,3}$/.test(p) || Number(p) > 255) return undefined;
    n = n * 256 + Number(p);
  }
  return n;
}

export function formatIPv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

/** `a.b.c.d` or `a.b.c.d/n`; host bits are cleared so nft accepts the range. */
export function parseCidr(text: string): Cidr | undefined {
  const [addr, bits, extra] = text.trim().split('/');
  if (extra !== undefined || addr === undefined) return undefined;
  const ip = parseIPv4(addr);
  const prefix = bits === undefined ? 32 : /^\d{1,2}$/.test(bits) ? Number(bits) : NaN;
  if (ip === undefined || !(prefix >= 0 && prefix <= 32)) return undefined;
  return { base: (ip & maskOf(prefix)) >>> 0, prefix };
}

export function formatCidr(c: Cidr): string {
  return `${formatIPv4(c.base)}/${c.prefix}`;
}

export function cidrContains(c: Cidr, ip: number): boolean {
  return ((ip & maskOf(c.prefix)) >>> 0) === c.base;
}

function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** Throws a one-line error naming the option when an entry is not an IPv4 address or range. */
export function parseCidrList(entries: readonly string[], what: string): Cidr[] {
  return entries.map((e) => {
    const c = parseCidr(e);
    if (!c) throw new Error(`${what}: "${e.slice(0, 80)}" is not an IPv4 address or CIDR range (e.g. 10.0.0.0/8): fix the list`);
    return c;
  });
}
