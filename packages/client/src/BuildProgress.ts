// The client's picture of a running build, folded from SolveEvents: one record per vertex in
// order of appearance (numbered #1, #2, ... as buildx does), with its log lines.
import type { BuildError, BuildResult, BuildWarning, SolveEvent, VertexStatus } from '@buildyard/proto';

export interface VertexState {
  /** buildx's `#N`, 1-based in order of first appearance. */
  index: number;
  status: VertexStatus;
  /** Complete log lines, each with the time it arrived. */
  lines: { atMs: number; text: string }[];
  /** Unterminated tail per stream (1 stdout, 2 stderr). */
  partial: Map<number, string>;
  truncated: boolean;
}

export class BuildProgress {
  readonly vertices = new Map<string, VertexState>();
  readonly warnings: BuildWarning[] = [];
  buildId = '';
  platforms: string[] = [];
  startedMs = 0;
  lastEventMs = 0;
  result?: BuildResult;
  error?: BuildError;

  /** Folds one event in; returns the vertex it touched, if any. */
  apply(ev: SolveEvent): VertexState | undefined {
    const at = ev.timestampMs || Date.now();
    if (!this.startedMs) this.startedMs = at;
    this.lastEventMs = Math.max(this.lastEventMs, at);
    if (ev.accepted) {
      this.buildId = ev.accepted.buildId;
      this.platforms = ev.accepted.platforms;
    } else if (ev.vertex) {
      const v = ev.vertex;
      let state = this.vertices.get(v.digest);
      if (!state) {
        state = { index: this.vertices.size + 1, status: { ...v }, lines: [], partial: new Map(), truncated: false };
        this.vertices.set(v.digest, state);
      } else {
        // Updates may leave fields empty that an earlier update set (e.g. worker after start).
        const prev = state.status;
        state.status = {
          ...prev,
          ...Object.fromEntries(Object.entries(v).filter(([, x]) => x !== '' && x !== 0 && x !== false)),
          cached: v.cached || prev.cached,
          emulated: v.emulated || prev.emulated,
        } as VertexStatus;
      }
      if (state.status.completedMs || state.status.error) this.flushPartial(state, at);
      return state;
    } else if (ev.log) {
      const state = this.vertices.get(ev.log.digest);
      if (!state) return undefined;
      const text = (state.partial.get(ev.log.stream) ?? '') + ev.log.data.toString('utf8');
      const parts = text.split('\n');
      state.partial.set(ev.log.stream, parts.pop() ?? '');
      for (const p of parts) state.lines.push({ atMs: at, text: p.replace(/\r$/, '') });
      if (ev.log.truncated) state.truncated = true;
      return state;
    } else if (ev.warning) this.warnings.push(ev.warning);
    else if (ev.result) this.result = ev.result;
    else if (ev.error) this.error = ev.error;
    return undefined;
  }

  private flushPartial(state: VertexState, at: number): void {
    for (const [stream, rest] of state.partial) {
      if (rest !== '') state.lines.push({ atMs: at, text: rest });
      state.partial.set(stream, '');
    }
  }

  /** Vertices in display order. */
  list(): VertexState[] {
    return [...this.vertices.values()];
  }

  counts(): { total: number; done: number; cached: number } {
    let done = 0;
    let cached = 0;
    for (const v of this.vertices.values()) {
      if (v.status.cached) cached++;
      if (v.status.cached || v.status.completedMs) done++;
    }
    return { total: this.vertices.size, done, cached };
  }
}

/** `linux/arm64 on worker-2 (emulated)`: where a step ran, for humans. */
export function describePlacement(v: VertexStatus): string {
  const parts: string[] = [];
  if (v.platform) parts.push(v.platform);
  if (v.workerId) parts.push(`on ${v.workerId}`);
  if (v.emulated) parts.push('(emulated)');
  return parts.join(' ');
}

/** buildx's seconds: `0.3s`, `12.0s`. */
export function formatSeconds(ms: number): string {
  return `${(Math.max(0, ms) / 1000).toFixed(1)}s`;
}
