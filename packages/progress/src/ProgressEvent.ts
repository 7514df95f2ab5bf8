// The build event model. Each event maps 1:1 onto the proto's SolveEvent (see toSolveEvent) so
// the frontend forwards events to clients without reshaping them.
// Decoding what a stream holds (zod schemas) is in storedEvent.ts: clients that only turn
// SolveEvents into events (the CLI's renderers) do not load zod.
import type { SolveEvent, VertexStatus } from '@buildyard/proto';

/** Identity and placement of one vertex (one build step on one platform). */
export interface VertexRef {
  /** Vertex digest: the stable id of the step. */
  digest: string;
  /** Display name, e.g. "[build 2/4] RUN make". */
  name: string;
  platform: string;
  stage: string;
  /** Step number within the stage, 1-based; 0 when not a numbered step. */
  step: number;
  steps: number;
  workerId: string;
  emulated: boolean;
  /** The Dockerfile line of the step's instruction, when it has one: a failed build's error points there. */
  line?: number;
}

export interface ImageRef {
  platform: string;
  manifestDigest: string;
  configDigest: string;
}

export type ProgressEvent = { timestampMs: number } & (
  | { type: 'build.accepted'; buildId: string; platforms: string[] }
  | { type: 'vertex.started'; vertex: VertexRef; startedMs: number }
  | { type: 'vertex.cached'; vertex: VertexRef }
  | { type: 'vertex.progress'; vertex: VertexRef; startedMs: number; currentBytes: number; totalBytes: number }
  /** A named phase of a vertex, as BuildKit's status lines under it ("writing layer sha256:…"); completedMs once done. */
  | { type: 'vertex.status'; vertex: VertexRef; status: string; startedMs: number; completedMs?: number }
  | { type: 'vertex.log'; digest: string; stream: LogStream; data: Buffer; truncated: boolean }
  | { type: 'vertex.finished'; vertex: VertexRef; startedMs: number; completedMs: number; durationMs: number }
  | { type: 'vertex.error'; vertex: VertexRef; startedMs: number; completedMs: number; error: string }
  | {
      type: 'build.result'; buildId: string; digest: string; images: ImageRef[]; pushed: string[];
      metadata: Record<string, string>; verticesTotal: number; verticesCached: number; durationMs: number;
    }
  | { type: 'build.error'; message: string; vertex?: string; file?: string; line?: number; code?: string }
  | { type: 'build.warning'; message: string; file?: string; line?: number }
);

/** 1 = stdout, 2 = stderr, as in the proto. */
export type LogStream = 1 | 2;

export type ProgressEventType = ProgressEvent['type'];

/** An event as read back from the stream, with its Redis stream id (for resuming). */
export type StreamedProgressEvent = ProgressEvent & { streamId: string };

function vertexStatus(v: VertexRef, extra: Partial<VertexStatus>): VertexStatus {
  return {
    digest: v.digest, name: v.name, platform: v.platform, stage: v.stage, step: v.step, steps: v.steps,
    workerId: v.workerId, emulated: v.emulated, cached: false, startedMs: 0, completedMs: 0, error: '',
    totalBytes: 0, currentBytes: 0, ...extra,
  };
}

