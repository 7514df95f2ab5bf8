import type { LayerRecord } from '@buildyard/cache';
import type { HistoryEntry, ImageConfig } from '@buildyard/graph';

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
  cacheKey: string;
  verticesTotal: number;
  verticesCached: number;
  workerId?: string;
  emulated?: boolean;
}
