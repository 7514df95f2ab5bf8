// How a stage's result is put together from its vertices' outcomes, shared by the worker's
// StageSolver (which looks each vertex up and runs the misses) and by a frontend that answers a
// whole stage from the cache index: both must give the same layers, history and `created` times,
// or a build answered by the frontend would push an image with another digest than one a worker
// assembled from the same cache records.
import type { CacheRecord, LayerRecord } from '@buildyard/cache';
import { fromRedis, stageResultSchema } from '@buildyard/contracts';
import { imageStateKey, scratchStateKey, type HistoryEntry, type StagePlan } from '@buildyard/graph';
import type { StageResult } from './StageResult.js';

/** The outcome of one vertex: the key it is known by and the index's record under that key. */
export interface SolvedVertex {
  key: string;
  cached: boolean;
  layer: LayerRecord | null;
  record?: CacheRecord;
}

/** What a stage starts from: its base image's or base stage's layers and history. */
export interface StageBaseState {
  layers: LayerRecord[];
  history: HistoryEntry[];
}

/** A cache record a step can be answered with: it has a layer (records without one are replaced by running the step). */
export function isUsableHit(record: CacheRecord | undefined): record is CacheRecord & { layer: LayerRecord } {
  return Boolean(record?.layer);
}

/** The layers and history a stage starts from; `image` gives a base image's (a worker pulls it, a frontend has it resolved). */
export async function stageBase(stage: StagePlan, inputs: Readonly<Record<string, StageResult>>, image: (ref: string, digest: string) => Promise<StageBaseState>): Promise<StageBaseState> {
  const base = stage.base;
  if (base.kind === 'scratch') return { layers: [], history: [] };
  if (base.kind === 'stage') {
    const input = inputs[base.stageId];
    if (!input) throw new Error(`stage ${stage.id} needs the result of stage ${base.stageId}, which was not provided`);
    return { layers: input.layers, history: input.history };
  }
  return image(base.ref, base.digest);
}

/** The key of the state a stage starts from (its base stage's as that stage resolved it). */
export function stageBaseKey(stage: StagePlan, inputs: Readonly<Record<string, StageResult>>): string {
  const base = stage.base;
  if (base.kind === 'scratch') return scratchStateKey(stage.platform);
  if (base.kind === 'image') return imageStateKey(base.digest);
  return inputs[base.stageId]?.cacheKey ?? stage.cacheKey;
}

/** Folds a stage's vertex outcomes, in vertex order, into the stage's result. */
export class StageAssembly {
  /** The layer chain so far (base layers first); the next vertex runs over it. */
  readonly layers: LayerRecord[];
  /** The key of the state so far: the plan's, unless a download without --checksum made it provisional. */
  stateKey: string;
  private readonly history: HistoryEntry[];
  private readonly newHistory: HistoryEntry[];
  private layerVertexIndex = 0;
  private cached = 0;
  private readonly vertexKeys: string[] = [];

  constructor(private readonly stage: StagePlan, base: StageBaseState, baseKey: string, private readonly noCache: boolean) {
    this.layers = [...base.layers];
    this.history = [...base.history];
    this.newHistory = [...stage.history];
    this.stateKey = baseKey;
  }

  add(solved: SolvedVertex): void {
    this.stateKey = solved.key;
    this.vertexKeys.push(solved.key);
    if (solved.cached) this.cached++;
    const layer = solved.layer;
    if (layer) this.layers.push(layer);
    // A layer is as old as the step that first made it (BuildKit's ref creation time), so a
    // rebuild from cache gives the same image config; --no-cache layers are new.
    const createdMs = !this.noCache && solved.record?.layer?.digest === layer?.digest ? solved.record?.createdMs : Date.now();
    // History entries that make layers appear in vertex order, one layer per vertex (a step
    // that changed nothing has an empty layer, not none).
    this.layerVertexIndex = markHistory(this.newHistory, this.layerVertexIndex, layer === null, layer && createdMs !== undefined ? new Date(createdMs).toISOString() : undefined);
  }

