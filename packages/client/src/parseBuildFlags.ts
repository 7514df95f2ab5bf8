// The flags of `buildyard build`, with buildx's syntax and meanings, turned into the parts of a
// SolveRequest. Pure: the environment and cwd are passed in so tests need no process state.
import { basename, resolve } from 'node:path';
import { formatPlatform, normalizePlatform, parseReference } from '@buildyard/oci';
import type { KeyValueSpec } from '@buildyard/proto';
import { usageError } from './ClientError.js';
import { parseShmSize, parseUlimit, ResourceOptionError } from '@buildyard/dockerfile';
import { parseCsv, parseCsvAttrs } from './parseCsv.js';
import { parseAttestFlags } from './parseAttests.js';
import { goBool, writesLayoutDir } from './layoutDir.js';
import { checkSshSpecs, parseSshSpec, type SshSpec } from './sshAgents.js';

import { PROGRESS_MODES, type ProgressMode } from './progressModes.js';
export { PROGRESS_MODES, type ProgressMode } from './progressModes.js';

/** The raw values commander collected (repeatable flags as arrays). */
export interface BuildFlags {
  file?: string;
  tag?: string[];
  platform?: string[];
  buildArg?: string[];
  target?: string;
  noCache?: boolean;
  noCacheFilter?: string[];
  pull?: boolean;
  label?: string[];
  push?: boolean;
  load?: boolean;
  output?: string[];
  cacheFrom?: string[];
  cacheTo?: string[];
  secret?: string[];
  /** --ssh default|ID[=SOCKET|KEY[,KEY]] (repeatable). */
  ssh?: string[];
  network?: string;
  /** --allow: entitlements (network.host, security.insecure), comma separated, repeatable. */
  allow?: string[];
  /** --add-host name:ip, comma separated, repeatable. */
  addHost?: string[];
  /** --build-context name=VALUE (repeatable; see buildContexts.ts). */
  buildContext?: string[];
  /** --annotation [TYPE:]KEY=VALUE, TYPE index | manifest | manifest[os/arch] (repeatable). */
  annotation?: string[];
  /** --iidfile FILE: the image (or index) digest is written there. */
  iidfile?: string;
  /** --attest type=TYPE,... (repeatable); --provenance and --sbom are its shorthands (see parseAttests). */
  attest?: string[];
  provenance?: string;
  sbom?: string;
  shmSize?: string;
  ulimit?: string[];
  progress?: string;
  quiet?: boolean;
  metadataFile?: string;
  builder?: string;
}

/** Where a secret's value comes from; read on the client just before the build. */
export interface SecretSource {
  id: string;
  src?: string;
  env?: string;
}

export interface BuildOptions {
  tags: string[];
  platforms: string[];
  buildArgs: Record<string, string>;
  target: string;
  noCache: boolean;
  /** Stages (by name) built without the cache. */
  noCacheFilter: string[];
  pull: boolean;
  labels: Record<string, string>;
  outputs: KeyValueSpec[];
  cacheFrom: KeyValueSpec[];
  cacheTo: KeyValueSpec[];
  secrets: SecretSource[];
  /** SSH agents forwarded to RUN --mount=type=ssh (loaded and checked before the upload). */
  ssh: SshSpec[];
  network: string;
  /** Entitlements the build may use; the server checks the names and the tenant's grants. */
  allow: string[];
  /** `name:ip` entries; the server checks them. */
  addHosts: string[];
  /** /dev/shm of RUN steps in bytes; 0: the default 64MB. */
  shmSize: number;
  /** RUN steps' rlimits, `name=soft:hard`. */
  ulimits: string[];
  progress: ProgressMode;
  metadataFile?: string;
  iidfile?: string;
  /** Attestations to attach (type provenance|sbom, BuildKit's attest attributes), buildx's default included. */
  attests: KeyValueSpec[];
  /** Notes for the user about what flags turned into (e.g. --load writing a tar). */
  notes: string[];
}

export interface ParseEnv {
  env: NodeJS.ProcessEnv;
  cwd: string;
}

/** A repeatable flag that also takes comma lists (buildx's string slices), de-duplicated. */
function splitList(values: readonly string[] = []): string[] {
  return [...new Set(values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean))];
}

/** `linux/amd64,arm64` (repeatable) -> normalised, de-duplicated platforms. */
export function parsePlatforms(values: readonly string[] = []): string[] {
  const out: string[] = [];
  for (const v of values) {
    for (const p of v.split(',').map((s) => s.trim()).filter(Boolean)) {
      let norm: string;
      try {
        norm = formatPlatform(normalizePlatform(p));
      } catch (err) {
        throw usageError(`--platform "${p}": ${(err as Error).message}; write os/arch[/variant], e.g. linux/arm64`);
      }
      if (!out.includes(norm)) out.push(norm);
    }
  }
  return out;
}

