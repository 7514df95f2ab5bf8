// Converts a parsed Dockerfile into one stage graph per target platform, following BuildKit's
// dockerfile2llb semantics (args, env, platform args, stage references, ONBUILD, image config
// and history). Pure apart from calls to the caller's image resolver.
import { posix } from 'node:path';
import {
  canonicalDigest,
  imageStateKey,
  normalizePlatform,
  parsePlatform,
  scratchStateKey,
  vertexCacheKey,
  type BuildPlan,
  type ContentDigest,
  type ContextEntry,
  type ExecVertex,
  type FileAction,
  type FileVertex,
  type HealthConfig,
  type HistoryEntry,
  type ImageConfig,
  type ImageConfigFile,
  type PlanWarning,
  type PlatformPlan,
  type RunHeredocFile,
  type RunMount,
  type SourceRef,
  type StageBase,
  type StageId,
  type StagePlan,
  type Vertex,
} from '@buildyard/graph';
import { cleanPath, contentDigestsFor, FileOpError, type TreeEntry } from '@buildyard/fileop';
import { DockerfileError, excerpt } from './DockerfileError.js';
import { expandWord, expandWords, WordExpansionError } from './expandWord.js';
import { parse, type Instruction, type ParsedDockerfile, type ParsedStage } from './parse.js';
import { formatGoDuration } from './instructions/duration.js';
import { completeRunMount, MountError, parseRunMount } from './instructions/runMount.js';
import { parsePort, PortError } from './instructions/expose.js';
import { validSignal } from './instructions/signal.js';
import { withSuggestion } from './instructions/suggest.js';
import { CommandError, copyCommand, fromCommand, healthcheckTimings, runCommand, runMounts } from './instructions/commands.js';
import { findNamedContext, keyNamedContexts, type NamedContextSource } from './namedContexts.js';
import { platformArgs } from './platformArgs.js';
import { baseImagePlatformWarning, lintBuild, MAX_UNDEFINED_ARG_HINTS, undefinedVarWarning, type LintWarning } from './lint.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** Docker's predefined proxy args: usable without ARG, kept out of history and cache keys. */
/** Characters of env strings one build's plan may hold in all (see Planner.charge). */
const MAX_PLAN_CHARS = 64 * 1024 * 1024;

export const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

export interface ResolvedImage {
  /** Canonical name@digest. */
  ref: string;
  /** Digest of the platform-specific manifest. */
  digest: string;
  config: ImageConfigFile;
  /** The reference as BuildKit names it in the FROM step: with its tag, at the digest the
   *  reference itself resolved to (the index's when there is one); `ref` when absent. */
  pinnedName?: string;
}

export type ImageResolver = (ref: string, platform: string) => Promise<ResolvedImage>;

export interface PlanOptions {
  platforms: string[];
  buildPlatform: string;
  buildArgs?: Record<string, string>;
  target?: string;
  labels?: Record<string, string>;
  context?: { entries: readonly ContextEntry[] };
  resolveImage: ImageResolver;
  noCache?: boolean;
  /** `--no-cache-filter`: stages, by name, whose steps never come from the cache (dockerui's no-cache=NAMES). */
  noCacheFilter?: readonly string[];
  /**
   * An image output asked for `rewrite-timestamp=true` (BuildKit's exporter option): the mtimes
   * in new layers are clamped to this (the output's source-date-epoch, else SOURCE_DATE_EPOCH).
   * Without it SOURCE_DATE_EPOCH dates only the image's and the history's times, as in BuildKit.
   */
  layerEpoch?: number;
  dockerfileName?: string;
  /** The build's --add-host entries, given to every RUN (BuildKit's dockerui ExtraHosts). */
  extraHosts?: { host: string; ip: string }[];
  /** --shm-size in bytes: every RUN gets a /dev/shm tmpfs of that size (dockerfile2llb's shm
   *  mount, so it is part of the step's key); 0 or absent: the executor's 64MB. */
  shmSize?: number;
  /** --ulimit: every RUN's rlimits (BuildKit's exec meta Ulimit, part of the key). */
  ulimits?: { name: string; soft: number; hard: number }[];
  /** --build-context name=VALUE: what a FROM, COPY --from or mount from= of that name reads. */
  namedContexts?: Record<string, NamedContextSource>;
  /** The git source for `ADD <git URL>`: the checkout as a stored context (the frontend fetches
   *  it now, so the key is the commit's content). Absent: ADD of a git URL is planned as an
   *  addGit action the worker refuses. */
  resolveGit?: (url: string, opts: { keepGitDir: boolean; checksum?: string }) => Promise<Extract<NamedContextSource, { kind: 'context' }>>;
}

type Env = [string, string][];

interface StageState {
  plan: StagePlan;
  /** ENV in order (also mirrored into config.Env at the end). */
  env: Env;
  /** Where each name first is in `env` (an ENV of a name already there replaces its value in place). */
  envIndex: Map<string, number>;
  /**
   * BuildKit's state env: the base image's env, then ENV and valued ARGs in the order they ran,
   * the latest write of a name winning and moving to the end (llb AddOrReplace). Expansion and
   * RUN see this, so an ARG after an ENV of the same name wins for later steps.
   */
  stateEnv: Map<string, string>;
  args: Map<string, string | undefined>;
  argOrder: string[];
  cmdSet: boolean;
  stateKey: string;
  /** The state reads what a URL serves (see Vertex.provisionalKey). */
  provisional: boolean;
  step: number;
  total: number;
  label: string;
}

function splitKeyValue(word: string): [string, string | undefined] {
  const eq = word.indexOf('=');
  return eq < 0 ? [word, undefined] : [word.slice(0, eq), word.slice(eq + 1)];
}

/** Go's %q of a []string, as BuildKit writes CMD and ENTRYPOINT into the history. */
function goQuoteList(list: string[]): string {
  return '[' + list.map((s) => JSON.stringify(s)).join(' ') + ']';
}

/** Go's %v of a []string: `[a b c]`, as BuildKit writes SHELL, VOLUME and EXPOSE. */
function goList(list: string[]): string {
  return '[' + list.join(' ') + ']';
}

/** Go's %+v of docker-image-spec's HealthcheckConfig, as current BuildKit writes HEALTHCHECK. */
function healthHistory(hc: HealthConfig): string {
  const d = (v: number | undefined) => formatGoDuration(v ?? 0);
  return `HEALTHCHECK {Test:${goList(hc.Test ?? [])} Interval:${d(hc.Interval)} Timeout:${d(hc.Timeout)} StartPeriod:${d(hc.StartPeriod)} StartInterval:${d(hc.StartInterval)} Retries:${hc.Retries ?? 0}}`;
}

class Planner {
  private readonly buildArgs: Record<string, string>;
  private readonly usedArgs = new Set<string>();
  readonly warnings: PlanWarning[] = [];
  /** Linter warnings only planning finds (resolved images), reported as the text's are. */
  readonly lintFound: LintWarning[] = [];
  /** The first error BuildKit finds only when it marshals the finished definition: every conversion error comes before it. */
  private marshalError: DockerfileError | undefined;
  /** Line, rule and name (or detail) of each warning in lintFound: every platform plans the same instructions. */
  private readonly lintKeys = new Set<string>();
  private undefinedVarHints = MAX_UNDEFINED_ARG_HINTS;
  private readonly imageCache = new Map<string, Promise<ResolvedImage>>();
  /** What every ${var#pattern}-style substitution of this build may do together (see shellPattern.ts). */
  private readonly patternWork = { steps: 0 };
  /** Characters of env copies the plan holds so far (see charge). */
  private planChars = 0;
  private readonly file: string;
  private readonly namedContexts: Map<string, NamedContextSource>;

