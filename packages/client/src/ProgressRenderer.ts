// The buildx-style progress renderers (plain and quiet here; tty and rawjson in modules of their
// own, see createRenderer), written by hand: buildx's own renderer is Go, and no npm library draws
// BuildKit's step view. Progress goes to stderr.
import type { Writable } from 'node:stream';
import type { SolveEvent } from '@buildyard/proto';
import { BuildProgress, describePlacement, formatSeconds, type VertexState } from './BuildProgress.js';

export interface ProgressRenderer {
  readonly progress: BuildProgress;
  event(ev: SolveEvent): void;
  /** Stops timers and leaves the final view in place. */
  end(): void;
  /** Whether a human summary should follow (not for rawjson/quiet). */
  readonly human: boolean;
}

export type RendererMode = 'tty' | 'plain' | 'rawjson' | 'quiet';

/** --progress=auto: tty when the progress stream is a terminal, plain otherwise. */
export function resolveProgressMode(mode: string, isTty: boolean): RendererMode {
  if (mode === 'auto') return isTty ? 'tty' : 'plain';
  return mode as RendererMode;
}

// ------------------------------------------------------------------ plain

/** buildx's plain format: `#N name`, `#N 0.123 log`, `#N DONE 0.3s`, `#N CACHED`, `#N ERROR: ...`. */
export class PlainRenderer implements ProgressRenderer {
  readonly progress = new BuildProgress();
  readonly human = true;
  private readonly announced = new Set<string>();
  private readonly finished = new Set<string>();
  private readonly printedLines = new Map<string, number>();
  private last?: string;
  private wrote = false;

  constructor(private readonly write: (line: string) => void) {}

  private header(v: VertexState): void {
    if (this.last === v.status.digest) return;
    if (this.wrote) this.write('');
    const where = describePlacement(v.status);
    this.write(`#${v.index} ${v.status.name}${where ? ` (${where})` : ''}`);
    this.last = v.status.digest;
    this.wrote = true;
  }

  private emit(v: VertexState, line: string): void {
    this.header(v);
    this.write(`#${v.index} ${line}`);
  }

  private flushLogs(v: VertexState): void {
    const from = this.printedLines.get(v.status.digest) ?? 0;
    if (from >= v.lines.length) return;
    for (const l of v.lines.slice(from)) {
      const t = ((l.atMs - (v.status.startedMs || l.atMs)) / 1000).toFixed(3);
      this.emit(v, `${t} ${l.text}`);
    }
    this.printedLines.set(v.status.digest, v.lines.length);
  }

  event(ev: SolveEvent): void {
    const v = this.progress.apply(ev);
    if (ev.warning) {
      const w = ev.warning;
      if (this.wrote) this.write('');
      this.write(`WARNING: ${w.message}${w.line ? ` (${w.file || 'Dockerfile'}:${w.line})` : ''}`);
      this.last = undefined;
      this.wrote = true;
    }
    if (!v || this.finished.has(v.status.digest)) return;
    const s = v.status;
    if (s.cached) {
      this.header(v);
      this.write(`#${v.index} CACHED`);
      this.finished.add(s.digest);
      return;
    }
    if (ev.log) {
      this.flushLogs(v);
      if (ev.log.truncated) this.emit(v, '[output clipped, log limit reached]');
      return;
    }
    if ((s.startedMs || s.completedMs || s.error) && !this.announced.has(s.digest)) {
      this.announced.add(s.digest);
      this.header(v);
    }
    if (s.error) {
      this.flushLogs(v);
      this.emit(v, `ERROR: ${s.error}`);
      this.finished.add(s.digest);
    } else if (s.completedMs) {
      this.flushLogs(v);
      this.emit(v, `DONE ${formatSeconds(s.completedMs - (s.startedMs || s.completedMs))}`);
      this.finished.add(s.digest);
    }
  }

  end(): void {}
}

export class QuietRenderer implements ProgressRenderer {
  readonly progress = new BuildProgress();
  readonly human = false;
  event(ev: SolveEvent): void { this.progress.apply(ev); }
  end(): void {}
}

export interface CreateRendererOptions {
  mode: RendererMode;
  stream: Writable & { columns?: number; rows?: number; isTTY?: boolean };
  color?: boolean;
}

/**
 * The renderer of a mode. The tty view (log-update, whose string-width compiles Unicode
 * regular expressions as it loads) and rawjson's translation to BuildKit's SolveStatus (with
 * BuildKit's proto stubs) load only for their own mode: neither is on the path of a plain build.
 */
export async function createRenderer(o: CreateRendererOptions): Promise<ProgressRenderer> {
  const write = (line: string) => { o.stream.write(`${line}\n`); };
  switch (o.mode) {
    case 'tty': return new (await import('./TtyRenderer.js')).TtyRenderer({ stream: o.stream, color: o.color });
    case 'plain': return new PlainRenderer(write);
    case 'rawjson': return new (await import('./RawJsonRenderer.js')).RawJsonRenderer(write);
    case 'quiet': return new QuietRenderer();
  }
}

/** The closing lines: time, cache hits, pushed refs, warnings. */
export function formatSummary(p: BuildProgress): string[] {
  const out: string[] = [];
  const r = p.result;
  if (p.warnings.length > 0) {
    out.push(`${p.warnings.length} warning${p.warnings.length === 1 ? '' : 's'} found:`);
    for (const w of p.warnings) out.push(` - ${w.message}${w.line ? ` (${w.file || 'Dockerfile'}:${w.line})` : ''}`);
  }
  if (!r) return out;
  const total = r.verticesTotal || p.counts().total;
  const cached = r.verticesTotal ? r.verticesCached : p.counts().cached;
  out.push(`Build ${r.buildId || p.buildId} finished in ${formatSeconds(r.durationMs || p.lastEventMs - p.startedMs)}, cache hits ${cached}/${total}`);
  for (const img of r.images) out.push(` ${img.platform}: ${img.manifestDigest}`);
  for (const ref of r.pushed) out.push(`pushed ${ref}`);
  if (r.digest) out.push(`digest: ${r.digest}`);
  return out;
}
