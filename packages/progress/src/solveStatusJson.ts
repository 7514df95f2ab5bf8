// BuildKit's SolveStatus as JSON, byte for byte as `buildctl build --progress rawjson` (and
// v0.11's `--trace`) writes it: Go's encoding/json over client.SolveStatus (moby/buildkit
// client/graph.go), one object per status update. Log tooling written against buildctl reads it.
import type { buildkit } from '@buildyard/proto';
import type { ProgressEvent } from './ProgressEvent.js';

/** client.VertexWarning as a Dockerfile warning fills it (BuildKit's lint warnings). */
export interface SolveStatusWarning {
  vertex?: string;
  level: number;
  short: string;
  detail?: string[];
  url?: string;
  file?: string;
  line?: number;
}

/** One status update: what the BuildKit endpoint sends buildctl, plus warnings (its v0.11 wire form has none). */
export type SolveStatusUpdate = buildkit.StatusResponse & { warnings?: SolveStatusWarning[] };

/** A build warning in SolveStatus form (level 1 is BuildKit's for Dockerfile warnings); undefined for other events. */
export function warningUpdate(e: ProgressEvent): SolveStatusUpdate | undefined {
  if (e.type !== 'build.warning') return undefined;
  return { vertexes: [], statuses: [], logs: [], warnings: [{ level: 1, short: e.message, ...(e.file || e.line ? { file: e.file || 'Dockerfile' } : {}), ...(e.line ? { line: e.line } : {}) }] };
}

const ZERO_TIME = '0001-01-01T00:00:00Z';

/** time.Time's MarshalJSON (RFC 3339 with nanoseconds, trailing zeros dropped) for a UTC time. */
export function goTime(d: Date | undefined): string {
  if (!d) return ZERO_TIME;
  const iso = d.toISOString(); // 2006-01-02T15:04:05.000Z
  return iso.replace(/\.(\d*?)0*Z$/, (_m, frac: string) => (frac ? `.${frac}Z` : 'Z'));
}

const b64 = (s: string | Buffer) => Buffer.from(s).toString('base64');

/**
 * The JSON line of one update, as Go's json.Encoder writes client.SolveStatus: struct field
 * order, `omitempty` fields left out when empty, []byte as base64, and Go's HTML-safe escaping
 * of <, >, & and U+2028/U+2029 (JSON.stringify leaves them as they are).
 */
export function solveStatusJson(u: SolveStatusUpdate): string {
  const out: Record<string, unknown> = {};
  if (u.vertexes.length > 0) {
    out.vertexes = u.vertexes.map((v) => ({
      ...(v.digest ? { digest: v.digest } : {}),
      ...(v.inputs.length > 0 ? { inputs: v.inputs } : {}),
      ...(v.name ? { name: v.name } : {}),
      ...(v.started ? { started: goTime(v.started) } : {}),
      ...(v.completed ? { completed: goTime(v.completed) } : {}),
      ...(v.cached ? { cached: true } : {}),
      ...(v.error ? { error: v.error } : {}),
    }));
  }
  if (u.statuses.length > 0) {
    out.statuses = u.statuses.map((s) => ({
      id: s.ID,
      ...(s.vertex ? { vertex: s.vertex } : {}),
      ...(s.name ? { name: s.name } : {}),
      ...(s.total ? { total: s.total } : {}),
      current: s.current,
      timestamp: goTime(s.timestamp),
      ...(s.started ? { started: goTime(s.started) } : {}),
      ...(s.completed ? { completed: goTime(s.completed) } : {}),
    }));
  }
  if (u.logs.length > 0) {
    out.logs = u.logs.map((l) => ({
      ...(l.vertex ? { vertex: l.vertex } : {}),
      ...(l.stream ? { stream: l.stream } : {}),
      data: b64(l.msg),
      timestamp: goTime(l.timestamp),
    }));
  }
  if (u.warnings && u.warnings.length > 0) {
    out.warnings = u.warnings.map((w) => ({
      ...(w.vertex ? { vertex: w.vertex } : {}),
      ...(w.level ? { level: w.level } : {}),
      ...(w.short ? { short: b64(w.short) } : {}),
      ...(w.detail && w.detail.length > 0 ? { detail: w.detail.map(b64) } : {}),
      ...(w.url ? { url: w.url } : {}),
      // pb.SourceInfo and pb.Range as their gogo JSON tags name them.
      ...(w.file ? { sourceInfo: { filename: w.file } } : {}),
      ...(w.line ? { range: [{ start: { line: w.line }, end: { line: w.line } }] } : {}),
    }));
  }
  return JSON.stringify(out).replace(/[<>&\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