  constructor(
    private readonly df: ParsedDockerfile,
    private readonly opts: PlanOptions,
  ) {
    this.buildArgs = opts.buildArgs ?? {};
    this.file = opts.dockerfileName ?? df.file;
    try {
      this.namedContexts = keyNamedContexts(opts.namedContexts);
    } catch (e) {
      this.err((e as Error).message);
    }
  }

  /** The named context a FROM, COPY --from or mount from= of `name` reads on `platform`. */
  namedContext(name: string, platform: string): NamedContextSource | undefined {
    return findNamedContext(this.namedContexts, name, platform);
  }

  /**
   * Counts `chars` of strings the plan copies (each RUN's env and ARGs, each stage's config env
   * and labels, history entries) against MAX_PLAN_CHARS. A short Dockerfile can ask for
   * gigabytes (ENV A=$A$A repeated, thousands of long ENVs before thousands of RUNs): refused in
   * one line instead of filling the frontend.
   */
  charge(chars: number, ins?: Instruction): void {
    this.planChars += chars;
    if (this.planChars > MAX_PLAN_CHARS) {
      this.err(`this build's plan would hold more than ${MAX_PLAN_CHARS / 1024 / 1024} MiB of ENV, ARG and LABEL values (each is copied into every later RUN, the image config and its history); use fewer or shorter values`, ins);
    }
  }

  err(message: string, ins?: Instruction): never {
    throw new DockerfileError(message, ins?.startLine ?? 0, ins?.endLine ?? 0, this.file);
  }

  /** An error of the marshalled definition (BuildKit's llb Marshal): raised once planning has found no other. */
  marshalErr(message: string, ins: Instruction): void {
    this.marshalError ??= new DockerfileError(message, ins.startLine, ins.endLine, this.file);
  }

  /** Adds a warning found while planning unless an earlier platform's plan found it; `key` says what makes it the same one. */
  warnOnce(key: string, ins: Instruction, warning: () => LintWarning | null): void {
    const k = `${ins.startLine}\0${key}`;
    if (this.lintKeys.has(k)) return;
    this.lintKeys.add(k);
    const w = warning();
    if (w) this.lintFound.push(w);
  }

  /**
   * BuildKit's UndefinedVar for `name`, read by `ins` and unset in `env`. The hint searches every
   * name set: a few are hints, thousands (an attacker's Dockerfile) would be names x names.
   */
  undefinedVar(name: string, env: ReadonlyMap<string, string>, ins: Instruction): void {
    this.warnOnce(`UndefinedVar\0${name}`, ins, () => undefinedVarWarning(name, ins, this.undefinedVarHints-- > 0 ? [...env.keys()] : undefined));
  }

  expand(word: string, env: ReadonlyMap<string, string>, ins: Instruction, opts: { rawQuotes?: boolean; unmatched?: Set<string> } = {}): string {
    try {
      return expandWord(word, env, { escape: this.df.escape, patternWork: this.patternWork, ...opts });
    } catch (e) {
      if (e instanceof WordExpansionError) this.err(`failed to process ${JSON.stringify(excerpt(word))}: ${e.message}`, ins);
      throw e;
    }
  }

  expandList(word: string, env: ReadonlyMap<string, string>, ins: Instruction): string[] {
    try {
      return expandWords(word, env, { escape: this.df.escape, patternWork: this.patternWork });
    } catch (e) {
      if (e instanceof WordExpansionError) this.err(`failed to process ${JSON.stringify(excerpt(word))}: ${e.message}`, ins);
      throw e;
    }
  }

  resolve(ref: string, platform: string, ins: Instruction): Promise<ResolvedImage> {
    const key = `${platform} ${ref}`;
    let p = this.imageCache.get(key);
    if (!p) {
      p = this.opts.resolveImage(ref, platform).catch((e: unknown) => {
        // BuildKit's own words for an image without the platform, as buildkitd prints them.
        if ((e as { code?: string }).code === 'NO_PLATFORM_MATCH') this.err(excerpt((e as Error).message, 500), ins);
        // A repository the tenant may not use (RepositoryPolicy): its one line says what to use instead.
        if ((e as { code?: string }).code === 'REPOSITORY_REFUSED') this.err((e as Error).message, ins);
        this.err(`failed to resolve image "${excerpt(ref)}" for ${platform}: ${excerpt((e as Error).message ?? String(e), 300)}`, ins);
      });
      this.imageCache.set(key, p);
    }
    return p;
  }

  async plan(): Promise<BuildPlan> {
    const platforms = this.opts.platforms.length > 0 ? this.opts.platforms : [this.opts.buildPlatform];
    const normalized: string[] = [];
    for (const p of platforms) {
      let n: string;
      try {
        n = normalizePlatform(p);
      } catch (e) {
        this.err((e as Error).message);
      }
      if (!normalized.includes(n)) normalized.push(n);
    }
    try {
      normalizePlatform(this.opts.buildPlatform);
    } catch (e) {
      this.err((e as Error).message);
    }
    this.checkStageReferences();
    const targetIndex = this.targetIndex();
    const plans: PlatformPlan[] = [];
    for (const platform of normalized) plans.push(await new PlatformPlanner(this, this.df, platform, this.opts).plan(targetIndex));
    // SOURCE_DATE_EPOCH is the build's own (it pins every timestamp), as in BuildKit.
    const unused = Object.keys(this.buildArgs).filter((k) => !this.usedArgs.has(k) && !PROXY_ARGS.has(k) && !k.startsWith('BUILDKIT_') && k !== 'SOURCE_DATE_EPOCH');
    if (unused.length > 0) this.warnings.push({ message: `one or more build-args [${unused.sort().join(' ')}] were not consumed` });
    // The linter's warnings (the parser's own among them), for the stages this build plans.
    const lint = lintBuild(this.df, this.buildArgs.BUILDKIT_DOCKERFILE_CHECK, new Set(plans.flatMap((p) => p.stages.map((s) => s.index))), this.lintFound);
    if (lint.error) this.err(lint.error);
    if (this.marshalError) throw this.marshalError;
    return { platforms: plans, warnings: [...lint.warnings, ...this.warnings] };
  }

  buildArg(name: string): string | undefined {
    if (Object.prototype.hasOwnProperty.call(this.buildArgs, name)) {
      this.usedArgs.add(name);
      return this.buildArgs[name];
    }
    return undefined;
  }

  /** exec.go proxyEnvList over proxyEnvFromBuildArgs: each proxy arg, in either case, as both cases. */
  proxyEnv(): [string, string][] {
    const out: [string, string][] = [];
    for (const name of ['HTTP_PROXY', 'HTTPS_PROXY', 'FTP_PROXY', 'NO_PROXY', 'ALL_PROXY']) {
      const given = Object.entries(this.buildArgs).filter(([k]) => k.toUpperCase() === name);
      if (given.length === 0 || given[given.length - 1][1] === '') continue;
      const v = given[given.length - 1][1];
      out.push([name, v], [name.toLowerCase(), v]);
    }
    return out;
  }

