// The engine without Redis (`buildyard-worker run-local`): plans a Dockerfile with the
// Dockerfile frontend and runs its stages with the solver on this machine. Kept above the
// solver so the solver stays frontend-agnostic (BuildKit's solver knows no Dockerfile either).
import { createReadStream, existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { LocalCacheIndex } from '@buildyard/cache';
import { materializeContext, walkContext, isRegular } from '@buildyard/context';
import { defaultDockerfilePath, parse, parseDockerignore, planBuild } from '@buildyard/dockerfile';
import { detectPlatforms } from '@buildyard/executor';
import { readXattrs, setXattrs } from '@buildyard/snapshot';
import { normalizePlatform, targetStage } from '@buildyard/graph';
import { MediaTypes, hostPlatform, formatPlatform, writeOciLayout, type FsContentStore } from '@buildyard/oci';
import {
  StageSolver, assembleImage, assembleIndex, openLocalEngine, registryImageResolver, solvePlatform, storeImageDocuments,
  type AssembledImage, type SolverEvents, type StageResult,
} from '@buildyard/solver';

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
  const dockerfilePath = opts.dockerfile ?? defaultDockerfilePath(opts.contextDir);
  const dockerfileText = await readFile(dockerfilePath, 'utf8');
  const ignoreFile = dockerignoreFor(dockerfilePath, opts.contextDir);
  const dockerignore = ignoreFile ? parseDockerignore(await readFile(ignoreFile, 'utf8')) : [];

  const entries = await walkContext(opts.contextDir, { dockerignore, cacheDir: join(opts.stateDir, 'context-hashes'), readXattrs });
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
    await materializeContext(engine.contexts, contextId, contextDir, { setXattrs });
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
      images.push(assembleImage(results.get(platformPlan.target)!, { created, baseHistory: targetStage(platformPlan)?.baseHistory, labels: undefined, targetPlatform: platformPlan.platform }));
    }
    const index = images.length > 1 ? assembleIndex(images) : undefined;
    const digest = index ? index.descriptor.digest : images[0].manifest.descriptor.digest;
    if (opts.ociLayoutDir) await writeLayout(opts.ociLayoutDir, images, index, engine.blobs, opts.tag ?? 'latest');
    return { images, digest, stages: stageResults };
  } finally {
    await rm(contextDir, { recursive: true, force: true });
    // The last steps' networks are torn down after they return: none outlives the build.
    await engine.executor.settled();
  }
}

async function writeLayout(dir: string, images: AssembledImage[], index: ReturnType<typeof assembleIndex> | undefined, blobs: FsContentStore, tag: string): Promise<void> {
  await storeImageDocuments(blobs, images, index);
  const top = index ? index.descriptor : images[0].manifest.descriptor;
  await writeOciLayout(dir, {
    index: { schemaVersion: 2, mediaType: MediaTypes.OciIndex, manifests: [{ mediaType: top.mediaType, digest: top.digest, size: top.size, annotations: { 'org.opencontainers.image.ref.name': tag } }] },
    store: blobs,
  });
}
