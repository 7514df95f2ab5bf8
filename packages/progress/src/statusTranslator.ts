import { createHash } from 'node:crypto';
import type { ProgressEvent, VertexRef } from './ProgressEvent.js';
import { buildkit } from '@buildyard/proto';

type StatusResponse = buildkit.StatusResponse;
const at = (ms: number | undefined): Date | undefined => (ms ? new Date(ms) : undefined);

/** A vertex digest for steps the endpoint itself runs (loading the Dockerfile and context). */
export function internalDigest(ref: string, name: string): string {
  return `sha256:${createHash('sha256').update(`${ref}\0${name}`).digest('hex')}`;
}

export function vertexUpdate(v: Partial<buildkit.Vertex> & { digest: string; name: string }): StatusResponse {
  return buildkit.StatusResponse.fromPartial({ vertexes: [{ inputs: [], cached: false, error: '', ...v }] });
}

/**
 * Buildyard's build events in BuildKit's SolveStatus form, so buildctl's and buildx's progress
 * printers read them as they read buildkitd's: one Vertex per step (named
 * `[linux/arm64 stage-1 2/3] COPY ...` when several platforms build, like BuildKit), started
 * and completed times, cached flag, error; logs as VertexLog.
 */
export class StatusTranslator {
  /** Each vertex as last sent: BuildKit clients replace a vertex with every update, so each carries all it knows. */
  private readonly vertices = new Map<string, buildkit.Vertex>();
  /** Logs of steps not announced yet (events from workers can overtake each other). */
  private readonly earlyLogs = new Map<string, buildkit.VertexLog[]>();

  /** The first step that failed: BuildKit's solve error is that step's error. */
  firstError?: string;

  constructor(private readonly multiPlatform: boolean) {}

  private name(v: VertexRef): string {
    if (!this.multiPlatform || !v.platform || !v.name.startsWith('[')) return v.name;
    return `[${v.platform} ${v.name.slice(1)}`;
  }

  private vertex(v: VertexRef, fields: { started?: number; completed?: number; cached?: boolean; error?: string }): StatusResponse {
    const before = this.vertices.get(v.digest);
    // A vertex keeps the start it was first sent with: BuildKit's printers key a vertex's run by
    // its start time, so a second, different start (the worker stamps its started and error
    // events separately) opens a run that never completes, and buildctl prints no ERROR/DONE line.
    const started = before?.started ?? at(fields.started) ?? at(fields.completed);
    let completed = before?.completed ?? at(fields.completed);
    if (completed && started && completed < started) completed = started;
    const merged = buildkit.Vertex.fromPartial({
      digest: v.digest, name: this.name(v), inputs: [], started, completed,
      cached: (before?.cached ?? false) || (fields.cached ?? false),
      error: before?.error || fields.error || '',
    });
    this.vertices.set(v.digest, merged);
    const logs = this.earlyLogs.get(v.digest) ?? [];
    this.earlyLogs.delete(v.digest);
    return buildkit.StatusResponse.fromPartial({ vertexes: [merged], logs });
  }

  translate(e: ProgressEvent): StatusResponse | undefined {
    switch (e.type) {
      case 'vertex.started':
        return this.vertex(e.vertex, { started: e.startedMs });
      case 'vertex.cached':
        return this.vertex(e.vertex, { cached: true, started: e.timestampMs, completed: e.timestampMs });
      case 'vertex.progress':
        return buildkit.StatusResponse.fromPartial({
          statuses: [{ ID: `${e.vertex.digest}-bytes`, vertex: e.vertex.digest, name: 'transferring', current: e.currentBytes, total: e.totalBytes, timestamp: at(e.timestampMs), started: at(e.startedMs) }],
        });
      case 'vertex.status':
        return buildkit.StatusResponse.fromPartial({
          statuses: [{ ID: e.status, vertex: e.vertex.digest, name: e.status, started: at(e.startedMs), timestamp: at(e.completedMs ?? e.startedMs), completed: at(e.completedMs) }],
        });
      case 'vertex.log': {
        const log = buildkit.VertexLog.fromPartial({ vertex: e.digest, stream: e.stream, msg: e.data, timestamp: at(e.timestampMs) });
        if (!this.vertices.has(e.digest)) {
          this.earlyLogs.set(e.digest, [...(this.earlyLogs.get(e.digest) ?? []), log]);
          return undefined;
        }
        return buildkit.StatusResponse.fromPartial({ logs: [log] });
      }
      case 'vertex.finished':
        return this.vertex(e.vertex, { started: e.startedMs, completed: e.completedMs });
      case 'vertex.error':
        // A cache import that fails does not fail the build (as in BuildKit): its error is not the build's.
        if (!e.vertex.name.startsWith('importing cache manifest from ')) this.firstError ??= e.error;
        return this.vertex(e.vertex, { started: e.startedMs, completed: e.completedMs, error: e.error });
      default:
        return undefined;
    }
  }
}
