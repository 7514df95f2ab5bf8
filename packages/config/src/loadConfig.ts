import { readFileSync } from 'node:fs';
import { parse as parseToml } from 'smol-toml';
import { OPTIONS } from './options.js';

/** The typed config; its fields mirror the dotted paths of OPTIONS (a test keeps them in step). */
export interface BuildyardConfig {
  redis: { url: string; cluster: boolean; keyPrefix: string };
  stateDir: string;
  sharedDir: string;
  blobStore: { type: 'fs' | 'registry'; repository: string };
  registry: { insecure: string[]; trusted: string[]; tenantScoped: string[]; sharedReadOnly: string[] };
  frontend: { listen: string; healthListen: string; tlsCert: string; tlsKey: string; tlsClientCa: string };
  buildkit: { listen: string; insecure: boolean; tenant: string; tlsCert: string; tlsKey: string; tlsClientCa: string };
  auth: { tokensFile: string; tokens: string[]; entitlements: string[]; secretsKey: string };
  limits: { maxContextBytes: number; maxContextFiles: number; maxExportBytes: number; tenantConcurrency: number | 'fleet'; stepTimeoutMs: number; fetchConnectTimeoutMs: number; fetchIdleTimeoutMs: number; sessionIdleTimeoutMs: number; maxLogBytesPerStep: number };
  worker: { id: string; capacity: number; platforms: string[]; healthListen: string; compression: 'gzip' | 'zstd'; keepStorageBytes: number;
    egress: { enabled: boolean; pool: string; deny: string[]; denyPrivate: boolean; allow: string[]; tenantDeny: string[]; tenantAllow: string[] };
    dns: { nameservers: string[]; search: string[]; options: string[] }; seccompProfile: string;
    sandbox: { pids: number; memoryBytes: number; cpus: number; diskBytes: number; tenantLimits: string[] } };
  gc: { intervalMs: number; keepStorageBytes: number; keepDurationMs: number; contextMaxAgeMs: number };
  history: { retentionMs: number };
  heartbeat: { intervalMs: number; timeoutMs: number };
  dashboard: { listen: string; readToken: string; adminToken: string; metricsToken: string };
  telemetry: { metricsToken: string };
  log: { level: 'debug' | 'info' | 'warn' | 'error' };
}

export class ConfigError extends Error {}

function getPath(obj: unknown, path: string): unknown {
  return path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), obj);
}

function setPath(obj: Record<string, unknown>, path: string, value: unknown): void {
  const keys = path.split('.');
  let o = obj;
  for (const k of keys.slice(0, -1)) o = (o[k] ??= {}) as Record<string, unknown>;
  o[keys[keys.length - 1]] = value;
}

/**
 * Builds the config from defaults, then the TOML file (BUILDYARD_CONFIG or `file`), then
 * environment variables; the later source wins. Unknown file keys and invalid values are errors
 * naming the key, its source and what is expected.
 */
export function loadConfig(options: { file?: string; env?: NodeJS.ProcessEnv; overrides?: Record<string, unknown> } = {}): BuildyardConfig {
  const env = options.env ?? process.env;
  const file = options.file ?? env.BUILDYARD_CONFIG;
  let fromFile: Record<string, unknown> = {};
  if (file) {
    let text: string;
    try { text = readFileSync(file, 'utf8'); } catch (err) { throw new ConfigError(`cannot read config file ${file}: ${(err as Error).message}`); }
    try { fromFile = parseToml(text) as Record<string, unknown>; } catch (err) { throw new ConfigError(`${file}: invalid TOML: ${(err as Error).message.split('\n')[0]}`); }
    const known = new Set(OPTIONS.map((o) => o.path));
    const walk = (o: Record<string, unknown>, prefix: string) => {
      for (const [k, v] of Object.entries(o)) {
        const path = prefix + k;
        if (v && typeof v === 'object' && !Array.isArray(v) && ![...known].some((p) => p === path)) walk(v as Record<string, unknown>, path + '.');
        else if (!known.has(path)) throw new ConfigError(`${file}: unknown option "${path}" (see docs/configuration.md for the options)`);
      }
    };
    walk(fromFile, '');
  }
  const config: Record<string, unknown> = {};
  for (const spec of OPTIONS) {
    const override = options.overrides?.[spec.path];
    const envValue = env[spec.env];
    const fileValue = getPath(fromFile, spec.path);
    const [raw, source] = override !== undefined ? [override, 'override'] : envValue !== undefined ? [envValue, `$${spec.env}`] : fileValue !== undefined ? [fileValue, file!] : [spec.default, 'default'];
    const parsed = (spec.schema as import('zod').ZodType).safeParse(raw);
    if (!parsed.success) throw new ConfigError(`invalid ${spec.path} from ${source}: ${parsed.error.issues[0]?.message ?? 'invalid value'} (got ${JSON.stringify(raw)})`);
    setPath(config, spec.path, parsed.data);
  }
  return config as unknown as BuildyardConfig;
}

/** Markdown reference of every option, generated from OPTIONS so it cannot drift. */
export function configReference(): string {
  const rows = OPTIONS.map((o) => `| \`${o.path}\` | \`${o.env}\` | \`${JSON.stringify(o.default)}\` | ${o.doc} |`);
  return ['# Configuration reference', '', 'Generated from `packages/config/src/options.ts` by `npm run docs:config`; do not edit by hand.', '',
    'Each option can be set in the TOML file named by `BUILDYARD_CONFIG` (dotted paths are TOML tables) or by its environment variable, which wins.', '',
    '| option | environment | default | meaning |', '|---|---|---|---|', ...rows, ''].join('\n');
}

/** Parses "tenant:token" pairs from the tokens file and inline list into token -> tenant. */
export function loadTokens(config: BuildyardConfig): Map<string, string> {
  const lines = [...config.auth.tokens];
  if (config.auth.tokensFile) {
    let text: string;
    try { text = readFileSync(config.auth.tokensFile, 'utf8'); } catch (err) { throw new ConfigError(`cannot read tokens file ${config.auth.tokensFile}: ${(err as Error).message}`); }
    lines.push(...text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  }
  const tokens = new Map<string, string>();
  for (const line of lines) {
    const sep = line.indexOf(':');
    if (sep <= 0 || sep === line.length - 1) throw new ConfigError(`invalid token entry "${line.slice(0, 20)}...": expected tenant:token`);
    tokens.set(line.slice(sep + 1), line.slice(0, sep));
  }
  return tokens;
}
