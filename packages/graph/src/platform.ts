// Platform strings normalised the way containerd's platforms.Parse + Normalize do, so that
// "aarch64", "arm64", "linux/arm64/v8" all plan onto the same queue. The one implementation:
// oci (image indexes, the CLI's --platform) and executor (binfmt detection) use it too.

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export class InvalidPlatformError extends Error {
  constructor(readonly specifier: string, reason: string) {
    // Hostile input can be megabytes long: quote only its start, so the error stays one short line.
    const shown = specifier.length > 64 ? `${specifier.slice(0, 64)}…` : specifier;
    super(`invalid platform "${shown}": ${reason}; use os/arch[/variant], e.g. linux/arm64`);
    this.name = 'InvalidPlatformError';
  }
}

const KNOWN_OS = new Set(['aix', 'android', 'darwin', 'dragonfly', 'freebsd', 'hurd', 'illumos', 'ios', 'js', 'linux', 'nacl', 'netbsd', 'openbsd', 'plan9', 'solaris', 'wasip1', 'windows', 'zos']);
const KNOWN_ARCH = new Set(['386', 'amd64', 'amd64p32', 'arm', 'armbe', 'arm64', 'arm64be', 'ppc64', 'ppc64le', 'loong64', 'mips', 'mipsle', 'mips64', 'mips64le', 'mips64p32', 'mips64p32le', 'ppc', 'riscv', 'riscv64', 's390', 's390x', 'sparc', 'sparc64', 'wasm']);
const COMPONENT = /^[A-Za-z0-9_.-]+$/;

export function isKnownOS(os: string): boolean {
  return KNOWN_OS.has(normalizeOS(os));
}

export function normalizeOS(os: string): string {
  const o = os.toLowerCase();
  return o === 'macos' ? 'darwin' : o;
}

/** containerd's normalizeArch: architecture aliases to GOARCH names, default variants folded. */
export function normalizeArch(archIn: string, variantIn: string): [string, string] {
  let arch = archIn.toLowerCase();
  let variant = variantIn.toLowerCase();
  switch (arch) {
    case 'i386':
      arch = '386';
      variant = '';
      break;
    case 'x86_64':
    case 'x86-64':
    case 'amd64':
      arch = 'amd64';
      if (variant === 'v1') variant = '';
      break;
    case 'aarch64':
    case 'arm64':
      arch = 'arm64';
      if (variant === '8' || variant === 'v8' || variant === 'v8.0') variant = '';
      else {
        // 9, 9.0, v9.0 -> v9; 8.2 -> v8.2
        const m = /^v?(\d+)(?:\.(\d+))?$/.exec(variant);
        if (m) variant = `v${m[1]}${m[2] && m[2] !== '0' ? `.${m[2]}` : ''}`;
      }
      break;
    case 'armhf':
      arch = 'arm';
      variant = 'v7';
      break;
    case 'armel':
      arch = 'arm';
      variant = 'v6';
      break;
    case 'arm':
      if (variant === '' || variant === '7') variant = 'v7';
      else if (variant === '5' || variant === '6' || variant === '8') variant = 'v' + variant;
      break;
  }
  return [arch, variant];
}

export function hostArch(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[process.arch] ?? process.arch;
}

/**
 * Parses a platform specifier with containerd's rules and returns it normalised. Buildyard
 * refuses operating systems and architectures it does not know; `allowUnknown` takes any
 * os/arch[/variant] as containerd's Parse does (FROM --platform: BuildKit fails only when the
 * base image has no such manifest).
 */
export function parsePlatform(specifier: string, opts: { allowUnknown?: boolean } = {}): Platform {
  const s = specifier.trim();
  if (s === '') throw new InvalidPlatformError(specifier, 'empty platform');
  const parts = s.split('/');
  for (const p of parts) {
    if (!COMPONENT.test(p)) throw new InvalidPlatformError(specifier, `"${p}" is not a valid platform component`);
  }
  let os: string;
  let arch: string;
  let variant: string;
  if (parts.length === 1) {
    os = normalizeOS(parts[0]);
    if (KNOWN_OS.has(os)) {
      return withVariant(os, hostArch(), '');
    }
    [arch, variant] = normalizeArch(parts[0], '');
    if (!KNOWN_ARCH.has(arch)) throw new InvalidPlatformError(specifier, 'unknown operating system or architecture');
    os = 'linux';
  } else if (parts.length === 2) {
    os = normalizeOS(parts[0]);
    [arch, variant] = normalizeArch(parts[1], '');
  } else if (parts.length === 3) {
    os = normalizeOS(parts[0]);
    [arch, variant] = normalizeArch(parts[1], parts[2]);
  } else {
    throw new InvalidPlatformError(specifier, 'cannot parse platform specifier');
  }
  if (opts.allowUnknown) return withVariant(os, arch, variant);
  if (!KNOWN_OS.has(os)) throw new InvalidPlatformError(specifier, `unknown operating system "${os}"`);
  if (!KNOWN_ARCH.has(arch)) throw new InvalidPlatformError(specifier, `unknown architecture "${arch}"`);
  return withVariant(os, arch, variant);
}

function withVariant(os: string, architecture: string, variant: string): Platform {
  // containerd's Normalize keeps arm's v7 explicit only when a 3-part spec asked for it.
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** Formats a platform as os/arch[/variant]. */
export function formatPlatform(p: Platform): string {
  return p.variant ? `${p.os}/${p.architecture}/${p.variant}` : `${p.os}/${p.architecture}`;
}

/** Normalises a platform string: "arm64" -> "linux/arm64", "linux/x86_64" -> "linux/amd64". */
export function normalizePlatform(specifier: string, opts: { allowUnknown?: boolean } = {}): string {
  return formatPlatform(parsePlatform(specifier, opts));
}