  /**
   * BuildKit's validateCircularDependency: a cycle of COPY --from / mount from= references
   * anywhere in the file is an error, needed or not. Forward references that are not cycles
   * fail only when the stage is planned (stage order, see findStage).
   */
  private checkStageReferences(): void {
    const stages = this.df.stages;
    const edges = new Map<number, { to: number; ins: Instruction }[]>();
    const lookup = (ref: string): ParsedStage | undefined => {
      if (/^\d+$/.test(ref)) return stages[Number(ref)];
      return this.stageByName(ref);
    };
    for (const stage of stages) {
      const list: { to: number; ins: Instruction }[] = [];
      for (const ins of stage.instructions) {
        if (ins.keyword === 'COPY') {
          const from = copyCommand(ins).from;
          const found = from !== undefined && !from.includes('$') ? lookup(from) : undefined;
          if (found) list.push({ to: found.index, ins });
        }
        if (ins.keyword === 'RUN') {
          for (const mount of runMounts(ins)) {
            const m = /(?:^|,)from=([^,]*)/.exec(mount);
            const found = m && !m[1].includes('$') ? this.stageByName(m[1]) : undefined;
            if (found) list.push({ to: found.index, ins });
          }
        }
      }
      edges.set(stage.index, list);
    }
    const done = new Set<number>();
    for (const start of stages) {
      // Iterative depth-first search: a long chain of stages must not exhaust the stack.
      const onPath = new Set<number>([start.index]);
      const stack: { node: number; next: number }[] = [{ node: start.index, next: 0 }];
      while (stack.length > 0) {
        const top = stack[stack.length - 1];
        const out = edges.get(top.node) ?? [];
        if (top.next >= out.length) {
          onPath.delete(top.node);
          done.add(top.node);
          stack.pop();
          continue;
        }
        const e = out[top.next++];
        if (onPath.has(e.to)) {
          const name = start.name ?? `stage-${start.index}`;
          this.err(`circular dependency detected on stage: ${excerpt(name)}`, e.ins);
        }
        if (!done.has(e.to)) { onPath.add(e.to); stack.push({ node: e.to, next: 0 }); }
      }
    }
  }

  /** The stage named `name` (case-insensitive). */
  stageByName(name: string): ParsedStage | undefined {
    const lower = name.toLowerCase();
    return this.df.stages.find((s) => s.name === lower);
  }

  private targetIndex(): number {
    const target = this.opts.target;
    if (target === undefined || target === '') return this.df.stages.length - 1;
    const t = target.toLowerCase();
    const found = this.df.stages.find((s) => s.name === t);
    if (found) return found.index;
    const names = this.df.stages.map((s) => s.name).filter((n): n is string => n !== undefined);
    this.err(withSuggestion(`target stage ${JSON.stringify(excerpt(target))} could not be found`, target, names, true));
  }
}

/** File-type bits of a context entry's mode, by fileop's entry type. */
const TYPE_BITS: Record<string, number> = { file: 0o100000, dir: 0o040000, symlink: 0o120000, other: 0 };

function treeEntry(e: ContextEntry): TreeEntry {
  const kind = e.mode & 0o170000;
  const type = kind === 0o040000 ? 'dir' : kind === 0o120000 ? 'symlink' : 'file';
  return { path: e.path, type, mode: e.mode & 0o7777, size: e.size, ...(e.digest ? { digest: e.digest } : {}), ...(e.linkTarget !== undefined ? { linkTarget: e.linkTarget } : {}), ...(e.xattrs?.length ? { xattrs: e.xattrs } : {}) };
}

/** The base image's history entries lead the stage's (see StagePlan.baseHistory). */
function setBaseHistory(plan: StagePlan, img: ResolvedImage): void {
  const n = img.config.history?.length ?? 0;
  if (n > 0) plan.baseHistory = n;
}

class PlatformPlanner {
  private contextTree?: TreeEntry[];
  private readonly metaEnv = new Map<string, string>();
  private readonly planned = new Map<number, Promise<StageState>>();
  private readonly done: StageState[] = [];
  /** SOURCE_DATE_EPOCH (whole seconds) when the build sets it. */
  private get epoch(): number | undefined {
    const v = this.opts.buildArgs?.SOURCE_DATE_EPOCH;
    return v !== undefined && /^\d{1,12}$/.test(v) ? Number(v) : undefined;
  }
  /** Stages whose final state reads what a URL serves. */
  private readonly provisionalStages = new Set<string>();
  private readonly platArgs: Map<string, string>;
  private sshCount = 0;

  constructor(
    private readonly p: Planner,
    private readonly df: ParsedDockerfile,
    private readonly platform: string,
    private readonly opts: PlanOptions,
  ) {
    this.platArgs = platformArgs(opts.buildPlatform, platform, opts.target || (df.stages[df.stages.length - 1]?.name ?? ''));
    for (const [k, v] of this.platArgs) this.metaEnv.set(k, v);
    // Global ARGs: build args override defaults; defaults expand with earlier global args. As
    // current BuildKit's buildMetaArgs, an ARG without a value keeps what the name had (a
    // built-in platform arg or an earlier global ARG); v0.11.6 emptied it.
    for (const ins of df.metaArgs) {
      for (const word of ins.args) {
        const [rawKey, rawValue] = splitKeyValue(word);
        const key = p.expand(rawKey, this.metaEnv, ins);
        const override = p.buildArg(key);
        if (override !== undefined) this.metaEnv.set(key, override);
        else if (rawValue !== undefined) this.metaEnv.set(key, p.expand(rawValue, this.metaEnv, ins));
      }
    }
  }

  async plan(targetIndex: number): Promise<PlatformPlan> {
    const target = await this.planStage(targetIndex);
    const stages = this.done.map((s) => s.plan).sort((a, b) => a.index - b.index);
    if (this.opts.labels) {
      target.plan.config.Labels = { ...(target.plan.config.Labels ?? {}), ...this.opts.labels };
    }
    return { platform: this.platform, target: target.plan.id, stages };
  }

  private stageId(index: number): StageId {
    return `${this.platform}#${index}`;
  }

  private planStage(index: number): Promise<StageState> {
    let p = this.planned.get(index);
    if (!p) {
      // Each stage starts in a fresh microtask, so a chain of stages waiting on their bases is a
      // queue of suspended calls on the heap that the event loop works through one at a time,
      // not one nested call per stage on the stack (a FROM chain of 10,000 stages plans).
      p = Promise.resolve().then(() => this.doPlanStage(this.df.stages[index]));
      this.planned.set(index, p);
    }
    return p;
  }

  /**
   * The stage a FROM, COPY --from or mount from= names, by name (case-insensitive) or, except for
   * FROM, by index. FROM sees only earlier stages (a later name is an image); the others must name
   * an earlier stage, with BuildKit's errors.
   */
  private findStage(ref: string, current: ParsedStage, ins: Instruction, kind: 'FROM' | 'COPY' | 'mount', mountTarget = ''): ParsedStage | undefined {
    let found = this.p.stageByName(ref);
    if (!found && kind === 'COPY' && /^\d+$/.test(ref)) {
      found = this.df.stages[Number(ref)];
      if (!found) this.p.err(`invalid stage index ${excerpt(ref)}`, ins);
    }
    if (!found) return undefined;
    if (kind === 'FROM') return found.index < current.index ? found : undefined;
    if (found.index >= current.index) {
      const here = current.name ?? `stage-${current.index}`;
      if (kind === 'COPY') this.p.err(`cannot copy from stage ${JSON.stringify(excerpt(ref))}, it needs to be defined before current stage ${JSON.stringify(excerpt(here))}`, ins);
      this.p.err(`cannot mount from stage ${JSON.stringify(excerpt(ref))} to ${JSON.stringify(excerpt(mountTarget))}, stage needs to be defined before current command`, ins);
    }
    return found;
  }