/** `--build-arg K=V`; a bare `K` takes the value from the environment and is skipped when unset (as docker does). */
export function parseBuildArgs(values: readonly string[] = [], env: NodeJS.ProcessEnv = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw usageError(`--build-arg "${v}": missing name; write NAME=value or NAME`);
    if (eq < 0) {
      const fromEnv = env[v];
      if (fromEnv !== undefined) out[v] = fromEnv;
      continue;
    }
    out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

/** `--label k=v` (a bare key is an empty label). */
export function parseLabels(values: readonly string[] = []): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    if (eq === 0) throw usageError(`--label "${v}": missing key; write key=value`);
    if (eq < 0) out[v] = '';
    else out[v.slice(0, eq)] = v.slice(eq + 1);
  }
  return out;
}

const OUTPUT_TYPES = ['local', 'tar', 'oci', 'docker', 'image', 'registry'];

/** One `-o/--output` value in buildx syntax (`type=local,dest=dir`, or the shorthand `dir` / `-`). */
export function parseOutput(value: string, cwd = process.cwd()): KeyValueSpec {
  const fields = parseCsv(value, '--output');
  if (fields.length === 1 && !value.includes('=')) {
    // buildx: a bare path is a local directory; `-` is a tar on stdout.
    if (value === '') throw usageError('--output "": empty value; write type=local,dest=DIR or a directory');
    return value === '-' ? { type: 'tar', attrs: { dest: '-' } } : { type: 'local', attrs: { dest: resolve(cwd, value) } };
  }
  const attrs = parseCsvAttrs(value, '--output');
  const type = attrs.type;
  delete attrs.type;
  if (!type) throw usageError(`--output "${value}": type is required; add type=local|tar|oci|docker|image|registry`);
  if (!OUTPUT_TYPES.includes(type)) throw usageError(`--output "${value}": unknown type "${type}"; use one of ${OUTPUT_TYPES.join(', ')}`);
  if (type === 'registry') return { type: 'image', attrs: { ...attrs, push: 'true' } };
  if (type === 'local' && !attrs.dest) throw usageError(`--output "${value}": type=local needs dest=DIR`);
  if (type === 'local' && attrs.mode !== undefined && !['', 'copy', 'delete'].includes(attrs.mode.trim().toLowerCase())) {
    throw usageError(`--output "${value}": invalid local exporter mode "${attrs.mode}"; use mode=copy (the default) or mode=delete (dest keeps only what the build writes)`);
  }
  if ((type === 'tar' || type === 'oci' || type === 'docker') && !attrs.dest) {
    throw usageError(`--output "${value}": type=${type} needs dest=FILE (or dest=- for stdout)`);
  }
  if ((type === 'oci' || type === 'docker') && attrs.tar !== undefined && attrs.tar !== '' && goBool(attrs.tar) === undefined) {
    throw usageError(`--output "${value}": non-bool value ${attrs.tar} specified for tar; use tar=true (an archive) or tar=false (an OCI layout directory)`);
  }
  if (writesLayoutDir({ type, attrs }) && attrs.dest === '-') throw usageError(`--output "${value}": tar=false writes an OCI layout directory, not a stream; give dest=DIR`);
  if (attrs.dest && attrs.dest !== '-') attrs.dest = resolve(cwd, attrs.dest);
  return { type, attrs };
}

const CACHE_TYPES = ['registry', 'local', 'inline'];

/** `--cache-from/--cache-to` in buildx csv syntax; a bare value is a registry ref. */
export function parseCacheSpec(value: string, flag: '--cache-from' | '--cache-to', cwd = process.cwd()): KeyValueSpec {
  if (!value.includes('=')) return { type: 'registry', attrs: { ref: value } };
  const attrs = parseCsvAttrs(value, flag);
  const type = attrs.type;
  delete attrs.type;
  if (!type) throw usageError(`${flag} "${value}": type is required; add type=registry|local|inline`);
  // The builder would refuse these only after the context upload: say so before it, with exit 2.
  const shown = value.length > 200 ? `${value.slice(0, 200)}…` : value;
  const to = flag === '--cache-to';
  if (!CACHE_TYPES.includes(type)) throw usageError(`${flag} "${shown}": unsupported cache type "${type.slice(0, 40)}"; this builder supports ${CACHE_TYPES.join(', ')} (e.g. type=registry,ref=REGISTRY/REPO:buildcache)`);
  if (attrs.mode !== undefined && attrs.mode !== 'min' && attrs.mode !== 'max') throw usageError(`${flag} "${shown}": unknown mode "${attrs.mode.slice(0, 40)}"; use mode=min or mode=max`);
  if (type === 'registry' && !attrs.ref) throw usageError(`${flag} "${shown}": type=registry needs ref=REGISTRY/REPO:TAG`);
  if (type === 'local' && !attrs[to ? 'dest' : 'src']) throw usageError(`${flag} "${shown}": type=local needs ${to ? 'dest' : 'src'}=DIR`);
  if (type === 'inline' && !to) throw usageError(`${flag} "${shown}": an inline cache is read from the image itself; use --cache-from type=registry,ref=IMAGE`);
  if (type === 'inline' && attrs.mode === 'max') throw usageError(`${flag} "${shown}": an inline cache holds only mode=min; use type=registry for mode=max`);
  if (type === 'local') {
    for (const k of ['src', 'dest']) if (attrs[k]) attrs[k] = resolve(cwd, attrs[k]);
  }
  return { type, attrs };
}

