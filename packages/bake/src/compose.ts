// Compose files as bake reads them (buildx bake/compose.go): each service with a `build`
// section is a target (dots in names become "_"), all of them in the "default" group; `image`
// is the tag when `build.tags` is absent; `x-bake` sets what compose cannot say.
import { parseDocument } from 'yaml';
import { HclError } from './hcl/ast.js';
import { TARGET_NAME } from './hclConfig.js';
import type { Config, Target } from './target.js';

export interface ComposeFile { name: string; text: string }

type Env = Record<string, string | undefined>;
type Y = Record<string, unknown>;

const isMap = (v: unknown): v is Y => v !== null && typeof v === 'object' && !Array.isArray(v);

/** Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?error}, ${VAR?error}, $VAR and $$. */
export function interpolate(text: string, environment: Env, where: string): string {
  const env = new Proxy(environment, { get: (o, k) => (typeof k === 'string' && Object.hasOwn(o, k) ? o[k] : undefined) });
  return text.replace(/\$(\$|\{([^}]*)\}|([A-Za-z_][A-Za-z0-9_]*))/g, (m, what: string, braced?: string, bare?: string) => {
    if (what === '$') return '$';
    if (bare) return env[bare] ?? '';
    const e = /^([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])(.*))?$/s.exec(braced ?? '');
    if (!e) throw new Error(`${where}: invalid interpolation "${m}"; use \${VAR} or \${VAR:-default}`);
    const [, name, op, arg = ''] = e;
    const v = env[name];
    const unset = op?.startsWith(':') ? v === undefined || v === '' : v === undefined;
    switch (op) {
      case ':-': case '-': return unset ? interpolate(arg, env, where) : v!;
      case ':+': case '+': return unset ? '' : interpolate(arg, env, where);
      case ':?': case '?': if (unset) throw new Error(`${where}: required variable ${name} is missing a value: ${arg || 'set it'}`); return v!;
      default: return v ?? '';
    }
  });
}

function interpolateAll(v: unknown, env: Env, where: string): unknown {
  if (typeof v === 'string') return interpolate(v, env, where);
  if (Array.isArray(v)) return v.map((x) => interpolateAll(x, env, where));
  if (isMap(v)) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, interpolateAll(x, env, where)]));
  return v;
}

