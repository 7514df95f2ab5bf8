// Platform parsing, normalisation and matching with containerd's rules
// (github.com/containerd/platforms: database.go, defaults, compare.go).
import type { Descriptor, ImageIndex, Platform } from './types.js';

const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'windows', 'zos', 'wasip1']);

export class InvalidPlatformError extends Error {
  constructor(readonly input: string, reason: string) {
    super(`invalid platform "${input}": ${reason}; expected os/arch[/variant], e.g. linux/arm64`);
    this.name = 'InvalidPlatformError';
  }
}

function normalizeOs(os: string): string {
  const o = os.toLowerCase();
  return o === 'macos' ? 'darwin' : o;
}

/** containerd's normalizeArch: aliases to GOARCH names, default variants folded. */
function normalizeArch(arch: string, variant: string): { architecture: string; variant: string } {
  let a = arch.toLowerCase();
  let v = variant.toLowerCase();
  switch (a) {
    case 'i386': a = '386'; v = ''; break;
    case 'x86_64': case 'x86-64': case 'amd64':
      a = 'amd64';
      if (v === 'v1') v = '';
      break;
    case 'aarch64': case 'arm64':
      a = 'arm64';
      // v8 is arm64's baseline, so it is the default (empty) variant.
      if (v === '8' || v === 'v8' || v === 'v8.0') v = '';
      else if (/^\d+(\.\d+)?$/.test(v)) v = 'v' + v.replace(/\.0$/, '');
      break;
    case 'armhf': a = 'arm'; v = 'v7'; break;
    case 'armel': a = 'arm'; v = 'v6'; break;
    case 'arm':
      if (v === '' || v === '7') v = 'v7';
      else if (v === '5' || v === '6' || v === '8') v = 'v' + v;
      break;
  }
  return { architecture: a, variant: v };
}

/** The platform of this process, in OCI words. */
export function hostPlatform(): Platform {
  const archMap: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return normalizePlatform({ os, architecture: archMap[process.arch] ?? process.arch });
}

/**
 * Normalises a platform string (`arm64`, `linux/aarch64`, `linux/arm/7`) or record.
 * A single component is an OS if it names one (architecture from the host), else an architecture on linux.
 */
export function normalizePlatform(p: string | Platform): Platform {
  let os: string;
  let arch: string;
  let variant = '';
  let extra: Pick<Platform, 'os.version' | 'os.features'> = {};
  if (typeof p === 'string') {
    const s = p.trim();
    const parts = s.split('/');
    if (s === '' || parts.length > 3 || parts.some((x) => x === '' || !/^[A-Za-z0-9_.-]+$/.test(x))) {
      throw new InvalidPlatformError(p, 'malformed');
    }
    if (parts.length === 1) {
      const one = parts[0].toLowerCase();
      if (KNOWN_OS.has(normalizeOs(one))) {
        os = one;
        arch = hostPlatform().architecture;
      } else {
        os = 'linux';
        arch = one;
      }
    } else {
      [os, arch] = parts;
      variant = parts[2] ?? '';
    }
  } else {
    os = p.os;
    arch = p.architecture;
    variant = p.variant ?? '';
    if (p['os.version']) extra['os.version'] = p['os.version'];
    if (p['os.features']?.length) extra['os.features'] = p['os.features'];
    if (!os || !arch) throw new InvalidPlatformError(JSON.stringify(p), 'os and architecture are required');
  }
  const normOs = normalizeOs(os);
  if (!KNOWN_OS.has(normOs) && normOs !== 'unknown') {
    throw new InvalidPlatformError(typeof p === 'string' ? p : JSON.stringify(p), `unknown operating system "${os}"`);
  }
  const n = normalizeArch(arch, variant);
  const out: Platform = { os: normOs, architecture: n.architecture };
  if (n.variant) out.variant = n.variant;
  return { ...out, ...extra };
}

/** `linux/arm64`, `linux/arm/v7`: the canonical string form. */
export function formatPlatform(p: Platform): string {
  const n = normalizePlatform(p);
  return [n.os, n.architecture, n.variant].filter(Boolean).join('/');
}

export function parsePlatform(s: string): Platform {
  return normalizePlatform(s);
}

/** Exact match after normalisation (os, architecture, variant). */
export function platformMatches(want: string | Platform, have: string | Platform | undefined): boolean {
  if (have === undefined) return false;
  let h: Platform;
  try {
    h = normalizePlatform(have);
  } catch {
    return false; // e.g. attestation manifests with unknown/unknown are never a match
  }
  const w = normalizePlatform(want);
  return w.os === h.os && w.architecture === h.architecture && (w.variant ?? '') === (h.variant ?? '');
}

/**
 * Platforms `want` can run, best first (containerd's `Only`): arm/v7 also runs v6 and v5,
 * arm64 also runs arm/v8..v5, amd64/vN also runs lower amd64 levels.
 */
export function compatiblePlatforms(want: string | Platform): Platform[] {
  const w = normalizePlatform(want);
  const out: Platform[] = [w];
  const push = (architecture: string, variant?: string) => out.push({ os: w.os, architecture, ...(variant ? { variant } : {}) });
  if (w.architecture === 'amd64' && w.variant) {
    for (let lvl = Number(w.variant.slice(1)) - 1; lvl >= 2; lvl--) push('amd64', `v${lvl}`);
    push('amd64');
  } else if (w.architecture === 'arm' && w.variant) {
    for (let lvl = Number(w.variant.slice(1)) - 1; lvl >= 5; lvl--) push('arm', `v${lvl}`);
  } else if (w.architecture === 'arm64' && !w.variant) {
    for (const v of ['v8', 'v7', 'v6', 'v5']) push('arm', v);
  }
  return out;
}

export class NoMatchingPlatformError extends Error {
  constructor(want: Platform, available: string[], where: string) {
    super(`no manifest for platform ${formatPlatform(want)} in ${where} (available: ${available.join(', ') || 'none'}); pick one of those platforms or build the image for ${formatPlatform(want)}`);
    this.name = 'NoMatchingPlatformError';
  }
}

/**
 * Chooses the manifest descriptor for `want` from an OCI index or Docker manifest list: an exact
 * match first, then compatible platforms in containerd's order. Throws when none fits.
 */
export function selectManifest(index: ImageIndex, want: string | Platform, where = 'image index'): Descriptor {
  const w = normalizePlatform(want);
  for (const candidate of compatiblePlatforms(w)) {
    const hit = index.manifests.find((d) => d.platform && platformMatches(candidate, d.platform));
    if (hit) return hit;
  }
  const available = index.manifests
    .filter((d) => d.platform && d.annotations?.['vnd.docker.reference.type'] !== 'attestation-manifest')
    .map((d) => { try { return formatPlatform(d.platform as Platform); } catch { return `${d.platform?.os}/${d.platform?.architecture}`; } });
  throw new NoMatchingPlatformError(w, available, where);
}