/** Converts an event into the wire message the frontend streams to clients. */
export function toSolveEvent(e: ProgressEvent): SolveEvent {
  const base: SolveEvent = {
    timestampMs: e.timestampMs, accepted: undefined, vertex: undefined, log: undefined,
    result: undefined, error: undefined, warning: undefined,
  };
  switch (e.type) {
    case 'build.accepted':
      return { ...base, accepted: { buildId: e.buildId, platforms: [...e.platforms] } };
    case 'vertex.started':
      return { ...base, vertex: vertexStatus(e.vertex, { startedMs: e.startedMs }) };
    case 'vertex.cached':
      return { ...base, vertex: vertexStatus(e.vertex, { cached: true, startedMs: e.timestampMs, completedMs: e.timestampMs }) };
    case 'vertex.progress':
      return { ...base, vertex: vertexStatus(e.vertex, { startedMs: e.startedMs, currentBytes: e.currentBytes, totalBytes: e.totalBytes }) };
    case 'vertex.log':
      return { ...base, log: { digest: e.digest, stream: e.stream, data: e.data, truncated: e.truncated } };
    case 'vertex.finished':
      return { ...base, vertex: vertexStatus(e.vertex, { startedMs: e.startedMs, completedMs: e.completedMs }) };
    case 'vertex.error':
      return { ...base, vertex: vertexStatus(e.vertex, { startedMs: e.startedMs, completedMs: e.completedMs, error: e.error }) };
    case 'build.result':
      return {
        ...base,
        result: {
          buildId: e.buildId, digest: e.digest, images: e.images.map((i) => ({ ...i })), pushed: [...e.pushed],
          metadata: { ...e.metadata }, verticesTotal: e.verticesTotal, verticesCached: e.verticesCached,
          durationMs: e.durationMs,
        },
      };
    case 'build.error':
      return { ...base, error: { message: e.message, vertex: e.vertex ?? '', file: e.file ?? '', line: e.line ?? 0, code: e.code ?? '' } };
    case 'build.warning':
      return { ...base, warning: { message: e.message, file: e.file ?? '', line: e.line ?? 0 } };
    case 'vertex.status':
      // Buildyard's own clients show no phases: an empty event, which fromSolveEvent skips.
      return base;
  }
}

/** Stream field encoding: JSON with log bytes as base64 (Redis stream values are strings). */
export function encodeEvent(e: ProgressEvent): string {
  if (e.type === 'vertex.log') return JSON.stringify({ ...e, data: e.data.toString('base64') });
  return JSON.stringify(e);
}

const vertexRefOf = (v: VertexStatus): VertexRef => ({
  digest: v.digest, name: v.name, platform: v.platform, stage: v.stage, step: v.step, steps: v.steps, workerId: v.workerId, emulated: v.emulated,
});

/**
 * The event a client received, back in the event model (toSolveEvent's inverse), so a client
 * can feed the one SolveStatus translation the BuildKit endpoint uses. Undefined for what is no
 * build event (exported files).
 */
export function fromSolveEvent(ev: SolveEvent): ProgressEvent | undefined {
  const at = { timestampMs: ev.timestampMs };
  if (ev.accepted) return { ...at, type: 'build.accepted', buildId: ev.accepted.buildId, platforms: [...ev.accepted.platforms] };
  if (ev.vertex) {
    const v = ev.vertex;
    const vertex = vertexRefOf(v);
    if (v.error) return { ...at, type: 'vertex.error', vertex, startedMs: v.startedMs, completedMs: v.completedMs, error: v.error };
    if (v.cached) return { ...at, type: 'vertex.cached', vertex };
    if (v.completedMs) return { ...at, type: 'vertex.finished', vertex, startedMs: v.startedMs, completedMs: v.completedMs, durationMs: v.completedMs - (v.startedMs || v.completedMs) };
    if (v.totalBytes || v.currentBytes) return { ...at, type: 'vertex.progress', vertex, startedMs: v.startedMs, currentBytes: v.currentBytes, totalBytes: v.totalBytes };
    return { ...at, type: 'vertex.started', vertex, startedMs: v.startedMs };
  }
  if (ev.log) return { ...at, type: 'vertex.log', digest: ev.log.digest, stream: ev.log.stream === 2 ? 2 : 1, data: Buffer.from(ev.log.data), truncated: ev.log.truncated };
  if (ev.result) {
    const r = ev.result;
    return {
      ...at, type: 'build.result', buildId: r.buildId, digest: r.digest, images: r.images.map((i) => ({ ...i })), pushed: [...r.pushed],
      metadata: { ...r.metadata }, verticesTotal: r.verticesTotal, verticesCached: r.verticesCached, durationMs: r.durationMs,
    };
  }
  if (ev.error) {
    const e = ev.error;
    return { ...at, type: 'build.error', message: e.message, ...(e.vertex ? { vertex: e.vertex } : {}), ...(e.file ? { file: e.file } : {}), ...(e.line ? { line: e.line } : {}), ...(e.code ? { code: e.code } : {}) };
  }
  if (ev.warning) return { ...at, type: 'build.warning', message: ev.warning.message, ...(ev.warning.file ? { file: ev.warning.file } : {}), ...(ev.warning.line ? { line: ev.warning.line } : {}) };
  return undefined;
}
