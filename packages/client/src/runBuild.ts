// `buildyard build`: read the Dockerfile and .dockerignore, upload the context, Solve, render
// progress, write local outputs and the metadata file, and report the result or the error.
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { dockerConfigPath, formatPlatform, loadDockerConfig, normalizePlatform } from '@buildyard/oci';
import { syncContext } from '@buildyard/context';
import { SolveRequest, type InfoResponse, type SolveEvent } from '@buildyard/proto';
import { createColors } from 'picocolors';
import { BuilderStore } from './BuilderStore.js';
import { ClientError, ExitCode, usageError } from './ClientError.js';
import { connectBuilder, isServiceError, type BuilderConnection } from './connectBuilder.js';
import { ExportedFileWriter } from './ExportedFileWriter.js';
import { prepareLocalCaches, type LocalCaches } from './localCache.js';
import { formatBuildError } from './formatBuildError.js';
import { historyContextName } from './history.js';
import { parseBuildFlags, type BuildFlags } from './parseBuildFlags.js';
import { createRenderer, formatSummary, resolveProgressMode, type ProgressRenderer } from './ProgressRenderer.js';
import { readSecrets } from './readSecrets.js';
import { resolveBuildInput } from './resolveBuildInput.js';
import { namedContextValues, parseBuildContexts } from './buildContexts.js';
import { selectRegistryAuth } from './selectRegistryAuth.js';
import { loadSshAgents } from './sshAgents.js';
import { openSshSession, type SshSessionHandle } from './sshSession.js';
import type { ResolvedBuilder } from './BuilderStore.js';
import { reattaching } from './reattach.js';
import { pruneSyncBases } from './pruneSyncBases.js';
import { contextXattrReader } from './contextXattrReader.js';

export interface RunBuildOptions {
  /** PATH | URL | - */
  context: string;
  flags: BuildFlags;
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  stdin?: NodeJS.ReadableStream;
  stdout?: Writable;
  stderr?: Writable & { isTTY?: boolean; columns?: number; rows?: number };
  store?: BuilderStore;
  /** Aborting cancels the build (the Solve stream is closed) and the result is exit code 130. */
  signal?: AbortSignal;
  connect?: (b: ResolvedBuilder) => BuilderConnection;
  /** bake with several targets: each step's name starts with the target's, as buildx's "[app 2/3] RUN ...". */
  vertexPrefix?: string;
}

/** buildx's progress prefix: "[internal] x" becomes "[app internal] x", "x" becomes "[app] x". */
export function prefixVertices(r: ProgressRenderer, prefix: string): ProgressRenderer {
  const rename = (name: string) => (name.startsWith('[') ? `[${prefix} ${name.slice(1)}` : `[${prefix}] ${name}`);
  return {
    get progress() { return r.progress; },
    get human() { return r.human; },
    event: (ev) => r.event(ev.vertex ? { ...ev, vertex: { ...ev.vertex, name: rename(ev.vertex.name) } } : ev),
    end: () => r.end(),
  };
}

const CONTEXT_VERTEX = 'internal:context';

function mb(n: number): string {
  return n < 1024 * 1024 ? `${(n / 1024).toFixed(1)}kB` : `${(n / 1024 / 1024).toFixed(1)}MB`;
}