/** `--secret id=x,src=path | id=x,env=VAR | id=x` (buildx: a bare id reads env $id, else file ./id). */
export function parseSecret(value: string, env: NodeJS.ProcessEnv = {}, cwd = process.cwd()): SecretSource {
  const attrs = parseCsvAttrs(value, '--secret');
  let type: string | undefined;
  const s: SecretSource = { id: '' };
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'type') {
      if (v !== 'file' && v !== 'env') throw usageError(`--secret "${value}": unsupported type "${v}"; use type=file or type=env`);
      type = v;
    } else if (k === 'id') s.id = v;
    else if (k === 'src' || k === 'source') s.src = v;
    else if (k === 'env') s.env = v;
    else throw usageError(`--secret "${value}": unexpected key "${k}"; use id=, src= or env=`);
  }
  if (type === 'env' && !s.env) { s.env = s.src; delete s.src; }
  if (!s.id) {
    const from = s.src ? basename(s.src) : s.env;
    if (!from) throw usageError(`--secret "${value}": missing id; write id=NAME,src=FILE or id=NAME,env=VAR`);
    s.id = from;
  }
  if (!s.src && !s.env) {
    if (type !== 'file' && env[s.id] !== undefined) s.env = s.id;
    else s.src = s.id;
  }
  if (s.src) s.src = resolve(cwd, s.src);
  return s;
}

/**
 * `--annotation [TYPE:]KEY=VALUE` as buildx: TYPE is index, manifest (the default) or
 * manifest[os/arch]; the result is BuildKit's exporter attributes (annotation-index.KEY, ...).
 */
export function parseAnnotations(values: readonly string[] = [], platformCount = 1): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of values) {
    const eq = v.indexOf('=');
    const head = eq < 0 ? v : v.slice(0, eq);
    const m = /^(?:(index|manifest)(?:\[([^\]]*)\])?:)?([^:=\s]+)$/.exec(head);
    const shown = v.length > 200 ? `${v.slice(0, 200)}…` : v;
    if (eq < 0 || !m) throw usageError(`--annotation "${shown}": write KEY=VALUE, index:KEY=VALUE, manifest:KEY=VALUE or manifest[os/arch]:KEY=VALUE`);
    const [, type, platform, key] = m;
    if (type === 'index' && platform !== undefined) throw usageError(`--annotation "${shown}": an index has no platform; write index:KEY=VALUE`);
    if (type === 'index' && platformCount < 2) throw usageError(`--annotation "${shown}": a single-platform build pushes a manifest, not an index; build for two or more --platform values or write manifest:KEY=VALUE`);
    let attr = `annotation-${type ?? 'manifest'}`;
    if (platform !== undefined) {
      try {
        attr += `[${formatPlatform(normalizePlatform(platform))}]`;
      } catch (err) {
        throw usageError(`--annotation "${shown}": platform "${platform}": ${(err as Error).message}; write manifest[os/arch]:KEY=VALUE`);
      }
    }
    out[`${attr}.${key}`] = v.slice(eq + 1);
  }
  return out;
}

/** Docker archive file name for --load: the last path component of the first tag. */
function loadFileName(tags: readonly string[]): string {
  if (tags.length === 0) return 'image.tar';
  try {
    const ref = parseReference(tags[0]);
    return `${ref.repository.split('/').pop()}.tar`;
  } catch {
    return 'image.tar';
  }
}

