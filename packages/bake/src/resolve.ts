// From files to the targets a bake run builds (buildx ReadLocalFiles, ParseFiles, ReadTargets):
// default file lookup, compose then HCL merged into one config, groups expanded, `inherits`,
// `--set` overrides, defaults, and `target:` context links.
import { readFileSync } from 'node:fs';
import { join, posix } from 'node:path';
import { HclError, type Body } from './hcl/ast.js';
import { goParseBool } from './hcl/eval.js';
import { parseHclJson } from './hcl/json.js';
import { parseHcl } from './hcl/parse.js';
import { evaluateHcl, type Renamed } from './hclConfig.js';
import { isComposeText, parseCompose } from './compose.js';
import { cloneTarget, mergeAttests, mergeTarget, normalizeTarget, type Config, type Group, type Target } from './target.js';

/** buildx's default files, in its order: compose's names, then the bake files and their overrides. */
export const DEFAULT_FILES = [
  'compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml',
  'docker-bake.json', 'docker-bake.hcl', 'docker-bake.override.json', 'docker-bake.override.hcl',
];

export interface BakeFile { name: string; text: string }

export class BakeError extends Error {
  constructor(message: string) { super(message); this.name = 'BakeError'; }
}

/** Reads -f files (or the default ones that exist); "-" is stdin's text. */
export function readBakeFiles(names: readonly string[], cwd: string, stdin?: () => string): BakeFile[] {
  if (names.length === 0) {
    const found: BakeFile[] = [];
    for (const n of DEFAULT_FILES) {
      try { found.push({ name: n, text: readFileSync(join(cwd, n), 'utf8') }); } catch (e) { if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e; }
    }
    if (found.length === 0) throw new BakeError(`no bake file in ${cwd}: add docker-bake.hcl (or compose.yaml), or name one with -f FILE`);
    return found;
  }
  return names.map((n) => {
    if (n === '-') {
      if (!stdin) throw new BakeError('-f -: no standard input to read the bake file from');
      return { name: '-', text: stdin() };
    }
    try {
      return { name: n, text: readFileSync(join(cwd, n), 'utf8') };
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new BakeError(`-f ${n}: ${code === 'ENOENT' ? 'no such file; check the path (relative to the current directory)' : (e as Error).message}`);
    }
  });
}

export interface ParseOptions {
  env: Record<string, string | undefined>;
  builtins: Record<string, string>;
  /** Where compose's .env file is looked for (buildx reads ./.env for compose files). */
  cwd?: string;
}

