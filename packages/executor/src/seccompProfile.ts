// Docker's default seccomp profile for RUN steps, as dockerd and BuildKit apply it. The profile
// itself is not in this repository: infra/dev/setup.sh extracts Docker's own file from Debian's
// copy of the moby sources. This turns Docker's profile format (archMap, per-rule includes and
// excludes by capability, architecture and kernel) into the OCI runtime spec's linux.seccomp
// for this host, the way moby's profiles/seccomp does: the rules that apply to the step's
// capabilities and this machine's architecture, in order.
import { readFileSync } from 'node:fs';
import { release } from 'node:os';
import type { RuntimeSeccomp } from './runtimeSpec.js';

export const defaultSeccompProfilePath = '/usr/share/buildyard/seccomp/docker-default.json';

interface Filter {
  caps?: string[];
  arches?: string[];
  minKernel?: string;
}

export interface DockerSeccompProfile {
  defaultAction: string;
  defaultErrnoRet?: number;
  archMap?: { architecture: string; subArchitectures?: string[] }[];
  syscalls: { names?: string[]; name?: string; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo?: number; op: string }[]; includes?: Filter; excludes?: Filter }[];
}

/** Node's process.arch -> Go's GOARCH (what Docker's includes/excludes name) and seccomp's. */
const arches: Record<string, { go: string; scmp: string }> = {
  x64: { go: 'amd64', scmp: 'SCMP_ARCH_X86_64' },
  arm64: { go: 'arm64', scmp: 'SCMP_ARCH_AARCH64' },
  arm: { go: 'arm', scmp: 'SCMP_ARCH_ARM' },
  ia32: { go: '386', scmp: 'SCMP_ARCH_X86' },
  ppc64: { go: 'ppc64le', scmp: 'SCMP_ARCH_PPC64LE' },
  s390x: { go: 's390x', scmp: 'SCMP_ARCH_S390X' },
  riscv64: { go: 'riscv64', scmp: 'SCMP_ARCH_RISCV64' },
};

const loaded = new Map<string, DockerSeccompProfile>();

export function loadSeccompProfile(path: string): DockerSeccompProfile {
  let profile = loaded.get(path);
  if (!profile) {
    let text: string;
    try {
      text = readFileSync(path, 'utf8');
    } catch (err) {
      throw new Error(`cannot read the seccomp profile ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): run infra/dev/setup.sh, which installs Docker's default profile there, or set worker.seccompProfile`);
    }
    try {
      profile = JSON.parse(text) as DockerSeccompProfile;
      if (typeof profile.defaultAction !== 'string' || !Array.isArray(profile.syscalls)) throw new Error('no defaultAction or syscalls');
    } catch (err) {
      throw new Error(`the seccomp profile ${path} is not a Docker seccomp profile (${(err as Error).message}): point worker.seccompProfile at one`);
    }
    loaded.set(path, profile);
  }
  return profile;
}

/** The OCI seccomp section for a process with these capabilities on this host (QEMU-emulated
 *  steps make the host's system calls, so the host's architecture is the one that counts). */
export function runtimeSeccomp(profile: DockerSeccompProfile, capabilities: readonly string[], arch: string = process.arch, kernel = release()): RuntimeSeccomp {
  const native = arches[arch];
  if (!native) throw new Error(`no seccomp architecture known for ${arch}: set worker.seccompProfile=unconfined on this worker`);
  const mapped = profile.archMap?.find((a) => a.architecture === native.scmp);
  const architectures = mapped ? [mapped.architecture, ...(mapped.subArchitectures ?? [])] : [];
  const applies = (rule: DockerSeccompProfile['syscalls'][number]): boolean => {
    const inc = rule.includes ?? {};
    const exc = rule.excludes ?? {};
    if (inc.arches?.length && !inc.arches.includes(native.go)) return false;
    if (exc.arches?.includes(native.go)) return false;
    if (inc.caps?.length && !inc.caps.every((c) => capabilities.includes(c))) return false;
    if (exc.caps?.some((c) => capabilities.includes(c))) return false;
    if (inc.minKernel && compareKernel(kernel, inc.minKernel) < 0) return false;
    return true;
  };
  return {
    defaultAction: profile.defaultAction,
    ...(profile.defaultErrnoRet !== undefined ? { defaultErrnoRet: profile.defaultErrnoRet } : {}),
    architectures,
    syscalls: profile.syscalls.filter(applies).map((rule) => ({
      names: rule.names ?? (rule.name ? [rule.name] : []),
      action: rule.action,
      ...(rule.errnoRet !== undefined ? { errnoRet: rule.errnoRet } : {}),
      ...(rule.args && rule.args.length > 0 ? { args: rule.args.map((a) => ({ index: a.index, value: a.value, valueTwo: a.valueTwo ?? 0, op: a.op })) } : {}),
    })),
  };
}

function compareKernel(a: string, b: string): number {
  const parse = (v: string) => v.split(/[.-]/).slice(0, 2).map((n) => Number.parseInt(n, 10) || 0);
  const [a1 = 0, a2 = 0] = parse(a);
  const [b1 = 0, b2 = 0] = parse(b);
  return a1 !== b1 ? a1 - b1 : a2 - b2;
}
