// `buildyard bake`: resolve the bake files' targets, print them (--print) or build them all at
// once, each as one build (one Solve) through @buildyard/client's runBuild, with buildx's
// per-target progress prefix when there are several.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { ClientError, ExitCode, parseBuildFlags, runBuild, usageError, type BuildFlags, type RunBuildOptions } from '@buildyard/client';
import { HclError } from './hcl/ast.js';
import { BakeError, bakeBuiltins, cleanContext, flagOverrides, isRemoteContext, readBakeFiles, resolveTargets, type Resolved } from './resolve.js';
import { printJson, type Target } from './target.js';

export interface BakeFlags {
  file?: string[];
  set?: string[];
  print?: boolean;
  push?: boolean;
  load?: boolean;
  /** undefined: not given (the files decide). */
  noCache?: boolean;
  pull?: boolean;
  progress?: string;
  builder?: string;
  metadataFile?: string;
  /** Shorthands for --set=*.attest=type=provenance,... / type=sbom,... */
  provenance?: string;
  sbom?: string;
}

export interface RunBakeOptions {
  targets: string[];
  flags: BakeFlags;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadableStream;
  stdout?: Writable;
  stderr?: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  signal?: AbortSignal;
  /** The build of one target (runBuild; tests pass one with a connect of their own). */
  build?: (o: RunBuildOptions) => Promise<number>;
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  const parts: Buffer[] = [];
  for await (const c of stream) parts.push(typeof c === 'string' ? Buffer.from(c) : Buffer.from(c as Uint8Array));
  return Buffer.concat(parts).toString('utf8');
}

/** Resolves the targets as `bake` (and --print) sees them; bake file errors become usage errors. */
export async function loadBake(o: RunBakeOptions): Promise<Resolved> {
  const cwd = o.cwd ?? process.cwd();
  const env = o.env ?? process.env;
  const f = o.flags;
  try {
    const overrides = flagOverrides(f);
    const stdinText = (f.file ?? []).includes('-') ? await readAll(o.stdin ?? process.stdin) : undefined;
    const files = readBakeFiles(f.file ?? [], cwd, stdinText === undefined ? undefined : () => stdinText);
    return resolveTargets(files, {
      env, overrides, targets: o.targets, cwd,
      builtins: bakeBuiltins(),
    });
  } catch (e) {
    if (e instanceof HclError || e instanceof BakeError) throw usageError(e.message);
    throw e;
  }
}

/** One target as `buildyard build` flags (buildx's toBuildOpt). */
export function targetBuild(t: Target, f: BakeFlags, cwd: string, forPrint = false): { context: string; flags: BuildFlags; inline?: string; links: string[] } {
  if (t.context === '-') throw usageError(`target "${t.name}": context from stdin not allowed in bake; set context to a directory`);
  if (t.dockerfile === '-') throw usageError(`target "${t.name}": dockerfile from stdin not allowed in bake; use dockerfile-inline`);
  // `target:X` contexts: X is built first (see runBake); the flag keeps the link until then.
  const links = [...new Set(Object.values(t.contexts ?? {}).filter((v) => v.startsWith('target:')).map((v) => v.slice('target:'.length)))];
  const context = cleanContext(t.context ?? '.');
  const remote = isRemoteContext(context);
  let file = t.dockerfile ?? 'Dockerfile';
  if (!remote && !isAbsolute(file)) file = join(context, file);
  // `--load` (*.output=type=docker) has no Docker engine to load into here: `buildyard build
  // --load`'s docker-archive file stands in for it, as for a build.
  const isLoad = (o: string) => /^type=docker$/.test(o.trim());
  const load = (t.output ?? []).some(isLoad);
  const output = t.output?.filter((o) => !isLoad(o));
  const kv = (m?: Record<string, string | null>) => Object.entries(m ?? {}).filter(([, v]) => v !== null).map(([k, v]) => `${k}=${v}`);
  const flags: BuildFlags = {
    file: t['dockerfile-inline'] !== undefined ? '-' : (remote ? undefined : file),
    tag: t.tags,
    platform: t.platforms,
    buildArg: kv(t.args),
    target: t.target,
    noCache: t['no-cache'] ?? false,
    noCacheFilter: t['no-cache-filter'],
    pull: t.pull ?? false,
    label: kv(t.labels),
    output,
    load,
    cacheFrom: t['cache-from'],
    cacheTo: t['cache-to'],
    secret: t.secret,
    // Named contexts as --build-context: cwd:// (buildx's "relative to the current directory") dropped.
    buildContext: Object.entries(t.contexts ?? {}).map(([k, v]) => `${k}=${v.startsWith('cwd://') ? v.slice('cwd://'.length) || '.' : v}`),
    ssh: t.ssh,
    attest: t.attest,
    network: t.network,
    allow: t.entitlements,
    addHost: Object.entries(t['extra-hosts'] ?? {}).filter(([, v]) => v !== null).map(([k, v]) => `${k}:${v}`),
    annotation: t.annotations,
    shmSize: t['shm-size'],
    ulimit: t.ulimits,
    progress: f.progress,
    builder: f.builder,
  };
  // Every check a build makes before its upload, for every target before any starts; --print
  // makes them too (platforms, outputs, cache specs), as buildx's print does, but shows what
  // buildyard cannot build yet rather than refusing it.
  parseBuildFlags(forPrint ? { ...flags, shmSize: undefined, ulimit: undefined } : flags, { env: {}, cwd });
  return { context, flags, inline: t['dockerfile-inline'], links };
}

