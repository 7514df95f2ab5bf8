// Platform parsing, normalisation and matching with containerd's rules
// (github.com/containerd/platforms: database.go, defaults, compare.go).
import { InvalidPlatformError, hostArch, isKnownOS, normalizeArch, normalizeOS, parsePlatform as parsePlatformSpec } from '@buildyard/graph';
import type { Descriptor, ImageIndex, Platform } from './types.js';

// The rules themselves are graph's (one implementation for planner, registry and executor);
// this module adds OCI platform records (os.version, os.features) and manifest selection.
export { InvalidPlatformError };

/** The platform of this process, in OCI words. */
export function hostPlatform(): Platform {
  const os = process.platform === 'win32' ? 'windows' : process.platform;
  return normalizePlatform({ os, architecture: hostArch() });
}

/**
 * Normalises a platform string (`arm64`, `linux/aarch64`, `linux/arm/7`) or record.
 * A single component is an OS if it names one (architecture from the host), else an architecture on linux.
 */
export function normalizePlatform(p: string | Platform): Platform {
  if (typeof p === 'string') {
    const parsed = parsePlatformSpec(p);
    return parsed.variant ? { os: parsed.os, architecture: parsed.architecture, variant: parsed.variant } : { os: parsed.os, architecture: parsed.architecture };
  }
  // Records come from registries too: attestation entries say unknown/unknown, so names are
  // folded but only an unknown operating system is refused.
  if (!p.os || !p.architecture) throw new InvalidPlatformError(JSON.stringify(p), 'os and architecture are required');
  const os = normalizeOS(p.os);
  if (!isKnownOS(os) && os !== 'unknown') throw new InvalidPlatformError(JSON.stringify(p), `unknown operating system "${p.os}"`);
  const [architecture, variant] = normalizeArch(p.architecture, p.variant ?? '');
  const out: Platform = { os, architecture };
  if (variant) out.variant = variant;
  if (p['os.version']) out['os.version'] = p['os.version'];
  if (p['os.features']?.length) out['os.features'] = p['os.features'];
  return out;
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
