// Hand-written subset of the OCI runtime-spec (config.json) types, v1.0.2 as runc 1.1 reads it.
// Why by hand: no maintained npm package ships these types, and we only need the fields we
// emit; keeping them here documents exactly what the executor asks of runc.

export interface RuntimeSpec {
  ociVersion: string;
  process: RuntimeProcess;
  root: { path: string; readonly?: boolean };
  hostname?: string;
  mounts: RuntimeMount[];
  linux: RuntimeLinux;
}

export interface RuntimeProcess {
  terminal: boolean;
  user: { uid: number; gid: number; additionalGids?: number[]; umask?: number };
  args: string[];
  env: string[];
  cwd: string;
  capabilities: {
    bounding: string[];
    effective: string[];
    permitted: string[];
    inheritable?: string[];
    ambient?: string[];
  };
  rlimits: { type: string; hard: number; soft: number }[];
  noNewPrivileges: boolean;
  oomScoreAdj?: number;
}

export interface RuntimeMount {
  destination: string;
  type: string;
  source: string;
  options?: string[];
}

export type NamespaceType = 'pid' | 'network' | 'ipc' | 'uts' | 'mount' | 'cgroup' | 'user';

export interface RuntimeLinux {
  namespaces: { type: NamespaceType; path?: string }[];
  resources?: {
    devices?: { allow: boolean; type?: 'a' | 'b' | 'c'; major?: number; minor?: number; access?: string }[];
  };
  cgroupsPath?: string;
  maskedPaths: string[];
  readonlyPaths: string[];
  /** Absent only for --security=insecure or an operator's seccompProfile=false. */
  seccomp?: RuntimeSeccomp;
}

export interface RuntimeSeccomp {
  defaultAction: string;
  defaultErrnoRet?: number;
  architectures: string[];
  syscalls: { names: string[]; action: string; errnoRet?: number; args?: { index: number; value: number; valueTwo: number; op: string }[] }[];
}