/**
 * Linked targets (`contexts = { base = "target:X" }`): buildx builds X in the same session and
 * hands its result to the dependents' frontend as an input. Here X's build also writes its
 * image into an OCI layout directory of its own (`type=oci,tar=false`), and each dependent names
 * it as `oci-layout://DIR@DIGEST`, a build context the builder reads as it reads any layout.
 */
class TargetLinks {
  private dir?: string;

  /** The layout directory of target `name`'s image (made on first use). */
  async layoutOf(name: string): Promise<string> {
    this.dir ??= await mkdtemp(join(tmpdir(), 'buildyard-bake-links-'));
    return join(this.dir, name);
  }

  /** `flags.buildContext` with each `target:X` replaced by the layout X's build wrote. */
  async resolve(flags: BuildFlags): Promise<string[]> {
    return Promise.all((flags.buildContext ?? []).map(async (c) => {
      const eq = c.indexOf('=');
      const value = c.slice(eq + 1);
      if (!value.startsWith('target:')) return c;
      const dir = await this.layoutOf(value.slice('target:'.length));
      const index = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests: Array<{ digest: string }> };
      return `${c.slice(0, eq)}=oci-layout://${dir}@${index.manifests.at(-1)!.digest}`;
    }));
  }

  async remove(): Promise<void> {
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }
}

/**
 * One target's share of stderr when several build: whole lines only (concurrent targets never
 * split each other's lines), the plain view's "#N" steps numbered across all targets as buildx's
 * one printer numbers them, and the target's own lines (summary, notes) marked with its name.
 */
function targetStderr(out: Writable, name: string, numbers: { next: number }, plain: boolean): Writable {
  let buf = '';
  const mine = new Map<string, number>();
  const line = (l: string): string => {
    // rawjson lines stay JSON; only the plain view is renumbered and marked.
    if (!plain) return l;
    const step = /^#(\d+)(?= |$)/.exec(l);
    if (step) {
      let n = mine.get(step[1]);
      if (n === undefined) { n = ++numbers.next; mine.set(step[1], n); }
      return `#${n}${l.slice(step[0].length)}`;
    }
    return l.trim() === '' ? l : `[${name}] ${l}`;
  };
  return new Writable({
    write(chunk: Buffer | string, _enc, cb) {
      buf += chunk.toString();
      const i = buf.lastIndexOf('\n');
      if (i >= 0) { out.write(buf.slice(0, i).split('\n').map(line).join('\n') + '\n'); buf = buf.slice(i + 1); }
      cb();
    },
    final(cb) { if (buf) out.write(line(buf)); buf = ''; cb(); },
  });
}

