// Contexts the server fetches itself: a git URL as the build context (`buildyard build
// https://host/repo.git#ref:dir`, buildx's `context` attribute) or a named context. The fetch
// runs on the frontend, because the planner needs the Dockerfile inside the repository before
// any stage exists (BuildKit's Dockerfile frontend likewise solves the git source before it
// parses). It obeys the build's network policy: the frontend is given the same egress rules the
// workers apply to RUN steps and ADD <url> (worker.egress lists, the cluster's own services,
// this host's addresses, the tenant's lists), and every connection git opens is vetted against
// them. A checkout is stored once per tenant and commit: a second build of the same commit only
// asks the remote which commit the ref names (ls-remote) and fetches nothing.
import { createHash, randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { dirname, join, posix } from 'node:path';
import { isRegular, readManifest, sortEntries, storeDirectory, type ContextEntry, type ContextStore } from '@buildyard/context';
import { compileDockerignore, parseDockerignore, type NamedContextSource } from '@buildyard/dockerfile';
import { downloadUrl, extractArchive, fetchGit, FileOpError, GitFetchError, GitRefError, httpLimitsOf, parseGitRef, resolveGitCommit, sniffArchive, type GitRef } from '@buildyard/fileop';
import type { VertexRef } from '@buildyard/progress';
import type { SolveRequest } from '@buildyard/proto';
import { layoutNamedContext, parseLayoutValue } from './layoutImages.js';

export type AddressPolicy = (address: string) => string | undefined;

export interface RemoteContextsOptions {
  contexts: ContextStore;
  /** Where checkouts are made (removed after each fetch). */
  scratchDir: string;
  /** The network policy of `tenant`'s builds; undefined: nothing is refused (tests only). */
  policy?: (tenant: string) => AddressPolicy | undefined;
  /** Whole fetch (default 600 s). */
  timeoutMs?: number;
  /** Connect and idle limits of each connection (limits.fetchConnectTimeoutMs / fetchIdleTimeoutMs). */
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
}

/** Where a fetch shows as a step (a ProgressWriter, or the BuildKit endpoint's status stream). */
export interface SourceProgress {
  started(vertex: VertexRef, startedMs: number): Promise<void>;
  cached(vertex: VertexRef): Promise<void>;
  finished(vertex: VertexRef, startedMs: number): Promise<void>;
  failed(vertex: VertexRef, startedMs: number, error: string): Promise<void>;
}

/** A remote context could not be used: one line for the user. */
export class RemoteContextError extends Error {}

export interface FetchedContext {
  /** The tenant's context id of the whole checkout (subdir applied, no .dockerignore). */
  contextId: string;
  commit: string;
}

export class RemoteContexts {
  constructor(private readonly opts: RemoteContextsOptions) {}

  /** Parses a git URL (undefined when `url` is not one). */
  static gitRef(url: string): GitRef | undefined {
    try {
      return parseGitRef(url);
    } catch (err) {
      if (err instanceof GitRefError) throw new RemoteContextError(err.message);
      throw err;
    }
  }

  /**
   * The request with its git `contextUrl` fetched: `contextId` set (with the repository's
   * .dockerignore applied), and the Dockerfile read from the checkout unless the request has one.
   */
  async resolveBuildContext(req: SolveRequest, tenant: string, progress: SourceProgress, signal: AbortSignal): Promise<SolveRequest> {
    const got = await this.gitBuildContext(tenant, req.contextUrl, { dockerfileName: req.dockerfileName || 'Dockerfile', dockerfile: req.dockerfile.length > 0 ? Buffer.from(req.dockerfile) : undefined, keepGitDir: keepGitDirArg(req.buildArgs) }, progress, signal);
    return { ...req, contextUrl: '', ...got };
  }

  /**
   * A git URL as a build context: stored with its .dockerignore applied (unless `ignoreDockerignore`:
   * BuildKit's Dockerfile frontend applies none to a git or http context), and its Dockerfile.
   */
  async gitBuildContext(tenant: string, url: string, o: { dockerfileName: string; dockerfile?: Buffer; keepGitDir?: boolean; ignoreDockerignore?: boolean }, progress: SourceProgress, signal: AbortSignal): Promise<{ contextId: string; dockerfile: Buffer; dockerignore: Buffer }> {
    const ref = RemoteContexts.gitRef(url);
    if (!ref) throw new RemoteContextError(`context ${url.slice(0, 200)} is not a git URL: use https://host/repo.git#ref:dir, git://... or a directory`);
    if (o.keepGitDir !== undefined) ref.keepGitDir = o.keepGitDir;
    const fetched = await this.fetch(tenant, ref, url, progress, signal);
    return this.withDockerfile(tenant, fetched.contextId, url, o, 'the repository\'s directory');
  }

  /**
   * An http(s) URL as the build context (buildctl/buildx `context=https://host/ctx.tar.gz`), as
   * BuildKit's Dockerfile frontend takes one: a tar archive (plain, gzip, bzip2 or xz) is the
   * context; any other file is the Dockerfile, alone in its context. Shown as BuildKit's
   * "[internal] load remote build context" step.
   */
  async httpBuildContext(tenant: string, url: string, o: { dockerfileName: string; dockerfile?: Buffer; ignoreDockerignore?: boolean }, progress: SourceProgress, signal: AbortSignal): Promise<{ contextId: string; dockerfile: Buffer; dockerignore: Buffer }> {
    return this.downloadedContext(tenant, url, '[internal] load remote build context', progress, signal, async (file, root) => {
      const compression = await sniffArchive(file, redact(url));
      if (compression) await extractArchive({ archivePath: file, compression, dir: root, label: redact(url), limits: { maxBytes: this.opts.contexts.maxContextBytes, maxEntries: this.opts.contexts.maxFiles } });
      else {
        // The name is the client's (buildctl's filename=): a path inside the context, `..` stopping
        // at its root, never one onto the frontend's own files.
        const target = join(root, contextPath(o.dockerfileName) || 'Dockerfile');
        await mkdir(dirname(target), { recursive: true });
        await rename(file, target);
      }
    }, (contextId) => this.withDockerfile(tenant, contextId, url, o, 'the archive'));
  }

  /**
   * `--build-context NAME=https://host/file` (not a git URL), as current dockerui takes one: the
   * download itself, one file named `context` (llb.HTTP with that file name: 0600, dated by the
   * answer's Last-Modified, else the epoch), never unpacked.
   */
  private httpNamedContext(tenant: string, name: string, url: string, progress: SourceProgress, signal: AbortSignal): Promise<Extract<NamedContextSource, { kind: 'context' }>> {
    return this.downloadedContext(tenant, url, `[context ${name}] ${redact(url)}`, progress, signal, async (file, root, lastModified) => {
      const target = join(root, 'context');
      await rename(file, target);
      await chmod(target, 0o600);
      const time = lastModified ?? new Date(0);
      await utimes(target, time, time);
    }, async (contextId) => ({ kind: 'context', contextId, entries: await readManifest(this.opts.contexts, contextId) }));
  }

  /**
   * Downloads `url` on the frontend with ADD <url>'s download (its limits, retries, and the
   * tenant's egress policy vetting every address it connects to) as the step `stepName`;
   * `place` puts the body into the directory then stored as the tenant's context, handed to `use`.
   */
  private async downloadedContext<T>(tenant: string, url: string, stepName: string, progress: SourceProgress, signal: AbortSignal, place: (file: string, root: string, lastModified: Date | null) => Promise<void>, use: (contextId: string) => Promise<T>): Promise<T> {
    let parsed: URL;
    try { parsed = new URL(url); } catch { throw new RemoteContextError(`context ${redact(url).slice(0, 200)} is not a valid URL: use https://host/ctx.tar.gz`); }
    if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new RemoteContextError(`context ${redact(url).slice(0, 200)}: only http(s) URLs are downloaded`);
    const vertex: VertexRef = {
      digest: `sha256:${createHash('sha256').update(`http context\0${stepName}\0${url}`).digest('hex')}`,
      name: stepName, platform: '', stage: '', step: 0, steps: 0, workerId: '', emulated: false,
    };
    const startedMs = Date.now();
    await progress.started(vertex, startedMs);
    const workDir = join(this.opts.scratchDir, randomUUID());
    const root = join(workDir, 'root');
    try {
      const file = join(workDir, 'download');
      // Only the frontend's own user reaches what an archive unpacks here (a setuid file, a device
      // node) before the walk refuses or stores it.
      await mkdir(root, { recursive: true, mode: 0o700 });
      const answer = await downloadUrl(parsed, file, httpLimitsOf({
        signal, refuseAddress: this.opts.policy?.(tenant), timeoutMs: this.opts.timeoutMs ?? 600_000, maxBytes: this.opts.contexts.maxContextBytes,
        ...(this.opts.connectTimeoutMs ? { connectTimeoutMs: this.opts.connectTimeoutMs } : {}), ...(this.opts.idleTimeoutMs ? { idleTimeoutMs: this.opts.idleTimeoutMs } : {}),
      }));
      await place(file, root, 'lastModified' in answer ? answer.lastModified : null);
      const { contextId } = await storeDirectory(this.opts.contexts, root, { tenant });
      const got = await use(contextId);
      await progress.finished(vertex, startedMs);
      return got;
    } catch (err) {
      // ADD's download names itself in its errors; here the URL is the context.
      // Paths name the file inside the archive, not where the frontend unpacked it.
      const message = err instanceof FileOpError ? err.message.replace(/^ADD /, 'context ') : err instanceof RemoteContextError ? err.message : `context ${redact(url)}: ${(err as Error).message.replaceAll(`${root}/`, '')}`;
      await progress.failed(vertex, startedMs, message).catch(() => {});
      if (signal.aborted) throw err;
      throw new RemoteContextError(message);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  /** A fetched context with its Dockerfile (given, or read from it) and its .dockerignore applied. */
  private async withDockerfile(tenant: string, contextId: string, url: string, o: { dockerfileName: string; dockerfile?: Buffer; ignoreDockerignore?: boolean }, root: string): Promise<{ contextId: string; dockerfile: Buffer; dockerignore: Buffer }> {
    const entries = await readManifest(this.opts.contexts, contextId);
    const name = o.dockerfileName;
    const dockerfile = o.dockerfile ?? await this.read(entries, name, `${name} not found in ${redact(url)}: check the path given with -f (relative to ${root})`);
    if (o.ignoreDockerignore) return { contextId, dockerfile, dockerignore: Buffer.alloc(0) };
    const dockerignore = (await this.readOptional(entries, `${name}.dockerignore`)) ?? (await this.readOptional(entries, '.dockerignore')) ?? Buffer.alloc(0);
    let patterns: string[];
    try {
      patterns = parseDockerignore(dockerignore.toString('utf8'));
    } catch (err) {
      throw new RemoteContextError(`.dockerignore of ${redact(url)}: ${(err as Error).message}`);
    }
    return { contextId: await this.opts.contexts.putManifest(filterEntries(entries, patterns), tenant), dockerfile, dockerignore };
  }

  /**
   * The request's named contexts (`named_contexts`) for the planner. Values, as the clients send
   * them: `docker-image://REF[@DIGEST]`; `local:sha256:<hex>`, a directory the client synced
   * (ContextSync) as this tenant; `oci-layout://local:sha256:<hex>@DIGEST`, an image in an OCI
   * layout it synced so (see layoutImages.ts); a git URL, fetched here like a git build context;
   * or another http(s) URL, downloaded as one file (httpNamedContext).
   */
  async namedContexts(req: SolveRequest, tenant: string, progress: SourceProgress, signal: AbortSignal): Promise<Record<string, NamedContextSource>> {
    const out: Record<string, NamedContextSource> = {};
    for (const [name, value] of Object.entries(req.namedContexts)) {
      const shown = `--build-context ${name.slice(0, 100)}=${redact(value).slice(0, 200)}`;
      if (value.startsWith('docker-image://')) {
        const ref = value.slice('docker-image://'.length);
        if (!ref) throw new RemoteContextError(`${shown}: docker-image:// needs an image reference`);
        out[name] = { kind: 'image', ref };
        continue;
      }
      const layout = parseLayoutValue(value);
      if (layout) {
        // As a directory: only a layout this tenant uploaded.
        if (!(await this.opts.contexts.tenantHas(tenant, layout.contextId))) throw new RemoteContextError(`${shown}: unknown context; sync the layout directory first`);
        try { out[name] = layoutNamedContext(name, layout); } catch (err) { throw new RemoteContextError(`${shown}: ${(err as Error).message}`); }
        continue;
      }
      const local = /^local:(sha256:[a-f0-9]{64})$/.exec(value);
      if (local) {
        // Only a directory this tenant uploaded: a context id alone is never proof of holding it.
        if (!(await this.opts.contexts.tenantHas(tenant, local[1]!))) throw new RemoteContextError(`${shown}: unknown context; sync the directory first`);
        out[name] = { kind: 'context', contextId: local[1]!, entries: await readManifest(this.opts.contexts, local[1]!) };
        continue;
      }
      const ref = RemoteContexts.gitRef(value);
      if (ref) {
        const fetched = await this.fetch(tenant, ref, value, progress, signal);
        out[name] = { kind: 'context', contextId: fetched.contextId, entries: await readManifest(this.opts.contexts, fetched.contextId) };
        continue;
      }
      if (/^https?:\/\//i.test(value)) {
        out[name] = await this.httpNamedContext(tenant, name, value, progress, signal);
        continue;
      }
      throw new RemoteContextError(`${shown}: unsupported value; use a directory, docker-image://REF, oci-layout://DIR[:TAG], a git URL (https://host/repo.git#ref:dir) or an http(s) URL`);
    }
    return out;
  }

  /** `ADD <git URL>`'s source: the checkout as a stored context (ADD --keep-git-dir keeps .git,
   *  ADD --checksum must match the commit). */
  async gitSource(tenant: string, url: string, o: { keepGitDir: boolean; checksum?: string }, progress: SourceProgress, signal: AbortSignal): Promise<Extract<NamedContextSource, { kind: 'context' }>> {
    const ref = RemoteContexts.gitRef(url);
    if (!ref) throw new RemoteContextError(`${url.slice(0, 200)} is not a git URL`);
    if (o.keepGitDir) ref.keepGitDir = true;
    if (o.checksum) ref.checksum = o.checksum;
    const fetched = await this.fetch(tenant, ref, url, progress, signal);
    return { kind: 'context', contextId: fetched.contextId, entries: await readManifest(this.opts.contexts, fetched.contextId) };
  }

  /** Fetches (or finds stored) the checkout `ref` names now; shows it as one internal step. */
  async fetch(tenant: string, ref: GitRef, url: string, progress: SourceProgress, signal: AbortSignal): Promise<FetchedContext> {
    const vertex: VertexRef = {
      digest: `sha256:${createHash('sha256').update(`git source\0${url}`).digest('hex')}`,
      name: `[internal] load git source ${redact(url)}`, platform: '', stage: '', step: 0, steps: 0, workerId: '', emulated: false,
    };
    const startedMs = Date.now();
    await progress.started(vertex, startedMs);
    const workDir = join(this.opts.scratchDir, randomUUID());
    try {
      const policy = this.opts.policy?.(tenant);
      const gitOpts = {
        ref, workDir, signal, ...(policy ? { refuse: policy } : {}), timeoutMs: this.opts.timeoutMs ?? 600_000,
        ...(this.opts.connectTimeoutMs ? { connectTimeoutMs: this.opts.connectTimeoutMs } : {}), ...(this.opts.idleTimeoutMs ? { idleTimeoutMs: this.opts.idleTimeoutMs } : {}),
      };
      await mkdir(workDir, { recursive: true });
      const commit = await resolveGitCommit(gitOpts);
      if (ref.checksum && !commit.startsWith(ref.checksum)) throw new RemoteContextError(`git ${redact(url)}: ref "${ref.ref || 'HEAD'}" is commit ${commit}, not the expected ${ref.checksum.slice(0, 64)}`);
      const keep = ref.keepGitDir === true;
      const record = join(this.opts.contexts.root, 'git', createHash('sha256').update([tenant, ref.remote, commit, ref.subdir, String(keep)].join('\0')).digest('hex'));
      const stored = (await readFile(record, 'utf8').catch(() => '')).trim();
      // Reused as a sync reuses a local context: its grants are renewed (putManifest), so the
      // context GC by grant age keeps a commit that is still being built; fetched again if that fails.
      const reused = stored && (await this.opts.contexts.tenantHas(tenant, stored)) && (await this.opts.contexts.content.has(stored))
        && (await this.opts.contexts.putManifest(await this.opts.contexts.manifest(stored), tenant).then(() => true, () => false));
      if (reused) {
        await progress.cached(vertex);
        await progress.finished(vertex, startedMs);
        return { contextId: stored, commit };
      }
      const got = await fetchGit({ ...gitOpts, commit, maxTreeBytes: this.opts.contexts.maxContextBytes, maxTreeFiles: this.opts.contexts.maxFiles });
      const { contextId } = await storeDirectory(this.opts.contexts, got.dir, { tenant, omit: keep && !ref.subdir ? [] : ['.git'] });
      await mkdir(join(this.opts.contexts.root, 'git'), { recursive: true });
      // Written last: a record always names a context that is stored.
      await writeFile(record, contextId);
      await progress.finished(vertex, startedMs);
      return { contextId, commit: got.commit };
    } catch (err) {
      const message = err instanceof GitFetchError || err instanceof RemoteContextError ? err.message : `git ${redact(url)}: ${(err as Error).message}`;
      await progress.failed(vertex, startedMs, message).catch(() => {});
      if (signal.aborted) throw err;
      throw new RemoteContextError(message);
    } finally {
      await rm(workDir, { recursive: true, force: true });
    }
  }

  private async readOptional(entries: readonly ContextEntry[], path: string): Promise<Buffer | undefined> {
    const clean = contextPath(path);
    const entry = entries.find((e) => e.path === clean && isRegular(e));
    return entry ? this.opts.contexts.content.readBytes(entry.digest) : undefined;
  }

  private async read(entries: readonly ContextEntry[], path: string, missing: string): Promise<Buffer> {
    const found = await this.readOptional(entries, path);
    if (!found) throw new RemoteContextError(missing);
    return found;
  }
}

/** A name inside a context as its entries spell it: no leading `./` or `/`, and `..` stopping at the root. */
function contextPath(name: string): string {
  return posix.normalize(`/${name}`).slice(1).replace(/\/+$/, '');
}

/**
 * The entries a client walk with these .dockerignore patterns would have sent (walkContext's
 * rule): an excluded directory is kept only as the parent of something a `!` pattern re-includes.
 */
export function filterEntries(entries: readonly ContextEntry[], patterns: readonly string[]): ContextEntry[] {
  if (patterns.length === 0) return [...entries];
  const matcher = compileDockerignore(patterns);
  const children = new Map<string, ContextEntry[]>();
  for (const e of entries) {
    const parent = e.path.includes('/') ? e.path.slice(0, e.path.lastIndexOf('/')) : '';
    const list = children.get(parent) ?? [];
    list.push(e);
    children.set(parent, list);
  }
  const out: ContextEntry[] = [];
  const walk = (dir: string): boolean => {
    let emitted = false;
    for (const e of children.get(dir) ?? []) {
      const isDir = (e.mode & 0o170000) === 0o040000;
      if (matcher.excludes(e.path)) {
        if (isDir && matcher.mayMatchInside(e.path)) {
          const at = out.push(e) - 1;
          if (walk(e.path)) emitted = true;
          else out.splice(at, 1);
        }
        continue;
      }
      emitted = true;
      out.push(e);
      if (isDir) walk(e.path);
    }
    return emitted;
  };
  walk('');
  return sortEntries(out);
}

/** dockerui's BUILDKIT_CONTEXT_KEEP_GIT_DIR build arg (Go's ParseBool), undefined when unset. */
export function keepGitDirArg(buildArgs: Record<string, string>): boolean | undefined {
  const v = buildArgs.BUILDKIT_CONTEXT_KEEP_GIT_DIR;
  if (v === undefined) return undefined;
  if (/^(1|t|true)$/i.test(v)) return true;
  if (/^(0|f|false)$/i.test(v)) return false;
  return undefined;
}

/** A URL's password is never shown in progress or errors. */
function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) { u.password = '***'; return u.href.slice(0, 300); }
  } catch { /* scp-style */ }
  return url.slice(0, 300);
}
