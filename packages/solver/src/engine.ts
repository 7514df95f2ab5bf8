// Opening the engine on this machine and running a planned platform with it. Planning a
// Dockerfile is the frontend's business (buildLocal lives in @buildyard/localbuild).
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { ContextStore } from '@buildyard/context';
import { RuncExecutor, type RuncExecutorOptions } from '@buildyard/executor';
import type { PlatformPlan } from '@buildyard/graph';
import { FsContentStore, RegistryClient } from '@buildyard/oci';
import { OverlaySnapshotter, reclaimScratch } from '@buildyard/snapshot';
import type { AssembledImage, assembleIndex } from './assembleImage.js';
import { RegistryImageSource } from './RegistryImageSource.js';
import { SCRATCH_DIR, type StageSolver, type SolverEvents } from './StageSolver.js';
import type { StageResult } from './StageResult.js';

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

/** Runs the stages of one platform, each as soon as the stages it depends on are done. */
export interface SolvePlatformOptions {
  contextDir?: string;
  secrets?: Map<string, Buffer>;
  noCache?: boolean;
  events?: SolverEvents;
  signal?: AbortSignal;
}

export async function solvePlatform(plan: PlatformPlan, solver: StageSolver, opts: SolvePlatformOptions): Promise<Map<string, StageResult>> {
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
