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
import { DockerfileError, didYouMean, excerpt } from './DockerfileError.js';
import { compileDockerignore } from './dockerignore.js';
import { expandWord, expandWords, WordExpansionError } from './expandWord.js';
import { parse, type Instruction, type ParsedDockerfile, type ParsedStage } from './parse.js';
import { formatGoDuration, parseGoDuration, DurationError } from './instructions/duration.js';
import { completeRunMount, MountError, parseRunMount } from './instructions/runMount.js';
import { withSuggestion } from './instructions/suggest.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const DEFAULT_SHELL = ['/bin/sh', '-c'];
/** Docker's predefined proxy args: usable without ARG, kept out of history and cache keys. */
export const PROXY_ARGS = new Set(['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'FTP_PROXY', 'ftp_proxy', 'NO_PROXY', 'no_proxy', 'ALL_PROXY', 'all_proxy']);

export interface ResolvedImage {
  /** Canonical name@digest. */
  ref: string;
  /** Digest of the platform-specific manifest. */
  digest: string;
  config: ImageConfigFile;
}

export type ImageResolver = (ref: string, platform: string) => Promise<ResolvedImage>;

export interface PlanOptions {
  platforms: string[];
  buildPlatform: string;
  buildArgs?: Record<string, string>;
  target?: string;
  labels?: Record<string, string>;
  context?: { entries: ContextEntry[] };
  resolveImage: ImageResolver;
  noCache?: boolean;
  dockerfileName?: string;
}

type Env = [string, string][];

interface StageState {
  plan: StagePlan;
  /** ENV in order (also mirrored into config.Env at the end). */
  env: Env;
  args: Map<string, string | undefined>;
  argOrder: string[];
  cmdSet: boolean;
  stateKey: string;
  step: number;
  total: number;
  label: string;
}

function platformArgs(build: string, target: string): Map<string, string> {
  const b = parsePlatform(build);
  const t = parsePlatform(target);
  return new Map([
    ['BUILDPLATFORM', normalizePlatform(build)],
    ['BUILDOS', b.os],
    ['BUILDARCH', b.architecture],
    ['BUILDVARIANT', b.variant ?? ''],
    ['TARGETPLATFORM', normalizePlatform(target)],
    ['TARGETOS', t.os],
    ['TARGETARCH', t.architecture],
    ['TARGETVARIANT', t.variant ?? ''],
  ]);
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

function globToRegex(component: string): RegExp {
  let re = '^';
  for (let i = 0; i < component.length; i++) {
    const c = component[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = component.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        let cls = component.slice(i + 1, end);
        if (cls.startsWith('^') || cls.startsWith('!')) cls = '^' + cls.slice(1);
        re += '[' + cls.replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else if (c === '\\' && i + 1 < component.length) re += '\\' + component[++i];
    else re += c.replace(/[.+^${}()|\\/]/g, '\\$&');
  }
  try {
    return new RegExp(re + '$', 's');
  } catch {
    return /^\u0000never$/;
  }
}

const GLOB_CHARS = /[*?[\\]/;

class Planner {
  private readonly buildArgs: Record<string, string>;
  private readonly usedArgs = new Set<string>();
  readonly warnings: PlanWarning[] = [];
  private readonly imageCache = new Map<string, Promise<ResolvedImage>>();
  private readonly file: string;

  constructor(
    private readonly df: ParsedDockerfile,
    private readonly opts: PlanOptions,
  ) {
    this.buildArgs = opts.buildArgs ?? {};
    this.file = opts.dockerfileName ?? df.file;
  }

  err(message: string, ins?: Instruction): never {
    throw new DockerfileError(message, ins?.startLine ?? 0, ins?.endLine ?? 0, this.file);
  }

  expand(word: string, env: Map<string, string>, ins: Instruction, opts: { rawQuotes?: boolean } = {}): string {
    try {
      return expandWord(word, env, { escape: this.df.escape, ...opts });
    } catch (e) {
      if (e instanceof WordExpansionError) this.err(`failed to process "${excerpt(word)}": ${e.message}`, ins);
      throw e;
    }
  }

  expandList(word: string, env: Map<string, string>, ins: Instruction): string[] {
    try {
      return expandWords(word, env, { escape: this.df.escape });
    } catch (e) {
      if (e instanceof WordExpansionError) this.err(`failed to process "${excerpt(word)}": ${e.message}`, ins);
      throw e;
    }
  }

  resolve(ref: string, platform: string, ins: Instruction): Promise<ResolvedImage> {
    const key = `${platform} ${ref}`;
    let p = this.imageCache.get(key);
    if (!p) {
      p = this.opts.resolveImage(ref, platform).catch((e: unknown) => {
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
    const unused = Object.keys(this.buildArgs).filter((k) => !this.usedArgs.has(k) && !PROXY_ARGS.has(k) && !k.startsWith('BUILDKIT_'));
    if (unused.length > 0) this.warnings.push({ message: `one or more build-args [${unused.sort().join(' ')}] were not consumed` });
    return { platforms: plans, warnings: [...this.df.warnings, ...this.warnings] };
  }

  buildArg(name: string): string | undefined {
    if (Object.prototype.hasOwnProperty.call(this.buildArgs, name)) {
      this.usedArgs.add(name);
      return this.buildArgs[name];
    }
    return undefined;
  }

  proxyArgs(): [string, string][] {
    return Object.entries(this.buildArgs).filter(([k]) => PROXY_ARGS.has(k));
  }

  /**
   * BuildKit's validateCircularDependency: a cycle of COPY --from / mount from= references
   * anywhere in the file is an error, needed or not. Forward references that are not cycles
   * fail only when the stage is planned (stage order, see findStage).
   */
  private checkStageReferences(): void {
    const stages = this.df.stages;
    const deps = new Map<number, Instruction[]>();
    const edges = new Map<number, { to: number; ins: Instruction }[]>();
    const lookup = (ref: string): ParsedStage | undefined => {
      if (/^\d+$/.test(ref)) return stages[Number(ref)];
      return this.stageByName(ref);
    };
    for (const stage of stages) {
      const list: { to: number; ins: Instruction }[] = [];
      for (const ins of stage.instructions) {
        if (ins.keyword === 'COPY') {
          const from = ins.flags.find((f) => f.name === 'from')?.value;
          const found = from !== undefined && !from.includes('$') ? lookup(from) : undefined;
          if (found) list.push({ to: found.index, ins });
        }
        if (ins.keyword === 'RUN') {
          for (const f of ins.flags) {
            const m = f.name === 'mount' ? /(?:^|,)from=([^,]*)/.exec(f.value ?? '') : null;
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
          this.err(`circular dependency detected on stage: ${name}`, e.ins);
        }
        if (!done.has(e.to)) { onPath.add(e.to); stack.push({ node: e.to, next: 0 }); }
      }
      void deps;
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
    this.err(withSuggestion(`target stage ${JSON.stringify(target)} could not be found`, target, names, true));
  }
}

class PlatformPlanner {
  private readonly metaEnv = new Map<string, string>();
  private readonly planned = new Map<number, Promise<StageState>>();
  private readonly done: StageState[] = [];
  private readonly platArgs: Map<string, string>;
  private sshCount = 0;

  constructor(
    private readonly p: Planner,
    private readonly df: ParsedDockerfile,
    private readonly platform: string,
    private readonly opts: PlanOptions,
  ) {
    this.platArgs = platformArgs(opts.buildPlatform, platform);
    for (const [k, v] of this.platArgs) this.metaEnv.set(k, v);
    // Global ARGs: build args override defaults; defaults expand with earlier global args.
    for (const ins of df.metaArgs) {
      for (const word of ins.args) {
        const [rawKey, rawValue] = splitKeyValue(word);
        const key = p.expand(rawKey, this.metaEnv, ins);
        const override = p.buildArg(key);
        if (override !== undefined) this.metaEnv.set(key, override);
        else if (rawValue !== undefined) this.metaEnv.set(key, p.expand(rawValue, this.metaEnv, ins));
        else this.metaEnv.delete(key);
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

  /** Finds a stage by name (case-insensitive) or index, rejecting the current and later ones. */
  private findStage(ref: string, current: ParsedStage, ins: Instruction, what: string, allowIndex: boolean): ParsedStage | undefined {
    const lower = ref.toLowerCase();
    let found = this.df.stages.find((s) => s.name === lower);
    if (!found && allowIndex && /^\d+$/.test(ref)) {
      const idx = Number(ref);
      found = this.df.stages[idx];
      if (!found) this.p.err(`${what} refers to unknown stage index ${idx}; the Dockerfile has stages 0..${this.df.stages.length - 1}`, ins);
    }
    if (!found) return undefined;
    if (found.index === current.index && what === 'FROM') return undefined;
    if (found.index === current.index) this.p.err(`circular dependency detected: stage ${current.name ?? current.index} uses itself in ${what}`, ins);
    if (found.index > current.index) this.p.err(`${what} refers to stage "${ref}" defined later (line ${found.from.startLine}); move that stage before this one`, ins);
    return found;
  }

  private async doPlanStage(stage: ParsedStage): Promise<StageState> {
    const p = this.p;
    const from = stage.from;
    const platFlag = from.flags.find((f) => f.name === 'platform');
    let stagePlatform = this.platform;
    if (platFlag) {
      const v = p.expand(platFlag.value ?? '', this.metaEnv, from);
      try {
        stagePlatform = normalizePlatform(v);
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
      noCache: this.opts.noCache ?? false,
    };
    let config: ImageConfig;
    let stateKey: string;
    let baseStage: StageState | undefined;
    const baseRef = this.findStage(baseName, stage, from, 'FROM', false);
    if (baseRef) {
      baseStage = await this.planStage(baseRef.index);
      plan.base = { kind: 'stage', stageId: baseStage.plan.id };
      plan.dependsOn.push(baseStage.plan.id);
      config = structuredClone(baseStage.plan.config);
      // Entries are never changed once pushed: sharing them keeps a long chain linear in time
      // (a deep clone per stage made a 10,000-stage chain take minutes).
      plan.history = baseStage.plan.history.slice();
      stateKey = baseStage.stateKey;
      if (platFlag === undefined) plan.platform = baseStage.plan.platform;
    } else if (baseName.toLowerCase() === 'scratch') {
      config = { Env: ['PATH=' + DEFAULT_PATH], WorkingDir: '/' };
      stateKey = scratchStateKey(stagePlatform);
    } else {
      const img = await p.resolve(baseName, stagePlatform, from);
      plan.base = { kind: 'image', ref: img.ref, digest: img.digest };
      config = structuredClone(img.config.config ?? {});
      stateKey = imageStateKey(img.digest);
    }
    const env: Env = (config.Env ?? []).map((e) => {
      const eq = e.indexOf('=');
      return eq < 0 ? [e, ''] : [e.slice(0, eq), e.slice(eq + 1)];
    });
    if (!env.some(([k]) => k === 'PATH')) env.push(['PATH', DEFAULT_PATH]);
    const triggers = config.OnBuild ?? [];
    delete config.OnBuild;
    const st: StageState = { plan, env, args: new Map(), argOrder: [], cmdSet: false, stateKey, step: 1, total: 1, label };
    plan.config = config;

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
    for (const ins of all) {
      st.step++;
      await this.dispatch(st, stage, ins);
    }
    config.Env = st.env.map(([k, v]) => `${k}=${v}`);
    plan.cacheKey = st.stateKey;
    this.done.push(st);
    return st;
  }

  /** Expansion env: in-scope ARGs overlaid by ENV (ENV always wins over ARG). */
  private expansionEnv(st: StageState): Map<string, string> {
    const m = new Map<string, string>();
    for (const name of st.argOrder) {
      const v = st.args.get(name);
      if (v !== undefined) m.set(name, v);
    }
    for (const [k, v] of st.env) m.set(k, v);
    return m;
  }

  private history(st: StageState, createdBy: string, emptyLayer: boolean): void {
    const h: HistoryEntry = { created_by: createdBy, comment: 'buildkit.dockerfile.v0' };
    if (emptyLayer) h.empty_layer = true;
    st.plan.history.push(h);
  }

  private vertexName(st: StageState, ins: Instruction): string {
    const text = ins.original.replace(/^\S+/, ins.keyword);
    return `[${st.label} ${st.step}/${st.total}] ${text}`;
  }

  private workdir(st: StageState): string {
    return st.plan.config.WorkingDir || '/';
  }

  private addVertex(st: StageState, v: Omit<ExecVertex, 'digest' | 'cacheKey'> | Omit<FileVertex, 'digest' | 'cacheKey'>, inputKeys: string[], content: ContentDigest[], digestView: unknown): void {
    const digest = canonicalDigest(digestView);
    const cacheKey = vertexCacheKey({ digest, parent: st.stateKey, inputs: inputKeys, content });
    st.plan.vertices.push({ ...v, digest, cacheKey } as Vertex);
    st.stateKey = cacheKey;
  }

  /** Resolves --from / from= to a source and its cache key, recording the dependency. */
  private async sourceFrom(st: StageState, stage: ParsedStage, ref: string, ins: Instruction, what: string): Promise<[SourceRef, string]> {
    const found = this.findStage(ref, stage, ins, what, true);
    if (found) {
      const dep = await this.planStage(found.index);
      if (!st.plan.dependsOn.includes(dep.plan.id)) st.plan.dependsOn.push(dep.plan.id);
      return [{ kind: 'stage', stageId: dep.plan.id }, dep.stateKey];
    }
    const img = await this.p.resolve(ref, st.plan.platform, ins);
    return [{ kind: 'image', ref: img.ref, digest: img.digest }, imageStateKey(img.digest)];
  }

  private flag(ins: Instruction, name: string): string | undefined {
    return ins.flags.find((f) => f.name === name)?.value;
  }

  private boolFlag(ins: Instruction, name: string): boolean {
    const f = ins.flags.find((x) => x.name === name);
    return f !== undefined && (f.value === undefined || f.value.toLowerCase() === 'true');
  }

  private async dispatch(st: StageState, stage: ParsedStage, ins: Instruction): Promise<void> {
    const p = this.p;
    const cfg = st.plan.config;
    const env = (): Map<string, string> => this.expansionEnv(st);
    switch (ins.keyword) {
      case 'ENV': {
        const e = env();
        const parts: string[] = [];
        for (const kv of ins.pairs ?? []) {
          const k = p.expand(kv.key, e, ins);
          const v = p.expand(kv.value, e, ins);
          const existing = st.env.find(([name]) => name === k);
          if (existing) existing[1] = v;
          else st.env.push([k, v]);
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
          const k = p.expand(kv.key, e, ins);
          const v = p.expand(kv.value, e, ins);
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
            if (rawValue !== undefined) value = p.expand(rawValue, e, ins);
            else value = this.metaEnv.get(key);
          }
          if (!st.args.has(key)) st.argOrder.push(key);
          st.args.set(key, value);
          if (!PROXY_ARGS.has(key)) parts.push(value === undefined ? key : `${key}=${value}`);
        }
        if (parts.length > 0) this.history(st, `ARG ${parts.join(' ')}`, true);
        return;
      }
      case 'EXPOSE': {
        const e = env();
        const ports: string[] = [];
        for (const a of ins.args) {
          for (const spec of p.expandList(a, e, ins)) {
            const m = /^(\d+)(?:-(\d+))?(?:\/([a-zA-Z]+))?$/.exec(spec);
            if (!m) this.p.err(`invalid containerPort: ${spec}; use PORT[-PORT][/PROTOCOL], e.g. 8080/tcp`, ins);
            const proto = (m[3] ?? 'tcp').toLowerCase();
            if (!['tcp', 'udp', 'sctp'].includes(proto)) this.p.err(`invalid proto: ${m[3]} in EXPOSE ${spec}; use tcp, udp or sctp`, ins);
            const start = Number(m[1]);
            const end = m[2] !== undefined ? Number(m[2]) : start;
            if (start > 65535 || end > 65535 || end < start) this.p.err(`invalid port range: ${spec}`, ins);
            for (let port = start; port <= end; port++) ports.push(`${port}/${proto}`);
          }
        }
        cfg.ExposedPorts ??= {};
        for (const port of ports) cfg.ExposedPorts[port] = {};
        this.history(st, `EXPOSE ${goQuoteList(ports).replace(/"/g, '')}`, true);
        return;
      }
      case 'USER': {
        cfg.User = p.expand(ins.args[0], env(), ins);
        this.history(st, `USER ${cfg.User}`, true);
        return;
      }
      case 'STOPSIGNAL': {
        const sig = p.expand(ins.args[0], env(), ins);
        if (!/^(SIG)?[A-Z0-9+-]+$/i.test(sig)) this.p.err(`invalid signal: ${sig}; use a name like SIGTERM or a number`, ins);
        cfg.StopSignal = sig;
        this.history(st, `STOPSIGNAL ${sig}`, true);
        return;
      }
      case 'VOLUME': {
        const e = env();
        cfg.Volumes ??= {};
        const vols: string[] = [];
        for (const a of ins.args) {
          const v = p.expand(a, e, ins).trim();
          if (v === '') this.p.err('VOLUME specified can not be an empty string', ins);
          cfg.Volumes[v] = {};
          vols.push(v);
        }
        this.history(st, `VOLUME [${vols.join(' ')}]`, true);
        return;
      }
      case 'WORKDIR': {
        const dir = p.expand(ins.args[0], env(), ins);
        const wd = posix.join('/', dir.startsWith('/') ? '' : this.workdir(st), dir);
        cfg.WorkingDir = wd.length > 1 && wd.endsWith('/') ? wd.slice(0, -1) : wd;
        const action: FileAction = { op: 'mkdir', path: cfg.WorkingDir, mode: 0o755, ...(cfg.User ? { chown: cfg.User } : {}) };
        const v: Omit<FileVertex, 'digest' | 'cacheKey'> = { kind: 'file', actions: [action], user: cfg.User ?? '', inputs: [], name: this.vertexName(st, ins), line: ins.startLine };
        this.addVertex(st, v, [], [], { kind: 'file', actions: v.actions, user: v.user });
        this.history(st, `WORKDIR ${cfg.WorkingDir}`, false);
        return;
      }
      case 'CMD':
      case 'ENTRYPOINT': {
        const shell = cfg.Shell ?? DEFAULT_SHELL;
        const args = ins.json ? ins.args : [...shell, ...ins.args];
        if (ins.keyword === 'CMD') {
          cfg.Cmd = args;
          st.cmdSet = true;
        } else {
          cfg.Entrypoint = args;
          if (!st.cmdSet) delete cfg.Cmd;
        }
        this.history(st, `${ins.keyword} ${goQuoteList(args)}`, true);
        return;
      }
      case 'SHELL': {
        cfg.Shell = ins.args;
        this.history(st, `SHELL ${goQuoteList(ins.args)}`, true);
        return;
      }
      case 'HEALTHCHECK': {
        const hc: HealthConfig = {};
        if (ins.args[0] === 'NONE') hc.Test = ['NONE'];
        else {
          hc.Test = ins.json ? ['CMD', ...ins.args.slice(1)] : ['CMD-SHELL', ins.args[1]];
          const durations: [string, keyof HealthConfig][] = [['interval', 'Interval'], ['timeout', 'Timeout'], ['start-period', 'StartPeriod'], ['start-interval', 'StartInterval']];
          for (const [flag, field] of durations) {
            const raw = this.flag(ins, flag);
            if (raw === undefined) continue;
            const ns = parseDuration(raw);
            if (ns === undefined) return this.p.err(`invalid duration for --${flag}: ${raw}; use e.g. 30s or 1m30s`, ins);
            if (ns !== 0 && ns < 1e6) this.p.err(`--${flag} cannot be less than 1ms`, ins);
            if (ns !== 0) (hc as Record<string, unknown>)[field] = ns;
          }
          const retries = this.flag(ins, 'retries');
          if (retries !== undefined) {
            if (!/^\d+$/.test(retries)) this.p.err(`--retries must be a non-negative integer, not ${retries}`, ins);
            if (Number(retries) > 0) hc.Retries = Number(retries);
          }
        }
        cfg.Healthcheck = hc;
        this.history(st, `HEALTHCHECK ${hc.Test[0] === 'NONE' ? 'NONE' : goQuoteList(hc.Test)}`, true);
        return;
      }
      case 'ONBUILD': {
        const expr = ins.original.replace(/^\s*ONBUILD\s*/i, '');
        cfg.OnBuild = [...(cfg.OnBuild ?? []), expr];
        this.history(st, `ONBUILD ${expr}`, true);
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

  private runEnv(st: StageState): { env: string[]; keyEnv: string[]; argPairs: string[] } {
    const env: string[] = st.env.map(([k, v]) => `${k}=${v}`);
    const keyEnv = [...env];
    const argPairs: string[] = [];
    const envNames = new Set(st.env.map(([k]) => k));
    for (const name of st.argOrder) {
      const v = st.args.get(name);
      if (v === undefined || envNames.has(name)) continue;
      env.push(`${name}=${v}`);
      if (!PROXY_ARGS.has(name)) {
        keyEnv.push(`${name}=${v}`);
        argPairs.push(`${name}=${v}`);
      }
      envNames.add(name);
    }
    for (const [k, v] of this.p.proxyArgs()) {
      if (envNames.has(k)) continue;
      env.push(`${k}=${v}`);
      envNames.add(k);
    }
    return { env, keyEnv, argPairs };
  }

  private async dispatchRun(st: StageState, stage: ParsedStage, ins: Instruction): Promise<void> {
    const p = this.p;
    const cfg = st.plan.config;
    const e = this.expansionEnv(st);
    const networkRaw = this.flag(ins, 'network') ?? 'default';
    if (networkRaw !== 'default' && networkRaw !== 'none' && networkRaw !== 'host') this.p.err(`unsupported --network=${networkRaw}; use default, none or host`, ins);
    const network: ExecVertex['network'] = networkRaw;
    const securityRaw = this.flag(ins, 'security') ?? 'sandbox';
    if (securityRaw !== 'sandbox' && securityRaw !== 'insecure') this.p.err(`unsupported --security=${securityRaw}; use sandbox or insecure`, ins);
    const security: ExecVertex['security'] = securityRaw;
    const mounts: RunMount[] = [];
    const inputs: SourceRef[] = [];
    const inputKeys: string[] = [];
    const content: ContentDigest[] = [];
    for (const f of ins.flags) {
      if (f.name !== 'mount') continue;
      const value = p.expand(f.value ?? '', e, ins);
      let m;
      try {
        m = parseRunMount(value, this.workdir(st), this.sshCount);
      } catch (err) {
        this.p.err(`invalid --mount=${value}: ${(err as Error).message}`, ins);
      }
      if (m.type === 'ssh') this.sshCount++;
      let from: SourceRef | undefined;
      if (m.from !== undefined) {
        const [ref, key] = await this.sourceFrom(st, stage, m.from, ins, `--mount from=${m.from}`);
        from = ref;
        inputs.push(ref);
        inputKeys.push(key);
      }
      switch (m.type) {
        case 'bind': {
          const source = m.source ?? '/';
          const src = from ?? ({ kind: 'context' } as const);
          if (!from) content.push(...this.contextDigests([source], [], ins, false));
          mounts.push({ type: 'bind', target: m.target!, source, from: src, rw: m.readonly === false });
          break;
        }
        case 'cache':
          mounts.push({ type: 'cache', target: m.target!, id: m.id!, sharing: m.sharing ?? 'shared', uid: m.uid ?? 0, gid: m.gid ?? 0, mode: m.mode ?? 0o755, readonly: m.readonly ?? false, ...(from ? { from } : {}), ...(m.source !== undefined ? { source: m.source } : {}) });
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
    if (ins.json) args = ins.args;
    else if (ins.heredocs.length > 0) {
      const cmd = ins.args[0];
      if (/^(\d*)<<(-?)([^<]*)$/.test(cmd.trim()) && ins.heredocs.length === 1) {
        const doc = ins.heredocs[0];
        if (doc.content.startsWith('#!')) {
          heredocs = [{ name: doc.name, content: doc.content, path: posix.join('/dev/pipes', doc.name), mode: 0o755 }];
          args = [posix.join('/dev/pipes', doc.name)];
        } else args = [...shell, doc.content];
      } else {
        // The shell runs the heredocs itself: hand it the full script, bodies included.
        let script = cmd;
        for (const doc of ins.heredocs) script += '\n' + doc.content + doc.name;
        args = [...shell, script];
      }
    } else args = [...shell, ins.args[0]];
    const { env, keyEnv, argPairs } = this.runEnv(st);
    const cwd = this.workdir(st);
    const user = cfg.User ?? '';
    const v: Omit<ExecVertex, 'digest' | 'cacheKey'> = {
      kind: 'exec',
      args,
      env,
      cwd,
      user,
      network,
      security,
      mounts,
      ...(heredocs ? { heredocs } : {}),
      inputs,
      name: this.vertexName(st, ins),
      line: ins.startLine,
    };
    this.addVertex(st, v, inputKeys, content, { kind: 'exec', args, env: keyEnv, cwd, user, network, security, mounts, heredocs, inputs: inputs.map((i) => (i.kind === 'stage' ? { kind: 'stage' } : i)) });
    const prefix = argPairs.length > 0 ? `|${argPairs.length} ${argPairs.join(' ')} ` : '';
    this.history(st, `RUN ${prefix}${args.join(' ')} # buildkit`, false);
  }

  /** Context entries a copy reads, for the cache key; errors on a missing literal source. */
  private contextDigests(sources: string[], exclude: string[], ins: Instruction, strict: boolean): ContentDigest[] {
    const ctx = this.opts.context;
    if (!ctx) return [];
    const excluder = exclude.length > 0 ? compileDockerignore(exclude) : undefined;
    const out = new Map<string, ContentDigest>();
    for (const rawSrc of sources) {
      const src = posix.normalize('/' + rawSrc).replace(/^\/+/, '').replace(/\/+$/, '');
      let matched = false;
      if (!GLOB_CHARS.test(src)) {
        for (const entry of ctx.entries) {
          if (src === '' || entry.path === src || entry.path.startsWith(src + '/')) {
            matched = true;
            const rel = src === '' ? entry.path : entry.path.slice(src.length).replace(/^\//, '');
            if (excluder && rel !== '' && excluder.excludes(rel)) continue;
            out.set(entry.path, { path: entry.path, mode: entry.mode, digest: entry.digest, ...(entry.linkTarget !== undefined ? { linkTarget: entry.linkTarget } : {}) });
          }
        }
        if (!matched && strict) this.p.err(`failed to compute cache key: "${rawSrc}" not found in the build context (or excluded by .dockerignore); check the path and your .dockerignore`, ins);
      } else {
        const parts = src.split('/').map(globToRegex);
        for (const entry of ctx.entries) {
          const ep = entry.path.split('/');
          if (ep.length < parts.length) continue;
          if (!parts.every((re, i) => re.test(ep[i]))) continue;
          const rel = ep.slice(parts.length - 1).join('/');
          if (excluder && excluder.excludes(rel)) continue;
          out.set(entry.path, { path: entry.path, mode: entry.mode, digest: entry.digest, ...(entry.linkTarget !== undefined ? { linkTarget: entry.linkTarget } : {}) });
        }
      }
    }
    return [...out.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  private async dispatchCopy(st: StageState, stage: ParsedStage, ins: Instruction): Promise<void> {
    const p = this.p;
    const cfg = st.plan.config;
    const e = this.expansionEnv(st);
    const isAdd = ins.keyword === 'ADD';
    const chownRaw = this.flag(ins, 'chown');
    const chown = chownRaw !== undefined ? p.expand(chownRaw, e, ins) : undefined;
    const chmodRaw = this.flag(ins, 'chmod');
    const chmod = chmodRaw !== undefined ? p.expand(chmodRaw, e, ins) : undefined;
    if (chmod !== undefined && !/^[0-7]{3,4}$/.test(chmod) && !/^([ugoa]*[-+=][rwxXst]*)(,[ugoa]*[-+=][rwxXst]*)*$/.test(chmod)) {
      this.p.err(`invalid --chmod=${chmod}: use an octal mode like 755 or a symbolic mode like u+x`, ins);
    }
    const link = this.boolFlag(ins, 'link');
    const parents = this.boolFlag(ins, 'parents');
    const exclude = ins.flags.filter((f) => f.name === 'exclude').map((f) => p.expand(f.value ?? '', e, ins));
    const checksumRaw = this.flag(ins, 'checksum');
    const checksum = checksumRaw !== undefined ? p.expand(checksumRaw, e, ins) : undefined;
    const keepGitDir = this.boolFlag(ins, 'keep-git-dir');
    const unpackFlag = ins.flags.find((f) => f.name === 'unpack');
    const unpack = unpackFlag ? unpackFlag.value === undefined || unpackFlag.value.toLowerCase() === 'true' : undefined;

    const words = ins.args;
    const destRaw = p.expand(words[words.length - 1], e, ins);
    const rawSources = words.slice(0, -1);
    const heredocQueue = [...ins.heredocs];
    const heredocSources: typeof ins.heredocs = [];
    const sources: string[] = [];
    for (const s of rawSources) {
      if (!ins.json && heredocQueue.length > 0 && /^(\d*)<<(-?)([^<]*)$/.test(s)) {
        heredocSources.push(heredocQueue.shift()!);
        continue;
      }
      sources.push(p.expand(s, e, ins));
    }
    const count = sources.length + heredocSources.length;
    const destIsDir = destRaw.endsWith('/') || destRaw === '.' || destRaw.endsWith('/.') || destRaw === '';
    if (count > 1 && !destIsDir) this.p.err(`when using ${ins.keyword} with more than one source file, the destination must be a directory and end with a /`, ins);
    let dest = posix.join('/', destRaw.startsWith('/') ? '' : this.workdir(st), destRaw);
    if (destIsDir && !dest.endsWith('/')) dest += '/';

    const actions: FileAction[] = [];
    const inputs: SourceRef[] = [];
    const inputKeys: string[] = [];
    let content: ContentDigest[] = [];
    const fromRaw = this.flag(ins, 'from');
    let from: SourceRef = { kind: 'context' };
    if (fromRaw !== undefined) {
      const fromName = p.expand(fromRaw, e, ins);
      if (fromName === '') this.p.err('COPY --from requires a stage name, stage index or image', ins);
      const [ref, key] = await this.sourceFrom(st, stage, fromName, ins, `COPY --from=${fromName}`);
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
        actions.push({ op: 'addGit', url, ...(ref ? { ref } : {}), ...(subdir ? { subdir } : {}), keepGitDir, dest, ...(checksum ? { checksum } : {}), ...(chown ? { chown } : {}), ...(chmod ? { chmod } : {}), link });
      } else if (isAdd && fromRaw === undefined && isUrl(s)) {
        actions.push({ op: 'addUrl', url: s, dest, ...(checksum ? { checksum } : {}), ...(chown ? { chown } : {}), ...(chmod ? { chmod } : {}), ...(unpack !== undefined ? { unpack } : {}), link });
      } else {
        if (s.includes('://') && !isAdd) this.p.err(`source can't be a URL for COPY; use ADD ${s}`, ins);
        local.push(s);
      }
    }
    if (checksum !== undefined && actions.length === 0) this.p.err(`checksum can't be specified for non-HTTP(S) or non-Git sources`, ins);
    if (keepGitDir && !actions.some((a) => a.op === 'addGit')) this.p.err('--keep-git-dir is only valid for Git sources', ins);
    if (local.length > 0) {
      let contentDigests: ContentDigest[] | undefined;
      if (from.kind === 'context' && this.opts.context) {
        contentDigests = this.contextDigests(local, exclude, ins, true);
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
      const body = doc.expand ? p.expand(doc.content, e, ins, { rawQuotes: true }) : doc.content;
      let mode = 0o644;
      if (chmod !== undefined && /^[0-7]{3,4}$/.test(chmod)) mode = parseInt(chmod, 8);
      actions.push({ op: 'mkfile', path: destIsDir ? posix.join(dest, doc.name) : dest, content: body, mode, ...(chown ? { chown } : {}) });
    }
    const v: Omit<FileVertex, 'digest' | 'cacheKey'> = { kind: 'file', actions, user: cfg.User ?? '', inputs, name: this.vertexName(st, ins), line: ins.startLine };
    const digestActions = actions.map((a) => {
      if (a.op !== 'copy') return a;
      const { contentDigests: _c, ...rest } = a;
      return rest.from.kind === 'stage' ? { ...rest, from: { kind: 'stage' } } : rest;
    });
    this.addVertex(st, v, inputKeys, content, { kind: 'file', actions: digestActions, user: v.user });
    const shown = [...sources, ...heredocSources.map((d) => `<<${d.name}`)];
    this.history(st, `${ins.keyword} ${shown.join(' ')} ${dest} # buildkit`, false);
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
