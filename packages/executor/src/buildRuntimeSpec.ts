// Turns a run request into an OCI runtime spec with Docker's defaults (moby's
// oci/defaults.go and BuildKit's executor/oci/spec.go).
//
// Seccomp: Docker's default profile (seccompProfile.ts), which with Docker's capabilities (no
// CAP_SYS_ADMIN) also refuses new user namespaces, mounts, setns and namespace flags to clone.
// --security=insecure (an entitlement) runs privileged and unconfined, as in BuildKit.
import { readFileSync } from 'node:fs';
import { posix } from 'node:path';
import type { RuntimeMount, RuntimeSeccomp, RuntimeSpec } from './runtimeSpec.js';
import type { Mount, NetworkMode } from './types.js';

export const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set. */
export const defaultCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

/** Every capability by number, for --security=insecure (BuildKit's privileged mode). */
export const allCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE', 'CAP_NET_BROADCAST', 'CAP_NET_ADMIN',
  'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT',
  'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE',
  'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND',
  'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

let cachedPrivileged: string[] | undefined;
/** What a privileged step can get: every capability in the worker's own bounding set (a worker
 *  inside a container may lack some, and runc fails on a capability it cannot grant). */
export function privilegedCapabilities(): string[] {
  if (cachedPrivileged) return cachedPrivileged;
  let bounding = (1n << BigInt(allCapabilities.length)) - 1n;
  try {
    const hex = /^CapBnd:\s*([0-9a-f]+)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
    if (hex) bounding = BigInt('0x' + hex);
  } catch {
    // Not Linux /proc: assume every capability.
  }
  cachedPrivileged = allCapabilities.filter((_, bit) => (bounding & (1n << BigInt(bit))) !== 0n);
  return cachedPrivileged;
}

export interface SpecInput {
  rootfs: string;
  args: string[];
  env: string[];
  cwd: string;
  user: { uid: number; gid: number; additionalGids: number[]; home: string };
  hostname: string;
  network: NetworkMode;
  /** Namespace prepared for network=default (EgressNetworks); absent: a fresh one, only lo. */
  netnsPath?: string;
  readonlyRootfs: boolean;
  /** Whether to give the container its own cgroup namespace (kernel support varies). */
  cgroupNamespace: boolean;
  /** Bind mounts of the generated /etc files (sources in the bundle). */
  etcMounts: { hosts: string; resolvConf: string; hostname: string };
  mounts: Mount[];
  /** The process's rlimits (rlimits.ts: Docker's open-files default, or the build's --ulimit). */
  rlimits?: RuntimeSpec['process']['rlimits'];
  /** `insecure`: every capability, every device, no masked paths, rw /sys, no seccomp. */
  security?: 'sandbox' | 'insecure';
  /** The filter for sandboxed steps (runtimeSeccomp of Docker's profile); ignored when insecure. */
  seccomp?: RuntimeSeccomp;
}

export function buildRuntimeSpec(input: SpecInput): RuntimeSpec {
  if (input.args.length === 0) throw new Error('cannot run a process with no arguments: give the command to run');
  const env = [...input.env];
  if (!env.some((e) => e.startsWith('PATH='))) env.unshift(defaultPath);
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${input.user.home}`);

  const namespaces: RuntimeSpec['linux']['namespaces'] = [{ type: 'pid' }, { type: 'ipc' }, { type: 'uts' }, { type: 'mount' }];
  // A fresh network namespace holds only loopback (runc brings it up): that is network=none,
  // and network=default where no egress is configured.
  if (input.network !== 'host') namespaces.push(input.netnsPath ? { type: 'network', path: input.netnsPath } : { type: 'network' });
  if (input.cgroupNamespace) namespaces.push({ type: 'cgroup' });
  const insecure = input.security === 'insecure';
  const caps = insecure ? privilegedCapabilities() : defaultCapabilities;

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.user.uid, gid: input.user.gid, additionalGids: withPrimaryGid(input.user.gid, input.user.additionalGids) },
      args: input.args,
      env,
      cwd: posix.resolve('/', input.cwd),
      capabilities: {
        bounding: caps,
        effective: caps,
        permitted: caps,
      },
      rlimits: input.rlimits ?? [{ type: 'RLIMIT_NOFILE', hard: 1048576, soft: 1048576 }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: input.readonlyRootfs },
    hostname: input.hostname,
    mounts: [...defaultMounts(insecure), ...etcMounts(input.etcMounts), ...userMounts(input.mounts)],
    linux: {
      namespaces,
      // runc always adds the standard devices (null, zero, full, random, urandom, tty, ptmx).
      resources: { devices: [{ allow: insecure, access: 'rwm' }] },
      ...(insecure || !input.seccomp ? {} : { seccomp: input.seccomp }),
      maskedPaths: insecure ? [] : [
        '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
        '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi',
        '/sys/firmware', '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: insecure ? [] : ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

function defaultMounts(insecure: boolean): RuntimeMount[] {
  const sysAccess = insecure ? 'rw' : 'ro';
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', sysAccess] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', sysAccess] },
  ];
}

function etcMounts(files: SpecInput['etcMounts']): RuntimeMount[] {
  const bind = (destination: string, source: string): RuntimeMount => ({ destination, type: 'bind', source, options: ['rbind', 'ro', 'nosuid', 'nodev'] });
  return [bind('/etc/hosts', files.hosts), bind('/etc/resolv.conf', files.resolvConf), bind('/etc/hostname', files.hostname)];
}

/** Parents before children, so a mount at /a/b is not hidden by a later one at /a. */
export function userMounts(mounts: Mount[]): RuntimeMount[] {
  const sorted = [...mounts].sort((a, b) => depth(a.target) - depth(b.target));
  return sorted.map((m): RuntimeMount => {
    const destination = posix.resolve('/', m.target);
    if (destination === '/') throw new Error(`cannot mount over / (mount target ${m.target}): choose a directory inside the container`);
    if (m.type === 'bind') return { destination, type: 'bind', source: m.source, options: ['rbind', m.readonly ? 'ro' : 'rw'] };
    const options = ['nosuid', 'nodev', 'mode=1777'];
    if (m.sizeBytes !== undefined) options.push(`size=${m.sizeBytes}`);
    return { destination, type: 'tmpfs', source: 'tmpfs', options };
  });
}

function depth(p: string): number {
  return posix.resolve('/', p).split('/').filter(Boolean).length;
}

// BuildKit (executor/oci ensureAdditionalGids, after containerd) puts the primary gid first in
// the supplementary groups unless it is already there, so `id` in a RUN shows
// `groups=1(daemon)` for a user that is no group's member, and root keeps gid 0 after setgroups.
export function withPrimaryGid(gid: number, additionalGids: readonly number[]): number[] {
  return additionalGids.includes(gid) ? [...additionalGids] : [gid, ...additionalGids];
}