export async function runBake(o: RunBakeOptions): Promise<number> {
  const cwd = o.cwd ?? process.cwd();
  const env = o.env ?? process.env;
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  const resolved = await loadBake(o);
  if (o.flags.print) {
    for (const t of resolved.targets.values()) targetBuild(t, o.flags, cwd, true);
    stdout.write(`${printJson(resolved.groups, resolved.targets)}\n`);
    return ExitCode.Success;
  }
  const names = [...resolved.targets.keys()].sort();
  if (names.length === 0) throw usageError('bake: no targets to build; name a target or group, or add a "default" group');
  const plans = names.map((name) => ({ name, ...targetBuild(resolved.targets.get(name)!, o.flags, cwd) }));
  const several = plans.length > 1;
  // buildx's warning for targets whose result would stay in the build cache only.
  const noOutput = plans.filter((p) => !p.flags.output?.length && !p.flags.push && !p.flags.load && !resolved.linked.has(p.name)).map((p) => p.name);
  if (noOutput.length && !['quiet', 'rawjson'].includes(o.flags.progress ?? 'auto')) {
    stderr.write(`WARNING: No output specified for ${noOutput.join(', ')} target(s). Build result will only remain in the build cache. To push result image into registry use --push or to write a docker archive use --load\n`);
  }
  const links = new TargetLinks();
  const linkedTo = new Set(plans.flatMap((p) => p.links));
  for (const p of plans) if (linkedTo.has(p.name)) p.flags.output = [...(p.flags.output ?? []), `type=oci,dest=${await links.layoutOf(p.name)},tar=false`];
  // Each target starts once the targets it links to are built; false: one of them failed.
  const built = new Map<string, Promise<boolean>>();
  const metaDir = o.flags.metadataFile ? await mkdtemp(join(tmpdir(), 'buildyard-bake-meta-')) : undefined;
  // The first failure cancels the other builds, as buildx's bake does.
  const cancel = new AbortController();
  const onAbort = () => cancel.abort();
  o.signal?.addEventListener('abort', onAbort, { once: true });
  const build = o.build ?? runBuild;
  let firstFailure: { name: string; code: number; message?: string } | undefined;
  const numbers = { next: 0 };
  try {
    const runTarget = async (p: typeof plans[number]): Promise<boolean> => {
      if (!(await Promise.all(p.links.map((l) => built.get(l)!))).every(Boolean)) return false;
      // Several live tty views would overwrite each other: they share plain lines instead.
      const progress = several && ['auto', 'tty'].includes(p.flags.progress ?? 'auto') ? 'plain' : p.flags.progress;
      const err = several ? targetStderr(stderr, p.name, numbers, progress === 'plain') : stderr;
      try {
        const buildContext = await links.resolve(p.flags);
        const code = await build({
          context: p.context,
          flags: { ...p.flags, buildContext, progress, metadataFile: metaDir ? join(metaDir, `${p.name}.json`) : undefined },
          cwd, env, stdout, stderr: err,
          stdin: p.inline !== undefined ? Readable.from([Buffer.from(p.inline)]) : o.stdin,
          signal: cancel.signal,
          vertexPrefix: several ? p.name : undefined,
        });
        if (code !== ExitCode.Success && !firstFailure) { firstFailure = { name: p.name, code }; cancel.abort(); }
        return code === ExitCode.Success;
      } catch (e) {
        if (!several) throw e;
        const code = e instanceof ClientError ? e.exitCode : ExitCode.BuildFailed;
        if (!firstFailure || (firstFailure.code === ExitCode.Interrupted && code !== ExitCode.Interrupted)) {
          firstFailure = { name: p.name, code, message: (e as Error).message };
        }
        if (code !== ExitCode.Interrupted || !cancel.signal.aborted) stderr.write(`ERROR: target ${p.name}: ${(e as Error).message}\n`);
        cancel.abort();
        return false;
      } finally {
        if (err !== stderr) err.end();
      }
    };
    for (const p of plans) built.set(p.name, Promise.resolve().then(() => runTarget(p)));
    await Promise.all(built.values());
    if (firstFailure) return firstFailure.code;
    if (metaDir && o.flags.metadataFile) {
      const all: Record<string, unknown> = {};
      // Targets only a link pulled in are part of their dependents' builds, as in buildx's metadata.
      for (const p of plans) if (!resolved.linked.has(p.name)) all[p.name] = JSON.parse(await readFile(join(metaDir, `${p.name}.json`), 'utf8'));
      await writeFile(o.flags.metadataFile, `${JSON.stringify(all, null, 2)}\n`);
    }
    return ExitCode.Success;
  } finally {
    o.signal?.removeEventListener('abort', onAbort);
    if (metaDir) await rm(metaDir, { recursive: true, force: true });
    await links.remove();
  }
}