/** docker compose's .env: KEY=VALUE lines, # comments, optional export, quoted values. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const m = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*=\s*(.*)$/.exec(line);
    if (!m) continue;
    let v = m[2];
    if (/^"(.*)"$/s.test(v)) v = v.slice(1, -1).replace(/\\n/g, '\n').replace(/\\"/g, '"');
    else if (/^'(.*)'$/s.test(v)) v = v.slice(1, -1);
    else v = v.replace(/\s+#.*$/, '');
    out[m[1]] = v;
  }
  return out;
}

function composeEnv(opt: ParseOptions): Record<string, string | undefined> {
  if (!opt.cwd) return opt.env;
  let text: string;
  try { text = readFileSync(join(opt.cwd, '.env'), 'utf8'); } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return opt.env;
    throw new BakeError(`.env: ${(e as Error).message}`);
  }
  // The process environment wins over the file, as compose.
  return { ...parseDotenv(text), ...Object.fromEntries(Object.entries(opt.env).filter(([, v]) => v !== undefined)) };
}

/** Compose files first, then HCL/JSON over them, as buildx's ParseFiles. */
export function parseFiles(files: BakeFile[], opt: ParseOptions): { config: Config; renamed: Renamed } {
  const compose: BakeFile[] = [];
  const bodies: Body[] = [];
  for (const f of files) {
    const lower = f.name.toLowerCase();
    if (lower.endsWith('.yml') || lower.endsWith('.yaml')) { compose.push(f); continue; }
    if (lower.endsWith('.json')) { bodies.push(parseHclJson(f.text, f.name)); continue; }
    if (lower.endsWith('.hcl')) { bodies.push(parseHcl(f.text, f.name)); continue; }
    // Any other name: JSON if it is an object, compose if it reads as one, else HCL.
    if (/^\s*\{/.test(f.text)) { bodies.push(parseHclJson(f.text, f.name)); continue; }
    if (isComposeText(f.text)) { compose.push(f); continue; }
    bodies.push(parseHcl(f.text, f.name));
  }
  let config: Config = { groups: [], targets: [] };
  if (compose.length) config = parseCompose(compose.map((f) => ({ name: f.name, text: f.text })), composeEnv(opt));
  let renamed: Renamed = new Map();
  if (bodies.length) {
    const hcl = evaluateHcl(bodies, { env: opt.env, builtins: opt.builtins });
    renamed = hcl.renamed;
    for (const g of hcl.config.groups) {
      const i = config.groups.findIndex((x) => x.name === g.name);
      if (i >= 0) config.groups[i] = g; else config.groups.push(g);
    }
    for (const t of hcl.config.targets) {
      const prev = config.targets.find((x) => x.name === t.name);
      if (prev) mergeTarget(prev, t); else config.targets.push(t);
    }
  }
  return { config, renamed };
}

interface Override { value?: string; list: string[]; set: boolean }
type Overrides = Map<string, Map<string, Override>>;

/** path.Match for target patterns in --set (*, ?, [...]). */
function globMatch(pattern: string, name: string): boolean {
  const re = pattern.replace(/[.+^${}()|\\]/g, '\\$&').replace(/\*/g, '[^/]*').replace(/\?/g, '[^/]');
  return new RegExp(`^${re}$`).test(name);
}

const LIST_KEYS = new Set(['output', 'cache-to', 'cache-from', 'tags', 'platform', 'secrets', 'ssh', 'attest', 'annotations', 'no-cache-filter', 'ulimits', 'entitlements']);

function parseOverrides(specs: readonly string[], config: Config, env: Record<string, string | undefined>): Overrides {
  const out: Overrides = new Map();
  for (const spec of specs) {
    const eq = spec.indexOf('=');
    const lhs = eq < 0 ? spec : spec.slice(0, eq);
    const value = eq < 0 ? undefined : spec.slice(eq + 1);
    const keys = lhs.split('.');
    if (keys.length < 2) throw new BakeError(`--set ${spec}: expected TARGET.KEY=VALUE (e.g. app.platform=linux/arm64 or *.no-cache=true)`);
    const [pattern, key, ...restKeys] = keys;
    const sub = restKeys.join('.');
    if (value === undefined && key !== 'args') throw new BakeError(`--set ${spec}: expected TARGET.KEY=VALUE`);
    const names = config.targets.some((t) => t.name === pattern) ? [pattern] : config.targets.filter((t) => globMatch(pattern, t.name)).map((t) => t.name);
    if (names.length === 0) throw new BakeError(`--set ${spec}: could not find any target matching '${pattern}'`);
    if ((key === 'args' || key === 'contexts' || key === 'labels' || key === 'extra-hosts') && !sub) throw new BakeError(`--set ${spec}: ${key} requires a name, e.g. TARGET.${key}.NAME=VALUE`);
    const field = sub ? `${key}.${sub}` : key;
    for (const name of names) {
      const m = out.get(name) ?? new Map<string, Override>();
      out.set(name, m);
      const o = m.get(field) ?? { list: [], set: false };
      if (LIST_KEYS.has(key)) {
        if (value !== undefined) o.list.push(value);
      } else if (key === 'args' && value === undefined) {
        const v = Object.hasOwn(env, sub) ? env[sub] : undefined;
        if (v === undefined) continue;
        o.value = v;
      } else {
        o.value = value;
      }
      o.set = true;
      m.set(field, o);
    }
  }
  return out;
}

function parseBool(key: string, v: string): boolean {
  const b = goParseBool(v);
  if (b !== undefined) return b;
  throw new BakeError(`--set: invalid value ${v} for boolean key ${key}; use true or false`);
}

function outputType(spec: string): string {
  for (const field of spec.split(',')) {
    const [k, v] = field.split('=', 2);
    if (k.trim() === 'type' && v !== undefined) return v.trim();
  }
  return '';
}

/** buildx's Target.AddOverrides. */
function applyOverrides(t: Target, o: Map<string, Override> | undefined): void {
  if (!o) return;
  for (const [field, ov] of o) {
    const [key, ...rest] = field.split('.');
    const sub = rest.join('.');
    const value = ov.value ?? '';
    switch (key) {
      case 'context': t.context = value; break;
      case 'dockerfile': t.dockerfile = value; break;
      case 'dockerfile-inline': t['dockerfile-inline'] = value; break;
      case 'args': t.args = { ...t.args, [sub]: value }; break;
      case 'contexts': t.contexts = { ...t.contexts, [sub]: value }; break;
      case 'labels': t.labels = { ...t.labels, [sub]: value }; break;
      case 'extra-hosts': t['extra-hosts'] = { ...t['extra-hosts'], [sub]: value }; break;
      case 'tags': t.tags = ov.list; break;
      case 'cache-from': t['cache-from'] = ov.list; break;
      case 'cache-to': t['cache-to'] = ov.list; break;
      case 'target': t.target = value; break;
      case 'secrets': t.secret = ov.list; break;
      case 'ssh': t.ssh = ov.list; break;
      case 'platform': t.platforms = ov.list; break;
      case 'output': t.output = ov.list; break;
      case 'attest': t.attest = mergeAttests(t.attest ?? [], ov.list); break;
      case 'annotations': t.annotations = [...(t.annotations ?? []), ...ov.list]; break;
      case 'ulimits': t.ulimits = ov.list; break;
      case 'entitlements': t.entitlements = [...(t.entitlements ?? []), ...ov.list]; break;
      case 'no-cache-filter': t['no-cache-filter'] = ov.list; break;
      case 'no-cache': t['no-cache'] = parseBool(key, value); break;
      case 'pull': t.pull = parseBool(key, value); break;
      case 'network': t.network = value; break;
      case 'shm-size': t['shm-size'] = value; break;
      case 'description': t.description = value; break;
      case 'push': {
        parseBool(key, value);
        if (!t.output || t.output.length === 0) t.output = ['type=image,push=true'];
        else t.output = t.output.map((s) => (['image', 'registry'].includes(outputType(s)) ? `${s},push=${value}` : s));
        break;
      }
      default:
        throw new BakeError(`--set: unknown key: ${key}; see the bake file reference for target keys`);
    }
  }
}

/** containerd's platforms.DefaultString(), which buildx gives BAKE_LOCAL_PLATFORM. */
export function localPlatform(): string {
  const arch = ({ x64: 'amd64', arm64: 'arm64/v8', arm: 'arm/v7', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' } as Record<string, string>)[process.arch] ?? process.arch;
  return `linux/${arch}`;
}

/** buildx's built-in variables for a local bake (no remote bake definition). */
export function bakeBuiltins(): Record<string, string> {
  return { BAKE_CMD_CONTEXT: 'cwd://', BAKE_LOCAL_PLATFORM: localPlatform() };
}

/** The bake flags that are `--set` shorthands, as buildx turns them into overrides. */
export function flagOverrides(f: { set?: readonly string[]; push?: boolean; load?: boolean; noCache?: boolean; pull?: boolean; provenance?: string; sbom?: string }): string[] {
  const overrides = [...(f.set ?? [])];
  if (f.push && f.load) throw new BakeError('--push and --load may not be set together: push to a registry, or write the docker archive');
  if (f.push) overrides.push('*.push=true');
  else if (f.load) overrides.push('*.output=type=docker');
  if (f.noCache !== undefined) overrides.push(`*.no-cache=${f.noCache}`);
  if (f.pull !== undefined) overrides.push(`*.pull=${f.pull}`);
  if (f.sbom) overrides.push(`*.attest=${canonicalAttest('sbom', f.sbom)}`);
  if (f.provenance) overrides.push(`*.attest=${canonicalAttest('provenance', f.provenance)}`);
  return overrides;
}

/** buildx's CanonicalizeAttest: "true"/"false" become disabled=..., other values follow type=. */
function canonicalAttest(type: string, value: string): string {
  const b = goParseBool(value);
  return b === undefined ? `type=${type},${value}` : `type=${type},disabled=${!b}`;
}

export interface ResolveOptions extends ParseOptions {
  targets: readonly string[];
  overrides: readonly string[];
}

export interface Resolved {
  groups: Map<string, Group>;
  targets: Map<string, Target>;
  /** Targets only other targets' `target:` contexts pulled in (built, never exported). */
  linked: Set<string>;
}

export function resolveTargets(files: BakeFile[], opt: ResolveOptions): Resolved {
  const { config, renamed } = parseFiles(files, opt);
  const requested = (opt.targets.length ? opt.targets : ['default']).map((t) => t.replace(/\./g, '_'));
  const overrides = parseOverrides(opt.overrides, config, opt.env);
  const groupOf = (name: string) => config.groups.find((g) => g.name === name);
  const expand = (name: string, seen: Set<string>, groups: string[]): string[] => {
    const g = groupOf(name);
    if (!g) return renamed.get(name) && !config.targets.some((t) => t.name === name) ? renamed.get(name)! : [name];
    if (seen.has(name)) return [];
    seen.add(name);
    groups.push(name);
    return g.targets.flatMap((t) => expand(t, seen, groups));
  };
  const targets = new Map<string, Target>();
  const groups = new Map<string, Group>();
  for (const req of requested) {
    const gs: string[] = [];
    const names = [...new Set(expand(req, new Set(), gs))];
    for (const n of names) targets.set(n, resolveOne(config, n, overrides));
    for (const g of new Set(gs)) groups.set(g, { ...groupOf(g)! });
  }
  for (const req of requested) {
    if (req === 'default') continue;
    const d = groups.get('default') ?? { name: 'default', targets: [] };
    if (!d.targets.includes(req)) d.targets = [...d.targets, req];
    groups.set('default', d);
  }
  // Groups list their targets as written; a matrix label stands for its targets, as buildx shows.
  for (const g of groups.values()) g.targets = [...new Set(g.targets.flatMap((t) => (renamed.get(t) && !config.targets.some((x) => x.name === t) ? renamed.get(t)! : [t])))];
  const linked = new Set<string>();
  for (const [name, t] of [...targets]) loadLinks(config, name, t, targets, overrides, [], linked);
  const epoch = opt.env.SOURCE_DATE_EPOCH;
  if (epoch) for (const t of targets.values()) if (!t.args || !('SOURCE_DATE_EPOCH' in t.args)) t.args = { ...t.args, SOURCE_DATE_EPOCH: epoch };
  return { groups, targets, linked };
}

function resolveOne(config: Config, name: string, overrides: Overrides): Target {
  const t = resolveInherits(config, name, new Map(), overrides);
  delete t.inherits;
  t.context = cleanContext(t.context ?? '.');
  t.dockerfile ??= 'Dockerfile';
  return t;
}

export const isRemoteContext = (s: string) => /^(https?:\/\/|git@|git:\/\/|ssh:\/\/|github\.com\/)/.test(s) || /\.git(#.*)?$/.test(s);

/** Go's path.Clean, which buildx applies to local contexts (and --print shows): "./web/" is "web". */
function goClean(p: string): string {
  const n = posix.normalize(p);
  return n.length > 1 && n.endsWith('/') ? n.slice(0, -1) : n;
}

/** The context as buildx's toBuildOpt leaves it: cwd:// dropped, local paths cleaned, URLs kept. */
export function cleanContext(context: string): string {
  if (context.startsWith('cwd://')) return goClean(context.slice('cwd://'.length) || '.');
  return isRemoteContext(context) ? context : goClean(context);
}

function resolveInherits(config: Config, name: string, visited: Map<string, Target | null>, overrides: Overrides): Target {
  const seen = visited.get(name);
  if (seen) return seen;
  if (seen === null) throw new BakeError(`target "${name}" inherits from itself (through its inherits chain); break the cycle`);
  visited.set(name, null);
  const own = config.targets.find((t) => t.name === name);
  if (!own) {
    const known = config.targets.map((t) => t.name).concat(config.groups.map((g) => g.name));
    throw new BakeError(`failed to find target ${name}${known.length ? ` (the files define ${known.slice(0, 12).join(', ')})` : ''}`);
  }
  const acc: Target = { name };
  for (const parent of own.inherits ?? []) mergeTarget(acc, resolveInherits(config, parent, visited, overrides));
  const result: Target = { name };
  mergeTarget(result, acc);
  mergeTarget(result, cloneTarget(own));
  applyOverrides(result, overrides.get(name));
  normalizeTarget(result);
  visited.set(name, result);
  return cloneTarget(result);
}

function loadLinks(config: Config, name: string, t: Target, all: Map<string, Target>, overrides: Overrides, visited: string[], linked: Set<string>): void {
  const path = [...visited, name];
  for (const v of Object.values(t.contexts ?? {})) {
    if (!v.startsWith('target:')) continue;
    const target = v.slice('target:'.length);
    if (target === name) throw new BakeError(`target ${target} cannot link to itself`);
    if (path.includes(target)) throw new BakeError(`infinite loop from ${name} to ${target}`);
    let t2 = all.get(target);
    if (!t2) {
      t2 = resolveOne(config, target, overrides);
      delete t2.output;
      all.set(target, t2);
      linked.add(target);
    }
    loadLinks(config, target, t2, all, overrides, path, linked);
    const p1 = t.platforms ?? [], p2 = t2.platforms ?? [];
    if (p1.length > 1 && p2.length > 1 && [...p1].sort().join() !== [...p2].sort().join()) {
      throw new BakeError(`target ${target} can't be used by ${name} because it is defined for different platforms [${p2.join(' ')}] and [${p1.join(' ')}]`);
    }
  }
}

/** One line for any bake error: file:line for HCL/compose errors. */
export function describeBakeError(e: unknown): string | undefined {
  if (e instanceof HclError || e instanceof BakeError) return e.message;
  return undefined;
}
