import type { Readable, Writable } from 'node:stream';

export type NetworkMode = 'none' | 'host';

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
  extraHosts?: ExtraHost[];
  readonlyRootfs?: boolean;
  timeoutMs?: number;
  /** e.g. `linux/arm64`; checked against what this host can run (natively or via binfmt). */
  platform?: string;
}

export type Mount =
  | { type: 'bind'; source: string; target: string; readonly: boolean }
  | { type: 'tmpfs'; target: string; sizeBytes?: number };

export interface RunOptions {
  /** Container id suffix; a random one is generated when absent. */
  id?: string;
  /** Host directory holding the (writable) root filesystem, e.g. a mounted snapshot. */
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