/** Turns the collected flags into build options, applying buildx's shorthands (--push, --load, -q). */
export function parseBuildFlags(flags: BuildFlags, penv: ParseEnv): BuildOptions {
  const tags = flags.tag ?? [];
  for (const t of tags) {
    try {
      parseReference(t);
    } catch (err) {
      throw usageError(`-t "${t}": ${(err as Error).message}`);
    }
  }
  const notes: string[] = [];
  const outputs = (flags.output ?? []).map((o) => parseOutput(o, penv.cwd));
  if (flags.push) {
    const img = outputs.find((o) => o.type === 'image');
    if (img) img.attrs.push = 'true';
    else outputs.push({ type: 'image', attrs: { push: 'true' } });
  }
  if (flags.load) {
    // There is no Docker engine to load into: write the docker-archive tar `docker load` reads.
    const file = loadFileName(tags);
    outputs.push({ type: 'docker', attrs: { dest: resolve(penv.cwd, file) } });
    notes.push(`--load: no Docker engine here; writing a docker-archive to ./${file} (run \`docker load -i ${file}\` where one is)`);
  }
  if (outputs.filter((o) => o.attrs.dest === '-').length > 1) throw usageError('--output: more than one output writes to stdout (dest=-); send all but one to a file');
  for (const o of outputs) {
    if ((o.type === 'image' || o.type === 'docker' || o.type === 'oci') && !o.attrs.name && tags.length > 0) o.attrs.name = tags.join(',');
    if (o.type === 'image' && o.attrs.push === 'true' && !o.attrs.name) {
      throw usageError('--push: no image name; add -t NAME[:TAG] or --output type=image,name=NAME,push=true');
    }
  }
  const { shmSize, ulimits } = parseResourceFlags(flags);
  const platforms = parsePlatforms(flags.platform);
  const attests = parseAttestFlags(flags, penv.env);
  // Attestations make an index even of one platform's image (buildx's default provenance does), so index: annotations apply.
  const annotations = parseAnnotations(flags.annotation, attests.length > 0 ? Math.max(platforms.length, 2) : platforms.length);
  // As buildx: the annotations go to every output that writes an image.
  for (const o of outputs) if (o.type === 'image' || o.type === 'oci' || o.type === 'docker') Object.assign(o.attrs, annotations);
  let progress = (flags.progress ?? 'auto') as ProgressMode;
  if (!PROGRESS_MODES.includes(progress)) throw usageError(`--progress "${flags.progress}": use one of ${PROGRESS_MODES.join(', ')}`);
  if (flags.quiet) progress = 'quiet';
  const network = flags.network ?? 'default';
  const buildArgs = parseBuildArgs(flags.buildArg, penv.env);
  const cacheTo = (flags.cacheTo ?? []).map((c) => parseCacheSpec(c, '--cache-to', penv.cwd));
  // buildx: --build-arg BUILDKIT_INLINE_CACHE=1 (a Go bool) asks for an inline cache.
  if (goBool(buildArgs.BUILDKIT_INLINE_CACHE ?? '') && !cacheTo.some((c) => c.type === 'inline')) cacheTo.push({ type: 'inline', attrs: {} });
  if (!['default', 'none', 'host'].includes(network)) throw usageError(`--network "${network}": use default, none or host`);
  return {
    tags,
    platforms,
    buildArgs,
    target: flags.target ?? '',
    noCache: flags.noCache ?? false,
    // buildx: repeatable, each value a comma-separated list of stage names.
    noCacheFilter: (flags.noCacheFilter ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean),
    pull: flags.pull ?? false,
    labels: parseLabels(flags.label),
    outputs,
    cacheFrom: (flags.cacheFrom ?? []).map((c) => parseCacheSpec(c, '--cache-from', penv.cwd)),
    cacheTo,
    secrets: (flags.secret ?? []).map((s) => parseSecret(s, penv.env, penv.cwd)),
    ssh: checkSshSpecs((flags.ssh ?? []).filter(Boolean).map((s) => parseSshSpec(s, penv.env, penv.cwd))),
    network,
    allow: splitList(flags.allow),
    addHosts: splitList(flags.addHost),
    shmSize,
    ulimits,
    attests,
    progress,
    ...(flags.metadataFile ? { metadataFile: resolve(penv.cwd, flags.metadataFile) } : {}),
    ...(flags.iidfile ? { iidfile: resolve(penv.cwd, flags.iidfile) } : {}),
    notes,
  };
}

/** --shm-size and --ulimit, checked before the upload with the parser the server uses. */
function parseResourceFlags(flags: BuildFlags): { shmSize: number; ulimits: string[] } {
  const checked = <T>(flag: string, parse: () => T): T => {
    try {
      return parse();
    } catch (err) {
      if (err instanceof ResourceOptionError) throw usageError(`${flag}: ${err.message}`);
      throw err;
    }
  };
  const ulimits = (flags.ulimit ?? []).map((u) => checked('--ulimit', () => {
    const { name, soft, hard } = parseUlimit(u.slice(0, 200));
    return `${name}=${soft}:${hard}`;
  }));
  return { shmSize: flags.shmSize === undefined ? 0 : checked('--shm-size', () => parseShmSize(flags.shmSize!)), ulimits };
}