  private async doPlanStage(stage: ParsedStage): Promise<StageState> {
    const p = this.p;
    const from = stage.from;
    const { platform: platformFlag } = fromCommand(from);
    let stagePlatform = this.platform;
    if (platformFlag !== undefined) {
      const v = p.expand(platformFlag, this.metaEnv, from);
      try {
        // Any os/arch, as BuildKit: an unknown one fails when the base image has no manifest for it.
        stagePlatform = normalizePlatform(v, { allowUnknown: true });
      } catch (e) {
        this.p.err(`FROM --platform: ${(e as Error).message}`, from);
      }
    }
    const baseName = p.expand(from.args[0], this.metaEnv, from);
    if (baseName === '') this.p.err(`base name (${from.args[0]}) should not be blank; set the build arg it uses`, from);
    const label = stage.name ?? `stage-${stage.index}`;
    const plan: StagePlan = {
      id: this.stageId(stage.index),
      ...(stage.name ? { name: stage.name } : {}),
      index: stage.index,
      platform: stagePlatform,
      base: { kind: 'scratch' },
      dependsOn: [],
      vertices: [],
      config: {},
      history: [],
      cacheKey: '',
      // As dockerfile2llb's ignoreCache: every step of a stage the filter names (case-insensitive).
      noCache: (this.opts.noCache ?? false) || (stage.name !== undefined && (this.opts.noCacheFilter ?? []).some((n) => n.toLowerCase() === stage.name!.toLowerCase())),
      ...(this.opts.layerEpoch !== undefined ? { sourceDateEpoch: this.opts.layerEpoch } : {}),
    };
    let config: ImageConfig;
    let stateKey: string;
    let baseStage: StageState | undefined;
    let baseImage: ResolvedImage | undefined;
    // dockerui: a context named like the stage replaces the whole stage; else one named like
    // the base image replaces that image.
    const replaced = stage.name ? p.namedContext(stage.name, stagePlatform) : undefined;
    const baseRef = replaced ? undefined : this.findStage(baseName, stage, from, 'FROM');
    const named = replaced ?? (baseRef || baseName.toLowerCase() === 'scratch' ? undefined : p.namedContext(baseName, stagePlatform));
    let namedFiles: Extract<NamedContextSource, { kind: 'context' }> | undefined;
    if (named?.kind === 'context') {
      namedFiles = named;
      config = { Env: ['PATH=' + DEFAULT_PATH], WorkingDir: '/' };
      stateKey = scratchStateKey(stagePlatform);
    } else if (named?.kind === 'image') {
      const img = await p.resolve(named.ref, stagePlatform, from);
      plan.base = { kind: 'image', ref: img.ref, digest: img.digest };
      setBaseHistory(plan, img);
      config = structuredClone(img.config.config ?? {});
      if (typeof img.config.author === 'string' && img.config.author !== '') plan.author = img.config.author;
      stateKey = imageStateKey(img.digest);
    } else if (baseRef) {
      baseStage = await this.planStage(baseRef.index);
      plan.base = { kind: 'stage', stageId: baseStage.plan.id };
      plan.dependsOn.push(baseStage.plan.id);
      if (baseStage.plan.baseHistory !== undefined) plan.baseHistory = baseStage.plan.baseHistory;
      config = structuredClone(baseStage.plan.config);
      // The stage's own entries only: the solver appends them to its base stage's result
      // history (which already holds the ancestors'), so a copy here would repeat them.
      stateKey = baseStage.stateKey;
      if (baseStage.plan.author !== undefined) plan.author = baseStage.plan.author;
      if (platformFlag === undefined) plan.platform = baseStage.plan.platform;
    } else if (baseName.toLowerCase() === 'scratch') {
      config = { Env: ['PATH=' + DEFAULT_PATH], WorkingDir: '/' };
      stateKey = scratchStateKey(stagePlatform);
    } else {
      const img = await p.resolve(baseName, stagePlatform, from);
      const mismatch = baseImagePlatformWarning(baseName, parsePlatform(stagePlatform, { allowUnknown: true }), img.config, from);
      if (mismatch) p.warnOnce(mismatch.detail, from, () => mismatch);
      baseImage = img;
      plan.base = { kind: 'image', ref: img.ref, digest: img.digest };
      setBaseHistory(plan, img);
      config = structuredClone(img.config.config ?? {});
      // The image's author carries over like its config, until a MAINTAINER replaces it.
      if (typeof img.config.author === 'string' && img.config.author !== '') plan.author = img.config.author;
      stateKey = imageStateKey(img.digest);
    }
    // Clamped layers differ from unclamped ones: a stage's first state says which it makes
    // (a stage based on another inherits that one's).
    if (!baseStage && this.opts.layerEpoch !== undefined) stateKey = canonicalDigest({ state: stateKey, sourceDateEpoch: this.opts.layerEpoch });
    const env: Env = (config.Env ?? []).map((e) => {
      const eq = e.indexOf('=');
      return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)];
    });
    if (!env.some(([k]) => k === 'PATH')) env.push(['PATH', DEFAULT_PATH]);
    const triggers = config.OnBuild ?? [];
    delete config.OnBuild;
    const envIndex = new Map<string, number>();
    env.forEach(([k], i) => { if (!envIndex.has(k)) envIndex.set(k, i); });
    // A stage based on another continues its state: ARG values and all (dockerfile2llb's
    // dispatchState.init), and its declared ARGs, which current BuildKit's RUN history lists
    // (c7c2f0e9, dockerfile 1.10; v0.11.6 started them empty).
    const st: StageState = {
      plan, env, envIndex, stateEnv: new Map(baseStage?.stateEnv ?? env), args: new Map(baseStage?.args), argOrder: [...baseStage?.argOrder ?? []],
      cmdSet: false, stateKey, provisional: baseStage?.provisional ?? false, step: 1, total: 1, label,
    };
    plan.config = config;
    if (namedFiles) this.copyNamedContext(st, namedFiles, named === replaced ? stage.name! : baseName, from);
    if (replaced) {
      // The stage is what the context holds: its own instructions do not run.
      config.Env = this.envStrings(st.env);
      plan.cacheKey = st.stateKey;
      this.done.push(st);
      return st;
    }

    // ONBUILD triggers of the base run first, as if written right after FROM.
    const triggerInstructions: Instruction[] = [];
    for (const t of triggers) {
      let parsed: ParsedDockerfile | undefined;
      try {
        parsed = parse(`FROM scratch\n${t}\n`, { file: this.df.file });
      } catch (e) {
        parsed = undefined;
        this.p.err(`invalid ONBUILD trigger "${t}" in base image ${baseName}: ${(e as DockerfileError).reason ?? (e as Error).message}`, from);
      }
      const ins = parsed?.stages[0].instructions[0];
      if (ins) triggerInstructions.push({ ...ins, startLine: from.startLine, endLine: from.endLine });
    }
    const all = [...triggerInstructions, ...stage.instructions];
    st.total = all.length + 1;
    // The FROM step is step 1 (BuildKit's prefixCommand counts it), named by the resolved reference.
    if (baseImage && plan.base.kind === 'image') plan.base.name = this.stepName(st, 1, `FROM ${baseImage.pinnedName ?? baseImage.ref}`);
    for (const ins of all) {
      st.step++;
      await this.dispatch(st, stage, ins);
    }
    config.Env = this.envStrings(st.env);
    plan.cacheKey = st.stateKey;
    if (st.provisional) this.provisionalStages.add(plan.id);
    this.done.push(st);
    return st;
  }

  /**
   * Expansion env: in-scope ARGs overlaid by ENV (ENV always wins over ARG). The stage's own map,
   * not a copy: expansion only reads it, and a copy per instruction is quadratic in a Dockerfile
   * of many ENVs (an instruction that sets several names expands them all before setting any).
   */
  private expansionEnv(st: StageState): ReadonlyMap<string, string> {
    return st.stateEnv;
  }

  /**
   * p.expand of a word BuildKit's dispatch expands with its lint on (ENV, LABEL, ARG defaults,
   * USER, STOPSIGNAL, VOLUME, WORKDIR, RUN mounts, COPY/ADD): each name it reads that is unset
   * and no declared ARG of the stage is an UndefinedVar warning.
   */
  private expandChecked(st: StageState, word: string, e: ReadonlyMap<string, string>, ins: Instruction, opts: { rawQuotes?: boolean } = {}): string {
    const unmatched = new Set<string>();
    const out = this.p.expand(word, e, ins, { ...opts, unmatched });
    for (const name of unmatched) if (!st.args.has(name)) this.p.undefinedVar(name, e, ins);
    return out;
  }

  /** `k=v` strings of an env, counted against the build's plan size first (see Planner.charge). */
  private envStrings(env: Iterable<readonly [string, string]>, ins?: Instruction): string[] {
    let chars = 0;
    for (const [k, v] of env) chars += k.length + v.length + 1;
    this.p.charge(chars, ins);
    return Array.from(env, ([k, v]) => `${k}=${v}`);
  }

  private setStateEnv(st: StageState, key: string, value: string): void {
    st.stateEnv.delete(key);
    st.stateEnv.set(key, value);
  }

  private history(st: StageState, createdBy: string, emptyLayer: boolean): void {
    const h: HistoryEntry = { created_by: createdBy, comment: 'buildkit.dockerfile.v0' };
    if (emptyLayer) h.empty_layer = true;
    st.plan.history.push(h);
  }

  /** BuildKit's prefixCommand: the stage's name only when the Dockerfile has several stages,
   *  the step number padded to the width of the total (`[ 3/12]`). */
  private vertexName(st: StageState, ins: Instruction): string {
    return this.stepName(st, st.step, ins.original.replace(/^\S+/, ins.keyword));
  }

  private stepName(st: StageState, step: number, text: string): string {
    const stage = this.df.stages.length > 1 ? `${st.label} ` : '';
    return `[${stage}${String(step).padStart(String(st.total).length)}/${st.total}] ${text}`;
  }

  private workdir(st: StageState): string {
    return st.plan.config.WorkingDir || '/';
  }

  private addVertex(st: StageState, v: Omit<ExecVertex, 'digest' | 'cacheKey'> | Omit<FileVertex, 'digest' | 'cacheKey'>, inputKeys: string[], content: ContentDigest[], digestView: unknown): void {
    const digest = canonicalDigest(digestView);
    const cacheKey = vertexCacheKey({ digest, parent: st.stateKey, inputs: inputKeys, content });
    // A download without --checksum is known only when it runs, and so is every state after it.
    st.provisional ||= v.inputs.some((i) => i.kind === 'stage' && this.provisionalStages.has(i.stageId))
      || (v.kind === 'file' && v.actions.some((a) => a.op === 'addUrl' && !a.checksum));
    st.plan.vertices.push({ ...v, digest, cacheKey, ...(st.provisional ? { provisionalKey: true } : {}) } as Vertex);
    st.stateKey = cacheKey;
  }

  /** A stage on a directory context: its files, copied onto scratch. */
  private copyNamedContext(st: StageState, named: Extract<NamedContextSource, { kind: 'context' }>, name: string, from: Instruction): void {
    const source: SourceRef = { kind: 'context', contextId: named.contextId };
    const copy: FileAction = { op: 'copy', from: source, sources: ['/'], dest: '/', parents: false, exclude: [], link: false, followSymlinks: true, isAdd: false };
    const v: Omit<FileVertex, 'digest' | 'cacheKey'> = { kind: 'file', actions: [copy], user: '', inputs: [source], name: `[context ${name}] load named context`, line: from.startLine };
    this.addVertex(st, v, [namedContextStateKey(named.contextId)], [], { kind: 'file', actions: [copy], user: '' });
    st.plan.history.push({ created_by: `COPY --from=${name} / / # buildkit`, comment: 'buildkit.dockerfile.v0' });
  }

  /** Resolves --from / from= to a source and its cache key, recording the dependency. */
  private async sourceFrom(st: StageState, stage: ParsedStage, ref: string, ins: Instruction, kind: 'COPY' | 'mount', mountTarget?: string): Promise<[SourceRef, string]> {
    const found = this.findStage(ref, stage, ins, kind, mountTarget);
    if (found) {
      const dep = await this.planStage(found.index);
      if (!st.plan.dependsOn.includes(dep.plan.id)) st.plan.dependsOn.push(dep.plan.id);
      return [{ kind: 'stage', stageId: dep.plan.id }, dep.stateKey];
    }
    const named = this.p.namedContext(ref, st.plan.platform);
    if (named?.kind === 'context') return [{ kind: 'context', contextId: named.contextId }, namedContextStateKey(named.contextId)];
    const img = await this.p.resolve(named?.kind === 'image' ? named.ref : ref, st.plan.platform, ins);
    return [{ kind: 'image', ref: img.ref, digest: img.digest }, imageStateKey(img.digest)];
  }

  /** The typed form of an instruction's flags; a value BuildKit refuses fails at its line. */
  private command<T>(ins: Instruction, read: (ins: Instruction) => T): T {
    try {
      return read(ins);
    } catch (err) {
      if (err instanceof CommandError) this.p.err(err.message, ins);
      throw err;
    }
  }

  private async dispatch(st: StageState, stage: ParsedStage, ins: Instruction): Promise<void> {
    const p = this.p;
    const cfg = st.plan.config;
    const env = (): ReadonlyMap<string, string> => this.expansionEnv(st);
    switch (ins.keyword) {
      case 'ENV': {
        const e = env();
        const parts: string[] = [];
        // Every pair reads the env as it was before this instruction.
        const pairs = (ins.pairs ?? []).map((kv) => [this.expandChecked(st, kv.key, e, ins), this.expandChecked(st, kv.value, e, ins)] as const);
        // Each value is copied into the history entry and (below) the config's env.
        for (const [k, v] of pairs) p.charge(k.length + v.length, ins);
        for (const [k, v] of pairs) {
          const at = st.envIndex.get(k);
          if (at !== undefined) st.env[at][1] = v;
          else {
            st.envIndex.set(k, st.env.length);
            st.env.push([k, v]);
          }
          this.setStateEnv(st, k, v);
          parts.push(`${k}=${v}`);
        }
        this.history(st, `ENV ${parts.join(' ')}`, true);
        return;
      }
      case 'LABEL': {
        const e = env();
        const parts: string[] = [];
        cfg.Labels ??= {};
        for (const kv of ins.pairs ?? []) {
          const k = this.expandChecked(st, kv.key, e, ins);
          const v = this.expandChecked(st, kv.value, e, ins);
          p.charge(2 * (k.length + v.length), ins); // the config's label and the history entry
          cfg.Labels[k] = v;
          parts.push(`${k}=${v}`);
        }
        this.history(st, `LABEL ${parts.join(' ')}`, true);
        return;
      }
      case 'MAINTAINER': {
        st.plan.author = ins.args[0];
        this.history(st, `MAINTAINER ${ins.args[0]}`, true);
        return;
      }
      case 'ARG': {
        const parts: string[] = [];
        for (const word of ins.args) {
          const e = env();
          const [rawKey, rawValue] = splitKeyValue(word);
          const key = p.expand(rawKey, e, ins);
          let value: string | undefined = p.buildArg(key);
          if (value === undefined) {
            if (rawValue !== undefined) value = this.expandChecked(st, rawValue, e, ins);
            else value = this.metaEnv.get(key);
          }
          if (value !== undefined) p.charge(key.length + value.length, ins);
          if (!st.args.has(key)) st.argOrder.push(key);
          st.args.set(key, value);
          if (value !== undefined) this.setStateEnv(st, key, value);
          parts.push(value === undefined ? key : `${key}=${value}`);
        }
        if (parts.length > 0) this.history(st, `ARG ${parts.join(' ')}`, true);
        return;
      }
      case 'EXPOSE': {
        const e = env();
        const ports: string[] = [];
        for (const a of ins.args) {
          for (const spec of p.expandList(a, e, ins)) {
            try {
              ports.push(...parsePort(spec));
            } catch (err) {
              if (err instanceof PortError) this.p.err(excerpt(err.message, 200), ins);
              throw err;
            }
          }
        }
        cfg.ExposedPorts ??= {};
        for (const port of ports) cfg.ExposedPorts[port] = {};
        this.history(st, `EXPOSE ${goList(ports)}`, true);
        return;
      }
      case 'USER': {
        cfg.User = this.expandChecked(st, ins.args[0], env(), ins);
        this.history(st, `USER ${cfg.User}`, true);
        return;
      }
      case 'STOPSIGNAL': {
        const sig = this.expandChecked(st, ins.args[0], env(), ins);
        if (!validSignal(sig)) this.p.err(`invalid signal: ${excerpt(sig)}`, ins);
        cfg.StopSignal = sig;
        this.history(st, `STOPSIGNAL ${sig}`, true);
        return;
      }
      case 'VOLUME': {
        const e = env();
        cfg.Volumes ??= {};
        const vols: string[] = [];
        for (const a of ins.args) {
          const v = this.expandChecked(st, a, e, ins).trim();
          if (v === '') this.p.err('VOLUME specified can not be an empty string', ins);
          cfg.Volumes[v] = {};
          vols.push(v);
        }
        this.history(st, `VOLUME [${vols.join(' ')}]`, true);
        return;
      }
      case 'WORKDIR': {
        const dir = this.expandChecked(st, ins.args[0], env(), ins);
        // system.NormalizeWorkdir: an absolute path is kept as written (`/app/`, `//srv`; the
        // mkdir resolves it), a relative one is path.Join'ed (cleaned) onto the current workdir.
        const cur = this.workdir(st);
        const parent = posix.isAbsolute(cur) ? cur : cleanPath(`/${cur}`);
        const wd = dir === '' ? parent : posix.isAbsolute(dir) ? dir : cleanPath(`${parent}/${dir}`);
        cfg.WorkingDir = wd;
        // dispatchWorkdir makes no directory (and no layer) for `/`.
        if (wd !== '/') {
          // As current BuildKit's dispatchWorkdir, the directory it makes is dated SOURCE_DATE_EPOCH.
          const action: FileAction = { op: 'mkdir', path: wd, mode: 0o755, ...(cfg.User ? { chown: cfg.User } : {}), ...(this.epoch !== undefined ? { createdTime: this.epoch } : {}) };
          const v: Omit<FileVertex, 'digest' | 'cacheKey'> = { kind: 'file', actions: [action], user: cfg.User ?? '', inputs: [], name: this.vertexName(st, ins), line: ins.startLine };
          this.addVertex(st, v, [], [], { kind: 'file', actions: v.actions, user: v.user });
        }
        this.history(st, `WORKDIR ${wd}`, wd === '/');
        return;
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const shell = cfg.Shell ?? DEFAULT_SHELL;
        const args = ins.json ? ins.args : [...shell, ...ins.args];
        // An empty list is omitted from the config JSON (Go's omitempty), like unset.
        if (ins.keyword === 'CMD') {
          if (args.length > 0) cfg.Cmd = args;
          else delete cfg.Cmd;
          cfg.ArgsEscaped = true;
          st.cmdSet = true;
        } else {
          if (args.length > 0) cfg.Entrypoint = args;
          else delete cfg.Entrypoint;
          if (!st.cmdSet) delete cfg.Cmd;
        }
        this.history(st, `${ins.keyword} ${goQuoteList(args)}`, true);
        return;
      }
      case 'SHELL': {
        cfg.Shell = ins.args;
        this.history(st, `SHELL ${goList(ins.args)}`, true);
        return;
      }
      case 'HEALTHCHECK': {
        const hc: HealthConfig = {};
        if (ins.args[0] === 'NONE') hc.Test = ['NONE'];
        else {
          hc.Test = ins.json ? ['CMD', ...ins.args.slice(1)] : ['CMD-SHELL', ins.args[1]];
          Object.assign(hc, this.command(ins, healthcheckTimings));
        }
        cfg.Healthcheck = hc;
        this.history(st, healthHistory(hc), true);
        return;
      }
      case 'ONBUILD': {
        // dispatchOnbuild records the trigger in the config only: no history entry. As
        // parseOnBuild, a trigger's heredoc bodies are kept after it as written, each closed by its name.
        let expr = ins.original.replace(/^\s*ONBUILD\s*/i, '');
        for (const doc of ins.heredocs) expr += `\n${doc.raw ?? doc.content}${doc.name}`;
        cfg.OnBuild = [...(cfg.OnBuild ?? []), expr];
        return;
      }
      case 'RUN':
        return this.dispatchRun(st, stage, ins);
      case 'COPY':
      case 'ADD':
        return this.dispatchCopy(st, stage, ins);
      case 'FROM':
        this.p.err('FROM is not allowed here', ins);
    }
  }

  /**
   * The RUN environment (ENV, then declared ARGs with a value, then undeclared proxy args), the
   * part of it in the cache key (undeclared proxies stay out, as llb.WithProxy keeps them), and
   * the `|N k=v` history prefix of runCommandString: every declared ARG, valued from ENV first.
   */
  private runEnv(st: StageState, ins: Instruction): { env: string[]; keyEnv: string[]; argPairs: string[] } {
    // Each RUN carries the whole env (twice: it and its key): counted, as every ENV value is
    // copied into every later RUN of the stage.
    const env = this.envStrings(st.stateEnv, ins);
    this.p.charge(env.reduce((n, e) => n + e.length, 0), ins);
    const keyEnv = [...env];
    // runCommandString: every declared ARG once, valued from the state env, else empty.
    const argPairs = st.argOrder.map((name) => `${name}=${st.stateEnv.get(name) ?? ''}`);
    this.p.charge(argPairs.reduce((n, a) => n + a.length, 0), ins);
    // llb.WithProxy: proxy build args reach RUN in both cases, outside the cache key.
    for (const [k, v] of this.p.proxyEnv()) if (!st.stateEnv.has(k)) env.push(`${k}=${v}`);
    return { env, keyEnv, argPairs };
  }

  private async dispatchRun(st: StageState, stage: ParsedStage, ins: Instruction): Promise<void> {
    const p = this.p;
    const cfg = st.plan.config;
    const e = this.expansionEnv(st);
    const { network, security, mounts: mountFlags } = this.command(ins, runCommand);
    const mounts: RunMount[] = [];
    const inputs: SourceRef[] = [];
    const inputKeys: string[] = [];
    const content: ContentDigest[] = [];
    for (const mountFlag of mountFlags) {
      let m;
      try {
        m = completeRunMount(parseRunMount(mountFlag, (word) => this.expandChecked(st, word, e, ins)), this.workdir(st), this.sshCount);
      } catch (err) {
        if (err instanceof MountError) this.p.err(err.message, ins);
        throw err;
      }
      if (m.type === 'ssh') this.sshCount++;
      let from: SourceRef | undefined;
      if (m.from !== undefined) {
        const [ref, key] = await this.sourceFrom(st, stage, m.from, ins, 'mount', m.target);
        from = ref;
        inputs.push(ref);
        inputKeys.push(key);
      }
      switch (m.type) {
        case 'bind': {
          const source = m.source ?? '/';
          const src = from ?? ({ kind: 'context' } as const);
          if (!from) content.push(...(await this.contextDigests([source], { allowWildcard: false }, ins, false)));
          mounts.push({ type: 'bind', target: m.target!, source, from: src, rw: m.readonly === false });
          break;
        }
        case 'cache':
          // dockerui's BUILDKIT_CACHE_MOUNT_NS build arg: cache ids in a namespace of their own (NS/ID).
          const ns = p.buildArg('BUILDKIT_CACHE_MOUNT_NS');
          mounts.push({ type: 'cache', target: m.target!, id: ns ? `${ns}/${m.id!}` : m.id!, sharing: m.sharing ?? 'shared', uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o755, readonly: m.readonly ?? false, ...(from ? { from } : {}), ...(m.source !== undefined ? { source: m.source } : {}) });
          break;
        case 'tmpfs':
          mounts.push({ type: 'tmpfs', target: m.target!, ...(m.size !== undefined ? { size: m.size } : {}) });
          break;
        case 'secret':
          mounts.push({ type: 'secret', id: m.id!, ...(m.target !== undefined ? { target: m.target } : {}), ...(m.env !== undefined ? { env: m.env } : {}), required: m.required ?? false, mode: m.mode ?? 0o400, uid: m.uid ?? 0, gid: m.gid ?? 0 });
          break;
        case 'ssh':
          mounts.push({ type: 'ssh', id: m.id!, target: m.target!, required: m.required ?? false, mode: m.mode ?? 0o600, uid: m.uid ?? 0, gid: m.gid ?? 0 });
          break;
      }
    }
    const shell = cfg.Shell ?? DEFAULT_SHELL;
    let args: string[];
    let heredocs: RunHeredocFile[] | undefined;
    if (ins.json) {
      // llb's exec refuses an empty argv when BuildKit marshals the definition: no step runs.
      if (ins.args.length === 0) this.p.marshalErr('failed to marshal LLB definition: arguments are required; give RUN a command', ins);
      args = ins.args;
    } else if (ins.heredocs.length > 0) {
      const cmd = ins.args[0];
      if (/^(\d*)<<(-?)([^<]*)$/.test(cmd.trim()) && ins.heredocs.length === 1) {
        const doc = ins.heredocs[0];
        // Like BuildKit, the script file still runs through the shell: [sh -c /dev/pipes/EOF].
        if (doc.content.startsWith('#!')) {
          heredocs = [{ name: doc.name, content: doc.content, path: posix.join('/dev/pipes', doc.name), mode: 0o755 }];
          args = [...shell, posix.join('/dev/pipes', doc.name)];
        } else args = [...shell, doc.content];
      } else {
        // The shell runs the heredocs itself: hand it the full script, bodies included.
        let script = cmd;
        for (const doc of ins.heredocs) script += '\n' + doc.content + doc.name;
        args = [...shell, script];
      }
    } else args = [...shell, ins.args[0]];
    if (this.opts.shmSize) mounts.push({ type: 'tmpfs', target: '/dev/shm', size: this.opts.shmSize });
    const { env, keyEnv, argPairs } = this.runEnv(st, ins);
    // llb's exec: the first ssh socket is SSH_AUTH_SOCK unless the env already names one.
    const firstSsh = mounts.find((m) => m.type === 'ssh');
    if (firstSsh && !env.some((e) => e.startsWith('SSH_AUTH_SOCK='))) {
      env.push(`SSH_AUTH_SOCK=${firstSsh.target}`);
      keyEnv.push(`SSH_AUTH_SOCK=${firstSsh.target}`);
    }
    const cwd = this.workdir(st);
    const user = cfg.User ?? '';
    // dockerui reads the sandbox hostname from this build arg and gives it to every RUN.
    const hostname = this.p.buildArg('BUILDKIT_SANDBOX_HOSTNAME');
    const extraHosts = this.opts.extraHosts?.length ? this.opts.extraHosts.map((h) => ({ host: h.host, ip: h.ip })) : undefined;
    const ulimits = this.opts.ulimits?.length ? this.opts.ulimits.map((u) => ({ name: u.name, soft: u.soft, hard: u.hard })) : undefined;
    const v: Omit<ExecVertex, 'digest' | 'cacheKey'> = {
      kind: 'exec',
      args,
      env,
      cwd,
      user,
      network,
      security,
      ...(hostname ? { hostname } : {}),
      ...(extraHosts ? { extraHosts } : {}),
      ...(ulimits ? { ulimits } : {}),
      mounts,
      ...(heredocs ? { heredocs } : {}),
      inputs,
      name: this.vertexName(st, ins),
      line: ins.startLine,
    };
    this.addVertex(st, v, inputKeys, content, { kind: 'exec', args, env: keyEnv, cwd, user, network, security, ...(hostname ? { hostname } : {}), ...(extraHosts ? { extraHosts } : {}), ...(ulimits ? { ulimits } : {}), mounts, heredocs, inputs: inputs.map((i) => (i.kind === 'stage' ? { kind: 'stage' } : i)) });
    const prefix = argPairs.length > 0 ? `|${argPairs.length} ${argPairs.join(' ')} ` : '';
    this.history(st, `RUN ${prefix}${args.join(' ')} # buildkit`, false);
  }

  /**
   * The context entries a copy (or bind mount) reads, for its cache key: fileop's own selection
   * (wildcards, .dockerignore-style --exclude, symlinks, --parents) over the synced file list,
   * so the key covers exactly what the copy will read. A missing literal source fails like
   * BuildKit's cache-key computation.
   */
  private async contextDigests(sources: string[], sel: { exclude?: string[]; parents?: boolean; followSymlinks?: boolean; allowWildcard?: boolean }, ins: Instruction, strict: boolean): Promise<ContentDigest[]> {
    const ctx = this.opts.context;
    if (!ctx) return [];
    this.contextTree ??= ctx.entries.map(treeEntry);
    let read;
    try {
      read = await contentDigestsFor({ entries: this.contextTree, sources, ...sel, allowEmptyWildcard: true });
    } catch (err) {
      if (!(err instanceof FileOpError)) throw err;
      if (!strict && err.code === 'ENOSOURCE') return [];
      this.p.err(excerpt(err.message, 300), ins);
    }
    return read.map((r) => ({ path: r.path, mode: r.mode | TYPE_BITS[r.type], digest: r.digest ?? '', ...(r.xattrs ? { xattrs: r.xattrs } : {}) }));
  }

  private async dispatchCopy(st: StageState, stage: ParsedStage, ins: Instruction): Promise<void> {
    const p = this.p;
    const cfg = st.plan.config;
    const e = this.expansionEnv(st);
    const isAdd = ins.keyword === 'ADD';
    const flags = copyCommand(ins);
    const chown = flags.chown !== undefined ? this.expandChecked(st, flags.chown, e, ins) : undefined;
    const chmod = flags.chmod !== undefined ? this.expandChecked(st, flags.chmod, e, ins) : undefined;
    if (chmod !== undefined && chmod !== '') {
      // convert_copy.go: octal up to 07777, else a symbolic mode; numeric-looking values get the octal message.
      const octal = /^[0-7]+$/.test(chmod) && parseInt(chmod, 8) <= 0o7777;
      if (!octal && (/^\d/.test(chmod) || !/^([ugoa]*([-+=]([rwxXst]*|[ugo]))+)(,[ugoa]*([-+=]([rwxXst]*|[ugo]))+)*$/.test(chmod))) {
        this.p.err(`invalid chmod parameter: '${excerpt(chmod)}'. it should be octal string and between 0 and 07777`, ins);
      }
    }
    const { link, parents, keepGitDir, unpack } = flags;
    const exclude = flags.exclude.map((x) => p.expand(x, e, ins));
    const checksum = flags.checksum !== undefined ? this.expandChecked(st, flags.checksum, e, ins) : undefined;

    const words = ins.args;
    const destRaw = this.expandChecked(st, words[words.length - 1], e, ins);
    const rawSources = words.slice(0, -1);
    const heredocQueue = [...ins.heredocs];
    const heredocSources: typeof ins.heredocs = [];
    const sources: string[] = [];
    for (const s of rawSources) {
      if (!ins.json && heredocQueue.length > 0 && /^(\d*)<<(-?)([^<]*)$/.test(s)) {
        heredocSources.push(heredocQueue.shift()!);
        continue;
      }
      sources.push(this.expandChecked(st, s, e, ins));
    }
    // BuildKit has no "more than one source needs a directory" rule: each source is copied to
    // dest on its own, so `COPY a b /f` leaves /f a file holding b.
    const destIsDir = destRaw.endsWith('/') || destRaw === '.' || destRaw.endsWith('/.') || destRaw === '';
    let dest = posix.join('/', destRaw.startsWith('/') ? '' : this.workdir(st), destRaw);
    if (destIsDir && !dest.endsWith('/')) dest += '/';

    const actions: FileAction[] = [];
    const inputs: SourceRef[] = [];
    const inputKeys: string[] = [];
    let content: ContentDigest[] = [];
    // An empty --from is the build context, as in convert.go (`if c.From != ""`).
    const fromRaw = flags.from === '' ? undefined : flags.from;
    let from: SourceRef = { kind: 'context' };
    if (fromRaw !== undefined) {
      // convert.go toCommand: --from is not expanded; a value that would change under expansion
      // (with no variables set) is refused, so stages stay known before any ARG is evaluated.
      if (p.expand(fromRaw, new Map(), ins) !== fromRaw) this.p.err('variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround', ins);
      const [ref, key] = await this.sourceFrom(st, stage, fromRaw, ins, 'COPY');
      from = ref;
      inputs.push(ref);
      inputKeys.push(key);
    }
    if (checksum !== undefined && !isAdd) this.p.err('--checksum is only supported by ADD', ins);
    const isGit = (s: string): boolean => /^(git@|git:\/\/|ssh:\/\/)/.test(s) || (/^https?:\/\//.test(s) && /\.git(#.*)?$/.test(s));
    const isUrl = (s: string): boolean => /^https?:\/\//.test(s);
    const local: string[] = [];
    for (const s of sources) {
      if (isAdd && fromRaw === undefined && isGit(s)) {
        const hash = s.indexOf('#');
        const url = hash < 0 ? s : s.slice(0, hash);
        const frag = hash < 0 ? '' : s.slice(hash + 1);
        const [ref, subdir] = frag.split(':', 2);
        if (this.opts.resolveGit) {
          // The checkout's files, copied like a directory source: into dest, with --chown/--chmod.
          let checkout: Extract<NamedContextSource, { kind: 'context' }>;
          try {
            checkout = await this.opts.resolveGit(s, { keepGitDir, ...(checksum ? { checksum } : {}) });
          } catch (err) {
            this.p.err(`ADD ${excerpt(s)}: ${excerpt((err as Error).message, 300)}`, ins);
          }
          const source: SourceRef = { kind: 'context', contextId: checkout.contextId };
          actions.push({ op: 'copy', from: source, sources: ['/'], dest, ...(chown ? { chown } : {}), ...(chmod ? { chmod } : {}), parents: false, exclude: [], link, followSymlinks: true, isAdd: false });
          inputs.push(source);
          inputKeys.push(namedContextStateKey(checkout.contextId));
          continue;
        }
        actions.push({ op: 'addGit', url, ...(ref ? { ref } : {}), ...(subdir ? { subdir } : {}), keepGitDir, dest, ...(checksum ? { checksum } : {}), ...(chown ? { chown } : {}), ...(chmod ? { chmod } : {}), link });
      } else if (isAdd && fromRaw === undefined && isUrl(s)) {
        actions.push({ op: 'addUrl', url: s, dest, ...(checksum ? { checksum } : {}), ...(chown ? { chown } : {}), ...(chmod ? { chmod } : {}), ...(unpack !== undefined ? { unpack } : {}), link });
      } else {
        if (s.includes('://') && !isAdd) this.p.err(`source can't be a URL for COPY; use ADD ${s}`, ins);
        local.push(s);
      }
    }
    if (checksum !== undefined && checksum !== '') {
      if (sources.length + heredocSources.length !== 1) this.p.err(`checksum can't be specified for multiple sources`, ins);
      if (actions.length === 0) this.p.err('checksum requires HTTP(S) or Git sources', ins);
    }
    if (local.length > 0) {
      let contentDigests: ContentDigest[] | undefined;
      if (from.kind === 'context' && !from.contextId && this.opts.context) {
        contentDigests = await this.contextDigests(local, { exclude, parents, followSymlinks: true }, ins, true);
        content = content.concat(contentDigests);
      }
      actions.unshift({
        op: 'copy',
        from,
        sources: local,
        dest,
        ...(chown ? { chown } : {}),
        ...(chmod ? { chmod } : {}),
        parents,
        exclude,
        link,
        followSymlinks: true,
        isAdd,
        ...(unpack !== undefined ? { unpack } : {}),
        ...(contentDigests ? { contentDigests } : {}),
      });
    }
    for (const doc of heredocSources) {
      const body = doc.expand ? this.expandChecked(st, doc.content, e, ins, { rawQuotes: true }) : doc.content;
      let mode = 0o644;
      if (chmod !== undefined && /^[0-7]+$/.test(chmod)) mode = parseInt(chmod, 8);
      // --link without --chmod: the heredoc's file is merged as the copies are (the solver's isLinked).
      // The destination as written: the solver's mkfile puts the file named so inside it when it is (or resolves to) a directory.
      actions.push({ op: 'mkfile', path: dest, name: doc.name, content: body, mode, ...(chown ? { chown } : {}), ...(link && chmod === undefined ? { link: true } : {}) });
    }
    const v: Omit<FileVertex, 'digest' | 'cacheKey'> = { kind: 'file', actions, user: cfg.User ?? '', inputs, name: this.vertexName(st, ins), line: ins.startLine };
    const digestActions = actions.map((a) => {
      if (a.op !== 'copy') return a;
      const { contentDigests: _c, ...rest } = a;
      return rest.from.kind === 'stage' ? { ...rest, from: { kind: 'stage' } } : rest;
    });
    this.addVertex(st, v, inputKeys, content, { kind: 'file', actions: digestActions, user: v.user });
    // convert_copy.go: flags BuildKit names, the sources, the heredocs, the destination as written.
    const flagsShown = [parents ? '--parents' : '', chown !== undefined && chown !== '' ? `--chown=${chown}` : '', chmod !== undefined && chmod !== '' ? `--chmod=${chmod}` : ''].filter(Boolean);
    const shown = [...flagsShown, ...sources, ...heredocSources.map((d) => `<<${d.name}`), destRaw];
    this.history(st, `${ins.keyword} ${shown.join(' ')} # buildkit`, false);
  }
}

/**
 * Plans a build: one PlatformPlan per requested platform holding the stages the target needs.
 * Throws DockerfileError for anything the user must fix.
 */
export async function planBuild(parsed: ParsedDockerfile, options: PlanOptions): Promise<BuildPlan> {
  return new Planner(parsed, options).plan();
}

export type { StageBase };

/** A named directory context's state: its id is the digest of its whole manifest (contents,
 *  modes and times), so any change to it is a new key. */
function namedContextStateKey(contextId: string): string {
  return canonicalDigest({ namedContext: contextId });
}
