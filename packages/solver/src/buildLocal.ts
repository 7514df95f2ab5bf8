import { createReadStream, existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LocalCacheIndex } from '@buildyard/cache';
import { ContextStore, materializeContext, walkContext, isRegular } from '@buildyard/context';
import { parse, parseDockerignore, planBuild } from '@buildyard/dockerfile';
import { RuncExecutor, detectPlatforms, type RuncExecutorOptions } from '@buildyard/executor';
import { normalizePlatform, type PlatformPlan } from '@buildyard/graph';
import { FsContentStore, RegistryClient, hostPlatform, formatPlatform, writeOciLayout } from '@buildyard/oci';
import { OverlaySnapshotter, reclaimScratch } from '@buildyard/snapshot';
import { assembleImage, assembleIndex, type AssembledImage } from './assembleImage.js';
import { RegistryImageSource, registryImageResolver } from './RegistryImageSource.js';
import { SCRATCH_DIR, StageSolver, type SolverEvents } from './StageSolver.js';
import type { StageResult } from './StageResult.js';

export interface LocalBuildOptions {
  contextDir: string;
  /** Path of the Dockerfile; default <contextDir>/Dockerfile. */
  dockerfile?: string;
  platforms: string[];
  buildArgs?: Record<string, string>;
  target?: string;
  labels?: Record<string, string>;
  secrets?: Map<string, Buffer>;
  noCache?: boolean;
  /** Directory for snapshots, blobs, the cache index and cache mounts; reused across builds. */
  stateDir: string;
  /** OCI layout directory to write the result to (index.json, blobs/). */
  ociLayoutDir?: string;
  /** Tag recorded in the layout's index (org.opencontainers.image.ref.name). */
  tag?: string;
  insecureRegistries?: string[];
  compression?: 'gzip' | 'zstd';
  sourceDateEpoch?: number;
  events?: SolverEvents & { platform?(platform: string, message: string): void };
  signal?: AbortSignal;
}

export interface LocalBuildResult {
  images: AssembledImage[];
  /** Index digest for several platforms, else the manifest digest. */
  digest: string;
  stages: StageResult[];
}

/**
 * What runs steps on this machine: the overlay snapshotter and runc, both cleared of anything
 * a killed predecessor left in the state dir. Fleet workers use this with the shared store.
 */
export async function openExecutionEngine(stateDir: string, executorOptions: Omit<RuncExecutorOptions, 'stateDir'> = {}) {
  await mkdir(stateDir, { recursive: true });
  const snapshotter = new OverlaySnapshotter(join(stateDir, 'snapshots'));
  await snapshotter.cleanupStale();
  const executor = new RuncExecutor({ ...executorOptions, stateDir: join(stateDir, 'runc') });
  await executor.cleanupStale();
  // After the containers are gone: their mounts of pinned caches and copies can go too.
  await reclaimScratch(join(stateDir, SCRATCH_DIR));
  return { snapshotter, executor };
}

/** The local engine: execution plus its own blob store, registry client and context store. */
export async function openLocalEngine(stateDir: string, insecureRegistries: string[] = []) {
  const { snapshotter, executor } = await openExecutionEngine(stateDir);
  const blobs = new FsContentStore(join(stateDir, 'blobs'));
  await blobs.init();
  await blobs.cleanupIngest();
  const registry = new RegistryClient({ store: blobs, insecureHosts: insecureRegistries });
  return { blobs, snapshotter, executor, registry, images: new RegistryImageSource(registry, blobs), contexts: new ContextStore({ root: join(stateDir, 'contexts') }) };
}

function dockerignoreFor(dockerfile: string, contextDir: string): string | undefined {
  // Docker reads <Dockerfile-name>.dockerignore next to the Dockerfile first.
  const specific = join(dirname(dockerfile), `${basename(dockerfile)}.dockerignore`);
  if (existsSync(specific)) return specific;
  const general = join(contextDir, '.dockerignore');
  return existsSync(general) ? general : undefined;
}