  result(): StageResult {
    const { stage } = this;
    return {
      stageId: stage.id,
      platform: stage.platform,
      layers: [...this.layers],
      history: [...this.history, ...this.newHistory],
      config: stage.config,
      ...(stage.author !== undefined ? { author: stage.author } : {}),
      // Dependent stages chain their provisional keys from this one.
      cacheKey: this.stateKey,
      // Only when a provisional key resolved to another one: cache exports look records up by these.
      ...(this.vertexKeys.some((k, i) => k !== stage.vertices[i]!.cacheKey) ? { vertexKeys: [...this.vertexKeys] } : {}),
      verticesTotal: stage.vertices.length,
      verticesCached: this.cached,
    };
  }
}

/**
 * The keys a stage's vertices are looked up under when all of them are known from the plan;
 * undefined when one is provisional (an ADD <url> without --checksum in it or before it: the
 * key depends on what the URL serves, which only running the step asks).
 */
export function plannedVertexKeys(stage: StagePlan): string[] | undefined {
  if (stage.vertices.some((v) => v.provisionalKey)) return undefined;
  return stage.vertices.map((v) => v.cacheKey);
}

/**
 * A stage's result from the cache index alone: what StageSolver.solve gives when every vertex
 * is a hit (same keys, same records, same assembly). Undefined when a key is provisional or a
 * vertex has no usable record: `hit` answers only records whose layer blob is in the store.
 */
export async function stageFromCache(stage: StagePlan, inputs: Readonly<Record<string, StageResult>>, image: (ref: string, digest: string) => Promise<StageBaseState>, hit: (key: string) => CacheRecord | undefined): Promise<StageResult | undefined> {
  const keys = plannedVertexKeys(stage);
  if (!keys || stage.noCache) return undefined;
  const base = await stageBase(stage, inputs, image);
  const assembly = new StageAssembly(stage, base, stageBaseKey(stage, inputs), false);
  for (const key of keys) {
    const record = hit(key);
    if (!isUsableHit(record)) return undefined;
    assembly.add({ key, cached: true, layer: record.layer, record });
  }
  return assembly.result();
}

/** Where a stage plan carries the results of input stages its frontend answered from the cache. */
const ANSWERED_INPUTS = 'answeredInputs';

/**
 * The stage plan a worker is sent when some stages it reads were answered by the frontend from
 * the cache: those stages are never scheduled, so the scheduler has no result of theirs to hand
 * over; the plan carries them (the scheduler and the payload's schema pass unknown members on).
 */
export function withAnsweredInputs(stage: StagePlan, inputs: Readonly<Record<string, StageResult>>): StagePlan {
  if (Object.keys(inputs).length === 0) return stage;
  const carrying: StagePlan & { [ANSWERED_INPUTS]: Readonly<Record<string, StageResult>> } = { ...stage, [ANSWERED_INPUTS]: inputs };
  return carrying;
}

/** The input results a plan carries (withAnsweredInputs), checked as the scheduler's are. */
export function answeredInputsOf(stage: StagePlan): Record<string, StageResult> {
  const carried = (stage as StagePlan & { [ANSWERED_INPUTS]?: unknown })[ANSWERED_INPUTS];
  if (carried === undefined) return {};
  if (typeof carried !== 'object' || carried === null) throw new Error(`stage ${stage.id} (${stage.platform}) carries malformed input results`);
  return Object.fromEntries(Object.entries(carried).map(([id, r]) => [id, fromRedis(stageResultSchema, r, `the result of stage ${id} (${stage.platform}) answered from the cache`)]));
}

/** Marks the next layer-producing history entry (empty, or with its layer's time); returns the index after it. */
function markHistory(history: HistoryEntry[], from: number, empty: boolean, created?: string): number {
  for (let i = from; i < history.length; i++) {
    if (history[i].empty_layer) continue;
    if (empty) history[i] = { ...history[i], empty_layer: true };
    else if (created !== undefined) history[i] = { ...history[i], created };
    return i + 1;
  }
  return history.length;
}