/** Reads compose YAML; throws HclError with the file and line on a YAML error. */
function load(f: ComposeFile, env: Env): Y {
  const doc = parseDocument(f.text, { prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new HclError({ file: f.name, line: e.linePos?.[0].line ?? 1, col: e.linePos?.[0].col ?? 1 }, `invalid YAML: ${e.message.split('\n')[0]}`);
  }
  const root = doc.toJS() as unknown;
  if (root === null || root === undefined) return {};
  if (!isMap(root)) throw new HclError({ file: f.name, line: 1, col: 1 }, 'a compose file must be a mapping with a services key');
  try {
    return interpolateAll(root, env, f.name) as Y;
  } catch (e) {
    throw new HclError({ file: f.name, line: 1, col: 1 }, (e as Error).message.replace(`${f.name}: `, ''));
  }
}

/** Whether a file looks like compose: services, or YAML that is not HCL (buildx tries compose first). */
export function isComposeText(text: string): boolean {
  try {
    const doc = parseDocument(text);
    if (doc.errors.length) return false;
    const v = doc.toJS() as unknown;
    return isMap(v) && ('services' in v || 'version' in v || 'name' in v);
  } catch { return false; }
}

/** compose-go's merge of several files: later files override keys, maps merge deeply. */
function deepMerge(a: unknown, b: unknown): unknown {
  if (isMap(a) && isMap(b)) {
    const out: Y = { ...a };
    for (const [k, v] of Object.entries(b)) out[k] = k in out ? deepMerge(out[k], v) : v;
    return out;
  }
  return b;
}

const strList = (v: unknown): string[] | undefined => (v === undefined || v === null ? undefined : (Array.isArray(v) ? v : [v]).map((x) => String(x)));

/** Compose's list-or-map ("KEY=value" strings or a mapping) as a map; a bare KEY resolves through `resolve`. */
function listOrMap(v: unknown, resolve?: (k: string) => string | undefined): Record<string, string | null> | undefined {
  if (v === undefined || v === null) return undefined;
  const out = Object.create(null) as Record<string, string | null>;
  if (Array.isArray(v)) {
    for (const item of v) {
      const s = String(item);
      const i = s.indexOf('=');
      if (i >= 0) out[s.slice(0, i)] = s.slice(i + 1);
      else { const r = resolve?.(s); if (r !== undefined) out[s] = r; else if (!resolve) out[s] = ''; }
    }
  } else if (isMap(v)) {
    for (const [k, x] of Object.entries(v)) {
      if (x === null || x === undefined) { const r = resolve?.(k); if (r !== undefined) out[k] = r; else if (!resolve) out[k] = ''; } else out[k] = String(x);
    }
  }
  return out;
}

export function parseCompose(files: ComposeFile[], env: Env): Config {
  let merged: unknown = {};
  for (const f of files) merged = deepMerge(merged, load(f, env));
  const root = merged as Y;
  const config: Config = { groups: [], targets: [] };
  const services = root.services;
  if (!isMap(services) || Object.keys(services).length === 0) return config;
  const where = files.map((f) => f.name).join(', ');
  const topSecrets = isMap(root.secrets) ? root.secrets : {};
  const group = { name: 'default', targets: [] as string[] };
  for (const [svcName, svc] of Object.entries(services)) {
    if (!isMap(svc) || svc.build === undefined || svc.build === null) continue;
    const name = svcName.replace(/\./g, '_');
    if (!TARGET_NAME.test(name)) throw new HclError({ file: where, line: 1, col: 1 }, `invalid service name "${name}": only [a-zA-Z0-9_-]+ are allowed`);
    const b: Y = typeof svc.build === 'string' ? { context: svc.build } : isMap(svc.build) ? svc.build : {};
    const environment = listOrMap(svc.environment) ?? {};
    const t: Target = { name };
    if (typeof b.context === 'string' && b.context !== '') t.context = b.context;
    if (typeof b.dockerfile === 'string' && b.dockerfile !== '') t.dockerfile = b.dockerfile;
    if (typeof b.dockerfile_inline === 'string') t['dockerfile-inline'] = b.dockerfile_inline;
    const args = listOrMap(b.args, (k) => environment[k] ?? (Object.hasOwn(env, k) ? env[k] : undefined));
    if (args) t.args = args;
    const labels = listOrMap(b.labels);
    if (labels) t.labels = labels;
    const tags = strList(b.tags);
    t.tags = tags && tags.length ? tags : typeof svc.image === 'string' && svc.image ? [svc.image] : tags;
    if (b.cache_from !== undefined) t['cache-from'] = strList(b.cache_from);
    if (b.cache_to !== undefined) t['cache-to'] = strList(b.cache_to);
    if (typeof b.target === 'string' && b.target) t.target = b.target;
    if (typeof b.network === 'string' && b.network) t.network = b.network;
    if (b.platforms !== undefined) t.platforms = strList(b.platforms);
    if (typeof b.no_cache === 'boolean') t['no-cache'] = b.no_cache;
    if (typeof b.pull === 'boolean') t.pull = b.pull;
    if (b.additional_contexts !== undefined) t.contexts = listOrMap(b.additional_contexts) as Record<string, string>;
    if (b.ssh !== undefined) t.ssh = Array.isArray(b.ssh) ? b.ssh.map(String) : Object.entries(listOrMap(b.ssh) ?? {}).map(([k, v]) => (v ? `${k}=${v}` : k));
    if (b.extra_hosts !== undefined) t['extra-hosts'] = listOrMap(Array.isArray(b.extra_hosts) ? b.extra_hosts.map((h) => String(h).replace(/^([^:=]+)[:=]/, '$1=')) : b.extra_hosts);
    if (b.shm_size !== undefined) t['shm-size'] = String(b.shm_size);
    if (Array.isArray(b.secrets)) {
      t.secret = b.secrets.map((s) => {
        const source = typeof s === 'string' ? s : isMap(s) ? String(s.source) : '';
        const id = isMap(s) && typeof s.target === 'string' ? s.target : source;
        const def = topSecrets[source];
        if (!isMap(def)) throw new HclError({ file: where, line: 1, col: 1 }, `service "${svcName}" uses secret "${source}", which the top-level secrets section does not define`);
        if (typeof def.file === 'string') return `id=${id},src=${def.file}`;
        if (typeof def.environment === 'string') return `id=${id},env=${def.environment}`;
        throw new HclError({ file: where, line: 1, col: 1 }, `secret "${source}": bake reads secrets from a file or an environment variable`);
      });
    }
    const xb = b['x-bake'];
    if (isMap(xb)) applyXBake(t, xb, where);
    group.targets.push(name);
    config.targets.push(t);
  }
  config.groups.push(group);
  return config;
}

/** The x-bake extension: bake fields compose lacks (buildx's composeExtTarget). */
function applyXBake(t: Target, x: Y, where: string): void {
  for (const [k, v] of Object.entries(x)) {
    switch (k) {
      case 'tags': case 'platforms': case 'cache-from': case 'cache-to': case 'secret': case 'ssh': case 'output': case 'no-cache-filter': case 'attest':
        (t as unknown as Record<string, unknown>)[k] = [...new Set([...(((t as unknown as Record<string, unknown>)[k] as string[] | undefined) ?? []), ...(strList(v) ?? [])])];
        break;
      case 'pull': case 'no-cache':
        (t as unknown as Record<string, unknown>)[k] = v === true || v === 'true';
        break;
      case 'contexts':
        t.contexts = { ...t.contexts, ...(listOrMap(v) as Record<string, string>) };
        break;
      default:
        throw new HclError({ file: where, line: 1, col: 1 }, `unknown x-bake key "${k}" in service "${t.name}"`);
    }
  }
}
