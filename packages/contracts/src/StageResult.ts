import { z } from 'zod';
import type { HistoryEntry, ImageConfig } from '@buildyard/graph';

/** A layer blob produced by a vertex, addressed by its compressed digest. */
export const layerRecordSchema = z.object({
  digest: z.string(),
  diffID: z.string(),
  size: z.number().nonnegative(),
  mediaType: z.string(),
});
export type LayerRecord = z.infer<typeof layerRecordSchema>;

/**
 * What a finished stage hands to the stages that depend on it and to the exporter: its whole
 * layer chain (base layers first) and the history and config that describe it.
 */
export interface StageResult {
  stageId: string;
  platform: string;
  layers: LayerRecord[];
  /** Base image history followed by this stage's entries, empty_layer set where no layer came. */
  history: HistoryEntry[];
  config: ImageConfig;
  /** The image's author (MAINTAINER), when set. */
  author?: string;
  cacheKey: string;
  /**
   * The key each vertex's cache record is stored under, in the stage's vertex order, when one
   * differs from the plan's: a provisional key (after an ADD <url> without --checksum) is only
   * resolved when the step runs, and a cache export must find those records too.
   */
  vertexKeys?: string[];
  verticesTotal: number;
  verticesCached: number;
  workerId?: string;
  emulated?: boolean;
}

// History and config are image JSON passed through to the exporter as they are; their members
// are checked where an image is assembled, so here only their container shape is.
export const stageResultSchema: z.ZodType<StageResult> = z.object({
  stageId: z.string(),
  platform: z.string(),
  layers: z.array(layerRecordSchema),
  history: z.array(z.looseObject({}) as z.ZodType<HistoryEntry>),
  config: z.looseObject({}) as z.ZodType<ImageConfig>,
  author: z.string().optional(),
  cacheKey: z.string(),
  vertexKeys: z.array(z.string()).optional(),
  verticesTotal: z.number(),
  verticesCached: z.number(),
  workerId: z.string().optional(),
  emulated: z.boolean().optional(),
});
