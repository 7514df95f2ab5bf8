// FROM --platform takes any os/arch, as BuildKit does (containerd's Parse); Buildyard's workers
// run only the platforms it knows. For one it does not know, the question is BuildKit's: does
// the base image have it? Without it, BuildKit's own error, word for word (users search it).
import { normalizeArch, normalizeOS, normalizePlatform, parsePlatform } from '@buildyard/graph';
import { formatReference, parseReference, type CallOptions, type RegistryClient } from '@buildyard/oci';

/** True for a platform Buildyard can build for (the registry client and workers accept it). */
export function isKnownPlatform(platform: string): boolean {
  try { normalizePlatform(platform); return true; } catch { return false; }
}

/** Answers why `ref` cannot be the base of a stage for `platform`, which Buildyard does not know. */
export async function unknownPlatformError(client: RegistryClient, ref: string, platform: string, call: CallOptions = {}): Promise<Error> {
  const reference = parseReference(ref);
  const top = await client.getManifest(reference, call);
  const want = parsePlatform(platform, { allowUnknown: true });
  const manifests = (top.manifest as { manifests?: Array<{ platform?: { os: string; architecture: string; variant?: string } }> }).manifests ?? [];
  const has = manifests.some((d) => {
    if (!d.platform) return false;
    const [arch, variant] = normalizeArch(d.platform.architecture, d.platform.variant ?? '');
    return normalizeOS(d.platform.os) === want.os && arch === want.architecture && variant === (want.variant ?? '');
  });
  if (!has) return Object.assign(new Error(`${formatReference(reference)}: no match for platform in manifest ${top.digest}: not found`), { code: 'NO_PLATFORM_MATCH' });
  return new Error(`${formatReference(reference)} has an image for ${platform}, but Buildyard's workers cannot run ${platform}; build for a platform the workers run`);
}