/** buildx-style metadata: result metadata plus the keys buildx always writes. */
export function buildMetadata(result: NonNullable<ProgressRenderer['progress']['result']>, tags: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (result.buildId) out['buildx.build.ref'] = result.buildId;
  for (const [k, v] of Object.entries(result.metadata)) {
    // Descriptors and other structured values travel as JSON text.
    if (/^[[{]/.test(v)) {
      try { out[k] = JSON.parse(v); continue; } catch { /* keep as text */ }
    }
    out[k] = v;
  }
  if (result.digest && out['containerimage.digest'] === undefined) out['containerimage.digest'] = result.digest;
  if (tags.length > 0 && out['image.name'] === undefined) out['image.name'] = tags.join(',');
  if (result.images.length === 1 && out['containerimage.config.digest'] === undefined && result.images[0].configDigest) {
    out['containerimage.config.digest'] = result.images[0].configDigest;
  }
  return out;
}

/**
 * A platform no worker builds would fail on the builder after the context upload; the builder's
 * Info answers which it builds, so the mistake exits 2 before it. A builder with no workers
 * registered yet (still starting, scaling up) is left to decide itself.
 */
async function checkPlatforms(conn: BuilderConnection, platforms: readonly string[]): Promise<void> {
  const info = await conn.unary<InfoResponse>('builder info', (md, opt, cb) => conn.control.info({}, md, opt, cb));
  if (info.workers === 0) return;
  const norm = (p: string) => { try { return formatPlatform(normalizePlatform(p)); } catch { return p; } };
  const known = new Set([...info.nativePlatforms, ...info.emulatedPlatforms].map(norm));
  const missing = platforms.filter((p) => !known.has(norm(p)));
  if (missing.length > 0) {
    throw usageError(`--platform ${missing.join(',')}: builder "${conn.builder.name}" has no worker for it; it builds ${[...known].join(', ')} (see buildyard builder inspect)`);
  }
}

export async function runBuild(o: RunBuildOptions): Promise<number> {
  const env = o.env ?? process.env;
  const cwd = o.cwd ?? process.cwd();
  const stdout = o.stdout ?? process.stdout;
  const stderr = o.stderr ?? process.stderr;
  const opts = parseBuildFlags(o.flags, { env, cwd });
  const mode = resolveProgressMode(opts.progress, !!stderr.isTTY);
  const color = mode === 'tty' && !env.NO_COLOR;
  const c = createColors(color);
  const say = (line: string) => { stderr.write(`${line}\n`); };

  // Checked before anything is read from stdin or uploaded.
  const buildContexts = await parseBuildContexts(o.flags.buildContext, cwd);
  const input = await resolveBuildInput({ context: o.context, file: o.flags.file, cwd, stdin: o.stdin });
  let conn: BuilderConnection | undefined;
  let renderer: ProgressRenderer | undefined;
  let writer: ExportedFileWriter | undefined;
  let caches: LocalCaches | undefined;
  let ssh: SshSessionHandle | undefined;
  let pruning: Promise<unknown> | undefined;
  try {
    const secrets = await readSecrets(opts.secrets, env);
    // --ssh: sockets and key files are checked before anything is uploaded.
    const sshAgents = opts.ssh.length > 0 ? await loadSshAgents(opts.ssh) : undefined;
    const dockerfileText = input.dockerfile.toString('utf8');
    const credentials = await loadDockerConfig(dockerConfigPath(env));
    const registryAuth = selectRegistryAuth({ tags: opts.tags, outputs: opts.outputs, cacheFrom: opts.cacheFrom, cacheTo: opts.cacheTo, dockerfile: dockerfileText }, credentials);
    const builder = await (o.store ?? new BuilderStore(undefined)).resolve(o.flags.builder, env);
    conn = (o.connect ?? connectBuilder)(builder);
    if (opts.platforms.length > 0) await checkPlatforms(conn, opts.platforms);
    if (mode !== 'quiet' && mode !== 'rawjson') for (const n of opts.notes) say(c.yellow(`NOTE: ${n}`));
    renderer = await createRenderer({ mode, stream: stderr, color });
    if (o.vertexPrefix) renderer = prefixVertices(renderer, o.vertexPrefix);
    const r = renderer;
    if (o.signal?.aborted) throw new ClientError('interrupted before the build started', ExitCode.Interrupted);

    let contextId = '';
    if (input.contextDir) {
      // Shown as buildx's "[internal] load build context" step; rawjson stays a pure event stream.
      const fake = (partial: Partial<SolveEvent['vertex']>, log?: string) => {
        if (!r.human) return;
        const now = Date.now();
        r.event({ timestampMs: now, vertex: { digest: CONTEXT_VERTEX, name: '[internal] load build context', platform: '', stage: '', step: 0, steps: 0, workerId: '', emulated: false, cached: false, startedMs: 0, completedMs: 0, error: '', totalBytes: 0, currentBytes: 0, ...partial } });
        if (log) r.event({ timestampMs: now, log: { digest: CONTEXT_VERTEX, stream: 1, data: Buffer.from(`${log}\n`), truncated: false } });
      };
      const started = Date.now();
      fake({ startedMs: started });
      let sync;
      try {
        sync = await syncContext(conn.contextSync, input.contextDir, { dockerignore: input.dockerignorePatterns, metadata: conn.metadata, signal: o.signal, readXattrs: contextXattrReader() });
      } catch (err) {
        fake({ startedMs: started, completedMs: Date.now(), error: 'upload failed' });
        throw err;
      }
      fake({ startedMs: started, completedMs: Date.now() }, `transferring context: ${sync.files} files, ${mb(sync.bytesTotal)} (${mb(sync.bytesUploaded)} uploaded)`);
      contextId = sync.contextId;
      // Meanwhile, the delta bases of contexts not synced for long are dropped (a failure only leaves them).
      pruning = pruneSyncBases().catch(() => 0);
    }
    if (o.signal?.aborted) throw new ClientError('interrupted: build cancelled', ExitCode.Interrupted);
    // Local caches stay on this machine: an import is synced like a context, an export streams back.
    const c0 = conn;
    const namedContexts = await namedContextValues(buildContexts, async (dir, dockerignore) => (await syncContext(c0.contextSync, dir, { dockerignore, metadata: c0.metadata, signal: o.signal, readXattrs: contextXattrReader() })).contextId);
    caches = await prepareLocalCaches(opts.cacheFrom, opts.cacheTo,
      async (dir) => (await syncContext(c0.contextSync, dir, { metadata: c0.metadata, signal: o.signal })).contextId,
      (message) => { if (mode !== 'quiet' && mode !== 'rawjson') say(c.yellow(`WARNING: ${message}`)); });

    const request = SolveRequest.fromPartial({
      // Named here, as buildx names its builds: a stream cut before the builder answers can
      // find the build again by this name.
      buildId: randomUUID(),
      contextId,
      dockerfile: input.dockerfile,
      dockerfileName: input.dockerfileName,
      buildArgs: opts.buildArgs,
      target: opts.target,
      platforms: opts.platforms,
      cacheFrom: caches.cacheFrom,
      cacheTo: caches.cacheTo,
      outputs: opts.outputs,
      secrets,
      labels: opts.labels,
      noCache: opts.noCache,
      noCacheFilter: opts.noCacheFilter,
      pull: opts.pull,
      network: opts.network,
      entitlements: opts.allow,
      addHosts: opts.addHosts,
      shmSize: opts.shmSize,
      ulimits: opts.ulimits,
      attests: opts.attests,
      registryAuth,
      dockerignore: input.dockerignore,
      contextName: historyContextName(o.context, cwd),
      contextUrl: input.contextUrl ?? '',
      namedContexts,
      linksHardlinks: true,
    });
    writer = new ExportedFileWriter(opts.outputs, stdout);
    const c1 = conn;
    ssh = sshAgents ? await openSshSession(conn, sshAgents).catch((err: unknown) => { throw c1.describeError(err, 'opening the SSH agent session'); }) : undefined;
    let call = conn.control.solve(request, ssh?.metadata ?? conn.metadata);
    const onAbort = () => call.cancel();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    // A frontend restart cuts the stream, not the build: attach to it again at the same address.
    const c2 = conn;
    // As the build's owner: leaving (Ctrl-C, or this process dying) cancels it, as leaving the Solve does.
    const attach = (buildId: string) => (call = c2.control.attach({ buildId, fromStart: true, cancelOnLeave: true }, c2.metadata)) as AsyncIterable<SolveEvent>;
    // What came over the cut stream only (files of dest= outputs and local caches) is not sent
    // again to an attached client: such a build fails after a cut, naming the reason.
    let cut: { buildId: string; reason: string } | undefined;
    const reattach = (buildId: string, attempt: number, err: unknown) => {
      cut ??= { buildId, reason: isServiceError(err) ? err.details : String(err) };
      if (attempt === 1 && r.human) say(c.yellow(`WARNING: lost the connection to ${builder.endpoint}; attaching to build ${buildId} again`));
    };
    const streamed = [...opts.outputs, ...opts.cacheTo].filter((spec) => spec.attrs.dest !== undefined).map((spec) => `type=${spec.type},dest=${spec.attrs.dest}`);
    // A builder that went before recording the build gets it again, unless SSH agents were
    // offered through a session only that builder held.
    const resubmit = ssh ? undefined : () => {
      const buildId = randomUUID();
      call = c2.control.solve({ ...request, buildId }, c2.metadata);
      return { buildId, stream: call as AsyncIterable<SolveEvent> };
    };
    try {
      for await (const ev of reattaching(call as AsyncIterable<SolveEvent>, attach, { signal: o.signal, onReattach: reattach, buildId: request.buildId, resubmit })) {
        r.event(ev);
        if (ev.file) await (ev.file.cache ? caches.write(ev.file) : writer.write(ev.file));
      }
    } catch (err) {
      if (o.signal?.aborted) throw new ClientError('interrupted: build cancelled', ExitCode.Interrupted);
      throw conn.describeError(err, 'build');
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
    }
    r.end();
    const p = r.progress;
    if (p.error) {
      await writer.abort();
      await caches.abort();
      // rawjson's stream has only the failed step's error; the build's own error ends stderr, one line, as buildctl's.
      if (mode === 'rawjson') { say(`ERROR: ${p.error.message.split('\n')[0]}`); return ExitCode.BuildFailed; }
      const lines = formatBuildError({ error: p.error, progress: p, dockerfile: dockerfileText, dockerfileName: input.dockerfileName });
      for (const line of lines) say(line.startsWith('ERROR:') ? c.red(line) : line);
      return ExitCode.BuildFailed;
    }
    if (!p.result) throw new ClientError(`build: ${builder.endpoint} closed the progress stream without a result; see the builder's logs, then retry`);
    if (cut && streamed.length > 0) {
      await writer.abort();
      await caches.abort();
      throw new ClientError(`build: build ${cut.buildId} finished, but the connection to ${builder.endpoint} broke (${cut.reason}) and ${streamed.join(', ')} comes only over the connection that started the build, so it was not written; run the build again (its steps are cached)`);
    }
    if (writer.pending > 0) throw new ClientError(`build: the builder stopped in the middle of an exported file; retry the build`);
    await writer.finish();
    await caches.finish();
    if (opts.metadataFile) await writeFile(opts.metadataFile, JSON.stringify(buildMetadata(p.result, opts.tags), null, 2) + '\n');
    // As buildx: the digest alone, no newline (the index's for a multi-platform build).
    if (opts.iidfile) await writeFile(opts.iidfile, p.result.digest);
    if (r.human) for (const line of formatSummary(p)) say(line);
    for (const dest of writer.written) if (r.human && dest !== '-') say(`wrote ${dest}`);
    for (const dest of caches.written) if (r.human) say(`wrote cache ${dest}`);
    if (mode === 'quiet') stdout.write(`${p.result.digest}\n`);
    return ExitCode.Success;
  } catch (err) {
    renderer?.end();
    await writer?.abort();
    await caches?.abort();
    if (err instanceof ClientError) throw err;
    if (isServiceError(err) && conn) throw conn.describeError(err, 'upload context');
    throw err;
  } finally {
    ssh?.close();
    conn?.close();
    await input.cleanup();
    await pruning;
  }
}
