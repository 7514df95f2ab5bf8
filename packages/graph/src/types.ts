// The stage graph: plain JSON-serialisable data produced by the Dockerfile frontend and
// executed by workers. See README.md for the meaning of every field.

/** Identifies a stage within one PlatformPlan: `${platform}#${index}`, e.g. "linux/arm64#2". */
export type StageId = string;

/** The `config` member of an OCI image config (Docker-compatible field names). */
export interface ImageConfig {
  User?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Env?: string[];
  Entrypoint?: string[] | null;
  Cmd?: string[] | null;
  Volumes?: Record<string, Record<string, never>>;
  WorkingDir?: string;
  Labels?: Record<string, string>;
  StopSignal?: string;
  ArgsEscaped?: boolean;
  Healthcheck?: HealthConfig;
  OnBuild?: string[] | null;
  Shell?: string[];
}

export interface HealthConfig {
  Test?: string[];
  /** Nanoseconds, like Docker. */
  Interval?: number;
  Timeout?: number;
  StartPeriod?: number;
  StartInterval?: number;
  Retries?: number;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** The OCI image config JSON (application/vnd.oci.image.config.v1+json). */
export interface ImageConfigFile {
  architecture?: string;
  os?: string;
  variant?: string;
  config?: ImageConfig;
  rootfs?: { type: string; diff_ids: string[] };
  history?: HistoryEntry[];
  created?: string;
  author?: string;
  [key: string]: unknown;
}

/** One file of the synced build context (after .dockerignore). */
export interface ContextEntry {
  /** Slash-separated, relative to the context root, no leading "./". */
  path: string;
  /** POSIX mode including file-type bits (e.g. 0o100644, 0o40755, 0o120777). */
  mode: number;
  size: number;
  /** `sha256:<hex>` of the content for regular files; empty for directories. */
  digest: string;
  linkTarget?: string;
  /** Its own extended attributes that the context keeps, as [name, base64 value] sorted by name. */
  xattrs?: [string, string][];
}

/** Where a COPY / bind mount reads from. */
export type SourceRef =
  /** The build's context, or with `contextId` a named context (--build-context name=DIR or a git
   *  URL) stored like a context. */
  | { kind: 'context'; contextId?: string }
  | { kind: 'stage'; stageId: StageId }
  | { kind: 'image'; ref: string; digest: string };

export type RunMount =
  | { type: 'cache'; target: string; id: string; sharing: 'shared' | 'private' | 'locked'; uid: number; gid: number; mode: number; readonly: boolean; from?: SourceRef; source?: string }
  | { type: 'secret'; id: string; target?: string; env?: string; required: boolean; mode: number; uid: number; gid: number }
  | { type: 'bind'; target: string; source: string; from: SourceRef; rw: boolean }
  | { type: 'tmpfs'; target: string; size?: number }
  | { type: 'ssh'; id: string; target: string; required: boolean; mode: number; uid: number; gid: number };

/** A file the worker must provide read-only inside the container (RUN heredoc with #!). */
export interface RunHeredocFile {
  name: string;
  content: string;
  /** Absolute path inside the container where the file is mounted, e.g. /dev/pipes/EOF. */
  path: string;
  mode: number;
}

interface VertexBase {
  /** sha256 of the canonical definition (the vertex without digest/cacheKey/name/line). */
  digest: string;
  /** sha256 over digest + parent state's key + input keys + context content digests. */
  cacheKey: string;
  /** The step reads what a URL serves (ADD <url> without --checksum, in it or before it, in
   *  this stage or one it uses): only known when the step runs, so the solver derives the real
   *  key from `cacheKey` and what the URL gave (StageSolver.effectiveKey). */
  provisionalKey?: boolean;
  /** BuildKit-style progress name, e.g. "[build 2/4] RUN make". */
  name: string;
  /** 1-based Dockerfile line of the instruction. */
  line: number;
}

export interface ExecVertex extends VertexBase {
  kind: 'exec';
  args: string[];
  env: string[];
  cwd: string;
  user: string;
  network: 'default' | 'none' | 'host';
  security: 'sandbox' | 'insecure';
  /** The sandbox's hostname (BUILDKIT_SANDBOX_HOSTNAME); absent: the worker's default. */
  hostname?: string;
  /** The build's --add-host entries, written into the step's /etc/hosts (part of the key, as
   *  in BuildKit's exec meta). */
  extraHosts?: { host: string; ip: string }[];
  /** The build's --ulimit list (part of the key, as BuildKit's exec meta Ulimit); absent: the
   *  executor's default rlimits. */
  ulimits?: { name: string; soft: number; hard: number }[];
  mounts: RunMount[];
  heredocs?: RunHeredocFile[];
  /** Inputs other than the parent state (stages/images used by mounts). */
  inputs: SourceRef[];
}

export interface ContentDigest {
  path: string;
  mode: number;
  digest: string;
  linkTarget?: string;
  /** The entry's extended attributes ([name, base64 value]) when it has any: they are part of the key. */
  xattrs?: [string, string][];
}

export type FileAction =
  | {
      op: 'copy';
      from: SourceRef;
      sources: string[];
      dest: string;
      chown?: string;
      chmod?: string;
      parents: boolean;
      exclude: string[];
      link: boolean;
      followSymlinks: boolean;
      isAdd: boolean;
      unpack?: boolean;
      /** Context files this copy reads (only for from: context when the context list is known). */
      contentDigests?: ContentDigest[];
    }
  | { op: 'addUrl'; url: string; dest: string; checksum?: string; chown?: string; chmod?: string; unpack?: boolean; link: boolean }
  | { op: 'addGit'; url: string; ref?: string; subdir?: string; keepGitDir: boolean; dest: string; checksum?: string; chown?: string; chmod?: string; link: boolean }
  /** `createdTime` (seconds): the time of the directory this makes, when it makes it (WORKDIR under SOURCE_DATE_EPOCH). */
  | { op: 'mkdir'; path: string; chown?: string; mode: number; createdTime?: number }
  /** `link`: a heredoc source of COPY/ADD --link without --chmod (its --chmod is in `mode`), which BuildKit merges as the copies. */
  /** `name`: a heredoc's, the file's name when `path` ends in `/` or is a directory (see fileop's mkfile). */
  | { op: 'mkfile'; path: string; content: string; mode: number; chown?: string; link?: boolean; name?: string };

export interface FileVertex extends VertexBase {
  kind: 'file';
  actions: FileAction[];
  /** The user the actions resolve names against / run as (current USER). */
  user: string;
  inputs: SourceRef[];
}

export type Vertex = ExecVertex | FileVertex;

export type StageBase =
  /** `name`: BuildKit's progress name of the FROM step, e.g. "[build 1/3] FROM
   *  docker.io/library/busybox:latest@sha256:…" (the reference with its tag, at the digest it
   *  resolved to); absent for an image given as a named context. */
  | { kind: 'image'; ref: string; digest: string; name?: string }
  | { kind: 'stage'; stageId: StageId }
  | { kind: 'scratch' };

export interface StagePlan {
  id: StageId;
  name?: string;
  index: number;
  platform: string;
  base: StageBase;
  dependsOn: StageId[];
  vertices: Vertex[];
  config: ImageConfig;
  /**
   * This stage's own history entries. The solver appends them to its base's history (the base
   * image's, or the base stage's result, which already holds its ancestors' entries).
   */
  history: HistoryEntry[];
  /** MAINTAINER of this stage (the image's `author`), when set. */
  author?: string;
  /**
   * How many leading entries of the stage's image history are those of the image its chain of
   * stages starts from (dockerfile2llb's baseImg): SOURCE_DATE_EPOCH leaves their times alone.
   * Absent: none (scratch, a context directory).
   */
  baseHistory?: number;
  /** Cache key of the stage's final filesystem state (base key when it has no vertices). */
  cacheKey: string;
  noCache: boolean;
  /** The build's SOURCE_DATE_EPOCH (seconds), when an output asked for rewrite-timestamp=true:
   *  mtimes in this stage's new layers are clamped to it, so they do not depend on the worker's
   *  clock (part of the keys). */
  sourceDateEpoch?: number;
}

export interface PlatformPlan {
  platform: string;
  target: StageId;
  /** Only the stages the target needs, in topological (= Dockerfile) order. */
  stages: StagePlan[];
}

export interface PlanWarning {
  line?: number;
  message: string;
}

export interface BuildPlan {
  platforms: PlatformPlan[];
  warnings: PlanWarning[];
}
