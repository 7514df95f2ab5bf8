// Builders (named endpoints) kept as JSON in $XDG_CONFIG_HOME/buildyard/builders.json.
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ClientError, ExitCode, usageError } from './ClientError.js';

export interface BuilderTls {
  ca?: string;
  cert?: string;
  key?: string;
}

export interface BuilderConfig {
  name: string;
  /** tcp://host:port (plaintext) or tls://host:port */
  endpoint: string;
  tokenFile?: string;
  tls?: BuilderTls;
}

interface BuildersFile {
  current?: string;
  builders: BuilderConfig[];
}

/** A builder ready to dial: where, how, and with which token. */
export interface ResolvedBuilder {
  name: string;
  endpoint: string;
  /** host:port for gRPC */
  address: string;
  tls: boolean;
  tlsFiles?: BuilderTls;
  token?: string;
  /** Why this builder was chosen (flag, env, current, default) for `inspect`. */
  source: 'flag' | 'env' | 'current' | 'default';
}

/** The local cluster `buildyard up` starts listens here (config: frontend.listen). */
export const DEFAULT_ENDPOINT = 'tcp://127.0.0.1:8372';
const NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function defaultBuildersPath(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CONFIG_HOME || join(env.HOME || homedir(), '.config');
  return join(base, 'buildyard', 'builders.json');
}

/** Validates `tcp://host:port` / `tls://host:port`; returns the gRPC address and whether TLS is on. */
export function parseEndpoint(endpoint: string): { address: string; tls: boolean } {
  const m = /^(tcp|tls):\/\/([^/\s]+):(\d{1,5})\/?$/.exec(endpoint.trim());
  if (!m || Number(m[3]) > 65535) {
    throw usageError(`endpoint "${endpoint}" is not valid; write tcp://host:port (plaintext) or tls://host:port`);
  }
  return { address: `${m[2]}:${m[3]}`, tls: m[1] === 'tls' };
}

export class BuilderStore {
  constructor(readonly path: string = defaultBuildersPath()) {}

  private async read(): Promise<BuildersFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { builders: [] };
      throw err;
    }
    try {
      const doc = JSON.parse(text) as Partial<BuildersFile>;
      return { current: doc.current, builders: Array.isArray(doc.builders) ? doc.builders : [] };
    } catch (err) {
      throw new ClientError(`cannot parse ${this.path}: ${(err as Error).message}; fix or remove the file`, ExitCode.Usage);
    }
  }

  private async write(doc: BuildersFile): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true });
    // Write then rename so a crash never leaves a half-written file; 0600 as it names token files.
    const tmp = `${this.path}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify(doc, null, 2) + '\n', { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, this.path);
  }

  async list(): Promise<{ builders: BuilderConfig[]; current?: string }> {
    const doc = await this.read();
    return { builders: doc.builders, current: doc.current };
  }

  async get(name: string): Promise<BuilderConfig | undefined> {
    return (await this.read()).builders.find((b) => b.name === name);
  }

  async create(builder: BuilderConfig, options: { use?: boolean } = {}): Promise<BuilderConfig> {
    if (!NAME.test(builder.name)) throw usageError(`builder name "${builder.name}" is not valid; use letters, digits, '.', '_' or '-'`);
    parseEndpoint(builder.endpoint);
    const doc = await this.read();
    if (doc.builders.some((b) => b.name === builder.name)) {
      throw usageError(`builder "${builder.name}" already exists in ${this.path}; remove it first (buildyard builder rm ${builder.name})`);
    }
    const stored: BuilderConfig = { name: builder.name, endpoint: builder.endpoint };
    if (builder.tokenFile) stored.tokenFile = resolve(builder.tokenFile);
    if (builder.tls && (builder.tls.ca || builder.tls.cert || builder.tls.key)) {
      if (!!builder.tls.cert !== !!builder.tls.key) throw usageError('--tls-cert and --tls-key go together (mutual TLS); give both or neither');
      stored.tls = {};
      for (const k of ['ca', 'cert', 'key'] as const) if (builder.tls[k]) stored.tls[k] = resolve(builder.tls[k]!);
    }
    doc.builders.push(stored);
    if (options.use || !doc.current) doc.current = builder.name;
    await this.write(doc);
    return stored;
  }

  async use(name: string): Promise<void> {
    const doc = await this.read();
    if (!doc.builders.some((b) => b.name === name)) throw usageError(`no builder named "${name}"; see buildyard builder ls`);
    doc.current = name;
    await this.write(doc);
  }

  async remove(name: string): Promise<void> {
    const doc = await this.read();
    const i = doc.builders.findIndex((b) => b.name === name);
    if (i < 0) throw usageError(`no builder named "${name}"; see buildyard builder ls`);
    doc.builders.splice(i, 1);
    if (doc.current === name) doc.current = undefined;
    await this.write(doc);
  }

  /**
   * Picks the builder: --builder, else BUILDYARD_BUILDER (a name or an endpoint), else the
   * current one, else the local default endpoint. The token is the builder's token file, else
   * BUILDYARD_TOKEN.
   */
  async resolve(name: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<ResolvedBuilder> {
    const source: ResolvedBuilder['source'] = name ? 'flag' : env.BUILDYARD_BUILDER ? 'env' : 'current';
    const wanted = name || env.BUILDYARD_BUILDER || undefined;
    let config: BuilderConfig | undefined;
    if (wanted && wanted.includes('://')) config = { name: wanted, endpoint: wanted };
    else if (wanted) {
      config = await this.get(wanted);
      if (!config) throw usageError(`no builder named "${wanted}"${source === 'env' ? ' (from BUILDYARD_BUILDER)' : ''}; see buildyard builder ls, or pass an endpoint like tcp://host:port`);
    } else {
      const doc = await this.read();
      config = doc.current ? doc.builders.find((b) => b.name === doc.current) : undefined;
    }
    const resolvedSource = config ? source : 'default';
    config ??= { name: 'default', endpoint: DEFAULT_ENDPOINT };
    const { address, tls } = parseEndpoint(config.endpoint);
    let token: string | undefined;
    if (config.tokenFile) {
      try {
        token = (await readFile(config.tokenFile, 'utf8')).trim();
      } catch (err) {
        throw usageError(`builder "${config.name}": cannot read token file ${config.tokenFile} (${(err as NodeJS.ErrnoException).code ?? String(err)}); fix it or recreate the builder`);
      }
    } else if (env.BUILDYARD_TOKEN) token = env.BUILDYARD_TOKEN.trim();
    return {
      name: config.name,
      endpoint: config.endpoint,
      address,
      tls: tls || !!config.tls,
      ...(config.tls ? { tlsFiles: config.tls } : {}),
      ...(token ? { token } : {}),
      source: resolvedSource,
    };
  }
}
