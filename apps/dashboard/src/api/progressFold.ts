// The build page's view of a progress stream: each vertex's last state, folded from the stream's
// vertex state events. Logs never enter it: they are most of a noisy build's stream.
import type { RedisClient as Redis } from '@buildyard/contracts';
import { decodeEvent, EVENT_FIELD, type ProgressEvent } from '@buildyard/progress';
import type { VertexView } from './types.js';

type VertexStateEvent = Extract<ProgressEvent, { type: 'vertex.started' | 'vertex.cached' | 'vertex.progress' | 'vertex.finished' | 'vertex.error' }>;

const VERTEX_STATE_TYPES = new Set<string>(['vertex.started', 'vertex.cached', 'vertex.progress', 'vertex.finished', 'vertex.error']);

/**
 * How `encodeEvent` writes a log event (its `type` first, as ProgressWriter builds it; a unit
 * test keeps this true). Telling logs by it spares parsing up to 16 KiB of base64 per entry.
 */
export const LOG_ENTRY_PREFIX = '{"type":"vertex.log"';

/**
 * The vertex state event a stream value holds, or undefined for any other event. A log is told
 * by its prefix without being parsed; a value laid out otherwise is decoded in full.
 */
export function vertexStateEvent(raw: string): VertexStateEvent | undefined {
  if (raw.startsWith(LOG_ENTRY_PREFIX)) return undefined;
  const e = decodeEvent(raw);
  return VERTEX_STATE_TYPES.has(e.type) ? (e as VertexStateEvent) : undefined;
}

/**
 * Each vertex's state by `platform\nstage`, then digest. `emulated` is the worker's own word:
 * the view weighs it against the live workers (stageViews), so a fold can be kept and reused.
 */
export type VertexFold = Map<string, Map<string, VertexView>>;

/** Applies progress events to `fold` (in stream order); events other than vertex states are skipped. */
export function foldProgress(events: Iterable<ProgressEvent>, fold: VertexFold = new Map()): VertexFold {
  for (const e of events) {
    if (!VERTEX_STATE_TYPES.has(e.type)) continue;
    const { vertex: v } = e as VertexStateEvent;
    const stage = `${v.platform}\n${v.stage}`;
    let map = fold.get(stage);
    if (!map) fold.set(stage, (map = new Map()));
    const view: VertexView = map.get(v.digest) ?? { digest: v.digest, name: v.name, cached: false, status: 'running', startedMs: null, durationMs: null, workerId: null, emulated: null };
    if (e.type !== 'vertex.cached' && v.workerId) Object.assign(view, { workerId: v.workerId, emulated: v.emulated });
    if (e.type === 'vertex.cached') Object.assign(view, { cached: true, status: 'cached', startedMs: e.timestampMs, durationMs: 0 });
    else if (e.type === 'vertex.started' || e.type === 'vertex.progress') view.startedMs = e.startedMs;
    else if (e.type === 'vertex.finished') Object.assign(view, { status: 'done', startedMs: e.startedMs, durationMs: e.durationMs });
    else if (e.type === 'vertex.error') Object.assign(view, { status: 'error', startedMs: e.startedMs, durationMs: e.completedMs - e.startedMs, error: e.error });
    map.set(v.digest, view);
  }
  return fold;
}

/** How a build page reads progress streams (DashboardLimits). */
export interface ProgressReadLimits {
  /** Entries per XRANGE. */
  progressPage: number;
  /** Entries per build per request; the next request reads on. */
  progressPerRequest: number;
  /** Builds whose fold is kept, least recently viewed dropped first. */
  progressBuilds: number;
}

interface BuildFold {
  vertices: VertexFold;
  /** The last stream id folded ('' before the first). */
  lastId: string;
  entriesRead: number;
  caughtUp: boolean;
  reading?: Promise<void>;
}

/**
 * The progress folds of the builds viewed last, each with the stream id it has read to, so a
 * page polled every 2 s reads only what its build's stream gained since the last poll.
 */
export class ProgressFolds {
  /** In order of last view, least recent first. */
  private readonly folds = new Map<string, BuildFold>();

  constructor(private readonly redis: Redis, private readonly keyOf: (buildId: string) => string, private readonly limits: ProgressReadLimits) {}

  async read(buildId: string): Promise<Readonly<BuildFold>> {
    const fold: BuildFold = this.folds.get(buildId) ?? { vertices: new Map(), lastId: '', entriesRead: 0, caughtUp: false };
    this.folds.delete(buildId);
    this.folds.set(buildId, fold);
    for (const old of this.folds.keys()) {
      if (this.folds.size <= this.limits.progressBuilds) break;
      this.folds.delete(old);
    }
    // Polls of one build share one read: two reading on from the same id would fold entries twice, out of order.
    fold.reading ??= this.readOn(this.keyOf(buildId), fold).finally(() => { fold.reading = undefined; });
    await fold.reading;
    return fold;
  }

  private async readOn(key: string, fold: BuildFold): Promise<void> {
    for (let left = this.limits.progressPerRequest; left > 0;) {
      const count = Math.min(this.limits.progressPage, left);
      const entries = (await this.redis.xrange(key, fold.lastId ? `(${fold.lastId}` : '-', '+', 'COUNT', count)) as [string, string[]][];
      for (const [id, fields] of entries) {
        for (let i = 0; i + 1 < fields.length; i += 2) {
          if (fields[i] !== EVENT_FIELD) continue;
          let e: VertexStateEvent | undefined;
          try { e = vertexStateEvent(fields[i + 1]); } catch { continue; /* a newer writer's event type */ }
          if (e) foldProgress([e], fold.vertices);
        }
        fold.lastId = id;
      }
      fold.entriesRead += entries.length;
      left -= entries.length;
      fold.caughtUp = entries.length < count;
      if (fold.caughtUp) return;
    }
  }
}
