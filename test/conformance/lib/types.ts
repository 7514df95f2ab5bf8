// The shapes shared by the conformance cases, the two builders and the recorded expectations.
import type { CraftedEntry } from '@buildyard/testkit';

/**
 * A context file: text content, or a spec for modes, symlinks, hard links (`hardlink`: another
 * context path, listed before it), directories and special files.
 */
export type ContextFile =
  | string
  | { content?: string; base64?: string; mode?: number; symlink?: string; hardlink?: string; dir?: true; fifo?: true; socket?: true; mtime?: number; xattrs?: Record<string, string> };

export interface Case {
  /** Unique, stable: the key in expected/<group>.json. */
  name: string;
  /** `{{BASE}}` stands for the busybox base image in the local registry. */
  dockerfile: string;
  /** Context files (paths relative to the context root). */
  files?: Record<string, ContextFile>;
  /** Name of the Dockerfile in the context (default Dockerfile); `dockerfile` tests the lower-case fallback. */
  dockerfileName?: string;
  /** Write the Dockerfile under this name but do not tell the builder (tests the default-name lookup). */
  dockerfileImplicit?: boolean;
  args?: Record<string, string>;
  target?: string;
  /** Default linux/amd64. */
  platform?: string;
  secrets?: Record<string, string>;
  /**
   * An image holding exactly these tar entries (names unchecked: absolute, "..", links), in one
   * layer or one per list, pushed for the case to the registry both builders use;
   * `{{CRAFTED}}` names it.
   */
  crafted?: CraftedEntry[] | CraftedEntry[][];
  /** Attributes of the image output (BuildKit's exporter attributes, e.g. source-date-epoch), given to both builders. */
  outputAttrs?: Record<string, string>;
  /**
   * What the web server serves (at every path) while the case builds; `{{URL}}` in the
   * Dockerfile is its base URL, on an address both builders may download from.
   */
  served?: { body: string; etag?: string; lastModified?: string; contentDisposition?: string };
  /**
   * Current BuildKit behaves differently from the v0.11.6 reference daemon. `change` names the
   * upstream change (read in moby/buildkit's source); the expectation is `expect`, written by
   * hand, or the daemon's result (of `equivalent`, a case v0.11.6 can build that gives the same
   * image, when given) passed through `patch`.
   */
  upstream?: { change: string; expect?: Result; patch?: (recorded: Result) => Result; equivalent?: Partial<Pick<Case, 'dockerfile' | 'files' | 'args' | 'target' | 'secrets'>> };
  /**
   * A difference Buildyard keeps on purpose or that lies outside the Dockerfile frontend, with
   * the reason. The suite then requires the difference to still exist, so a fix is noticed.
   */
  divergence?: string;
}

export interface FileRecord {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'fifo' | 'char' | 'block' | 'deleted';
  /** Permission bits incl. setuid/setgid/sticky, octal string. */
  mode?: string;
  uid?: number;
  gid?: number;
  /** sha256 of a file's content (first 16 hex digits) plus its size. */
  content?: string;
  linkname?: string;
  xattrs?: Record<string, string>;
  /** A directory that no layer names but a deeper entry needs. */
  implied?: true;
  /**
   * Seconds since the epoch, only for a time a case fixed (see `stableTime`): a context file's,
   * a tar entry's, the base image's, SOURCE_DATE_EPOCH. A time of the build itself is left out.
   */
  mtime?: number;
}

export interface ConfigSummary {
  Env?: string[];
  Cmd?: string[] | null;
  Entrypoint?: string[] | null;
  WorkingDir?: string;
  User?: string;
  ExposedPorts?: string[];
  Volumes?: string[];
  Labels?: Record<string, string>;
  Healthcheck?: unknown;
  StopSignal?: string;
  OnBuild?: string[] | null;
  Shell?: string[];
  ArgsEscaped?: boolean;
  author?: string;
  platform?: string;
  /** The image's `created`, only when a case fixed it (SOURCE_DATE_EPOCH; see `stableTime`). */
  created?: string;
  /** Any other field of the config (`config.X` inside its `config`), so nothing goes unseen. */
  other?: Record<string, unknown>;
}

export interface Result {
  ok: boolean;
  /** Normalised error text of a failed build. */
  error?: string;
  layers?: number;
  config?: ConfigSummary;
  /** History entries after the base image's. */
  history?: { created_by: string; empty_layer?: boolean; created?: string; comment?: string; author?: string }[];
  /** The flattened filesystem where it differs from the base image. */
  files?: FileRecord[];
  /** Whiteouts in the last layer. */
  whiteouts?: string[];
}

export interface Expected extends Result {
  /** sha256 of the case definition the expectation was recorded for. */
  caseDigest: string;
  /** 'buildkitd v0.11.6' or 'upstream: <change>'. */
  source: string;
}
