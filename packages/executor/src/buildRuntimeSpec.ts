// Turns a run request into an OCI runtime spec with Docker's defaults (moby's
// oci/defaults.go and BuildKit's executor/oci/spec.go).
//
// Seccomp: none. Build steps run trusted-ish user code in their own namespaces without the
// Docker default profile; adding one later means emitting linux.seccomp here.
import { posix } from 'node:path';
import type { RuntimeMount, RuntimeSpec } from './runtimeSpec.js';
import type { Mount, NetworkMode } from './types.js';

export const defaultPath = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Docker's default capability set. */
export const defaultCapabilities = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE',
  'CAP_SYS_CHROOT', 'CAP_KILL', 'CAP_AUDIT_WRITE',
];

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
  /** RLIMIT_NOFILE (soft = hard); Docker's 1048576 unless the host cannot grant it. */
  nofile?: number;
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

  return {
    ociVersion: '1.0.2',
    process: {
      terminal: false,
      user: { uid: input.user.uid, gid: input.user.gid, additionalGids: input.user.additionalGids },
      args: input.args,
      env,
      cwd: posix.resolve('/', input.cwd),
      capabilities: {
        bounding: defaultCapabilities,
        effective: defaultCapabilities,
        permitted: defaultCapabilities,
      },
      rlimits: [{ type: 'RLIMIT_NOFILE', hard: input.nofile ?? 1048576, soft: input.nofile ?? 1048576 }],
      noNewPrivileges: false,
    },
    root: { path: input.rootfs, readonly: input.readonlyRootfs },
    hostname: input.hostname,
    mounts: [...defaultMounts(), ...etcMounts(input.etcMounts), ...userMounts(input.mounts)],
    linux: {
      namespaces,
      // runc always adds the standard devices (null, zero, full, random, urandom, tty, ptmx).
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: [
        '/proc/asound', '/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
        '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi',
        '/sys/firmware', '/sys/devices/virtual/powercap',
      ],
      readonlyPaths: ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

function defaultMounts(): RuntimeMount[] {
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', 'ro'] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', 'ro'] },
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