/** Builds a Dockerfile on this machine without Redis: the engine's own harness (`run-local`). */
export async function buildLocal(opts: LocalBuildOptions): Promise<LocalBuildResult> {
  const engine = await openLocalEngine(opts.stateDir, opts.insecureRegistries);
  const dockerfilePath = opts.dockerfile ?? join(opts.contextDir, 'Dockerfile');
  const dockerfileText = await readFile(dockerfilePath, 'utf8');
  const ignoreFile = dockerignoreFor(dockerfilePath, opts.contextDir);
  const dockerignore = ignoreFile ? parseDockerignore(await readFile(ignoreFile, 'utf8')) : [];

  const entries = await walkContext(opts.contextDir, { dockerignore, cacheDir: join(opts.stateDir, 'context-hashes') });
  for (const entry of entries) {
    if (!isRegular(entry)) continue;
    await engine.contexts.content.put(createReadStream(join(opts.contextDir, entry.path)), entry.digest).catch((err: Error) => {
      throw new Error(`context file ${entry.path} changed while it was read (${err.message}): keep the state and output directories outside the context, or list them in .dockerignore`);
    });
  }
  const contextId = await engine.contexts.putManifest(entries, 'local');
  const contextDir = await mkdtemp(join(opts.stateDir, 'context-'));
  const solver = new StageSolver({
    stateDir: opts.stateDir, snapshotter: engine.snapshotter, executor: engine.executor, blobs: engine.blobs,
    cache: new LocalCacheIndex(join(opts.stateDir, 'cache-index')), images: engine.images,
    compression: opts.compression ?? 'gzip', sourceDateEpoch: opts.sourceDateEpoch,
  });
  try {
    await rm(contextDir, { recursive: true, force: true });
    await materializeContext(engine.contexts, contextId, contextDir);
    const parsed = parse(dockerfileText, { file: basename(dockerfilePath) });
    const available = detectPlatforms();
    for (const platform of opts.platforms.map((p) => normalizePlatform(p))) {
      if (![...available.native, ...available.emulated].includes(platform)) {
        throw new Error(`no worker can build ${platform}: this machine runs ${[...available.native, ...available.emulated].join(', ')} (register qemu binfmt handlers with infra/dev/setup.sh)`);
      }
    }
    const plan = await planBuild(parsed, {
      platforms: opts.platforms,
      buildPlatform: formatPlatform(hostPlatform()),
      buildArgs: opts.buildArgs ?? {},
      target: opts.target,
      labels: opts.labels,
      context: { entries },
      noCache: opts.noCache,
      dockerfileName: basename(dockerfilePath),
      resolveImage: registryImageResolver(engine.registry, opts.signal),
    });
    const stageResults: StageResult[] = [];
    const images: AssembledImage[] = [];
    const created = opts.sourceDateEpoch !== undefined ? new Date(opts.sourceDateEpoch * 1000).toISOString() : undefined;
    // Platforms build one after the other; inside one platform independent stages run at once.
    for (const platformPlan of plan.platforms) {
      const results = await solvePlatform(platformPlan, solver, { ...opts, contextDir });
      stageResults.push(...results.values());
      images.push(assembleImage(results.get(platformPlan.target)!, { created, labels: undefined }));
    }
    const index = images.length > 1 ? assembleIndex(images) : undefined;
    const digest = index ? index.descriptor.digest : images[0].manifest.descriptor.digest;
    if (opts.ociLayoutDir) await writeLayout(opts.ociLayoutDir, images, index, engine.blobs, opts.tag ?? 'latest');
    return { images, digest, stages: stageResults };
  } finally {
    await rm(contextDir, { recursive: true, force: true });
  }
}

/** Runs the stages of one platform, each as soon as the stages it depends on are done. */
export async function solvePlatform(plan: PlatformPlan, solver: StageSolver, opts: Pick<LocalBuildOptions, 'secrets' | 'noCache' | 'events' | 'signal'> & { contextDir?: string }): Promise<Map<string, StageResult>> {
  const results = new Map<string, StageResult>();
  const running = new Map<string, Promise<StageResult>>();
  const run = (stageId: string): Promise<StageResult> => {
    let pending = running.get(stageId);
    if (pending) return pending;
    const stage = plan.stages.find((s) => s.id === stageId);
    if (!stage) throw new Error(`internal error: stage ${stageId} is not in the plan for ${plan.platform}`);
    pending = (async () => {
      const inputs = Object.fromEntries(await Promise.all(stage.dependsOn.map(async (d) => [d, await run(d)] as const)));
      const result = await solver.solve({ stage, inputs, contextDir: opts.contextDir, secrets: opts.secrets, noCache: opts.noCache || stage.noCache, events: opts.events, signal: opts.signal });
      results.set(stageId, result);
      return result;
    })();
    running.set(stageId, pending);
    return pending;
  };
  await run(plan.target);
  return results;
}

/** Stores an image's (or index's) JSON documents beside its layers so one store serves every export. */
export async function storeImageDocuments(blobs: FsContentStore, images: AssembledImage[], index?: ReturnType<typeof assembleIndex>): Promise<void> {
  for (const doc of [...images.flatMap((i) => [i.config, i.manifest]), ...(index ? [index] : [])]) {
    await blobs.put(doc.bytes, doc.descriptor.digest);
  }
}

async function writeLayout(dir: string, images: AssembledImage[], index: ReturnType<typeof assembleIndex> | undefined, blobs: FsContentStore, tag: string): Promise<void> {
  await storeImageDocuments(blobs, images, index);
  const top = index ? index.descriptor : images[0].manifest.descriptor;
  await writeOciLayout(dir, {
    index: { schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: [{ mediaType: top.mediaType, digest: top.digest as `sha256:${string}`, size: top.size, annotations: { 'org.opencontainers.image.ref.name': tag } }] },
    store: blobs,
  });
}
