import type { Readable, Writable } from 'node:stream';
import type { Ulimit } from './rlimits.js';
import type { StepLimits } from './StepCgroups.js';

/** `default`: the step's own namespace with egress (or only loopback where the executor has no
 *  egress configured); `none`: only loopback; `host`: the worker's network (an entitlement). */
export type NetworkMode = 'default' | 'none' | 'host';

/** Per-tenant additions to the worker's egress lists (IPv4 addresses or CIDR ranges). */
export interface EgressLists {
  allow?: string[];
  deny?: string[];
}

export interface ExtraHost {
  host: string;
  ip: string;
}

/** What to run: the executor knows nothing of Dockerfiles (BuildKit's executor.Meta). */
export interface Meta {
  args: string[];
  /** `KEY=value` entries; Docker's default PATH is added when none is given. */
  env: string[];
  /** Absolute working directory; created (owned by the user) when missing. */
  cwd: string;
  /** Docker USER syntax: "", "name", "uid", "name:group", "uid:gid". */
  user: string;
  hostname?: string;
  network: NetworkMode;
  /** The tenant's egress lists, added to the worker's for network=default. */
  egress?: EgressLists;
  /** Whose step it is: a network=default step's network is used again only by the same tenant's. */
  tenant?: string;
  /** This step's limits (the tenant's), overriding the executor's per field. */
  limits?: StepLimits;
  /** `insecure` (the security.insecure entitlement): all capabilities, no seccomp. */
  security?: 'sandbox' | 'insecure';
  extraHosts?: ExtraHost[];
  /** `--ulimit` of the build: replaces Docker's default rlimits; none above the worker's own. */
  ulimits?: Ulimit[];
  readonlyRootfs?: boolean;
  timeoutMs?: number;
  /** e.g. `linux/arm64`; checked against what this host can run (natively or via binfmt). */
  platform?: string;
}

export type Mount =
  /** `shared`: other steps may write `source` while this one runs (a cache mount). */
  | { type: 'bind'; source: string; target: string; readonly: boolean; shared?: boolean }
  | { type: 'tmpfs'; target: string; sizeBytes?: number };

export interface RunOptions {
  /** Container id suffix; a random one is generated when absent. */
  id?: string;
  /**
   * Host directory holding the (writable) root filesystem, e.g. a mounted snapshot; one step's
   * at a time: the run makes the mount points it lacks and removes them after.
   */
  rootfs: string;
  meta: Meta;
  mounts: Mount[];
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  signal?: AbortSignal;
}

export interface RunResult {
  exitCode: number;
  durationMs: number;
}
