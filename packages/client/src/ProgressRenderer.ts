// The buildx-style progress renderers (tty, plain, rawjson, quiet), written by hand: buildx's
// own renderer is Go, and no npm library draws BuildKit's step view. Progress goes to stderr.
import type { Writable } from 'node:stream';
import { createLogUpdate } from 'log-update';
import { createColors } from 'picocolors';
import type { SolveEvent } from '@buildyard/proto';
import { StatusTranslator, fromSolveEvent, solveStatusJson, warningUpdate } from '@buildyard/progress';
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

// ------------------------------------------------------------------ rawjson

/**
 * BuildKit's SolveStatus JSON, one object per status update, as `buildctl --progress rawjson`
 * prints it: the events go through the translation the BuildKit endpoint gives buildctl, so
 * tooling that reads buildctl's stream reads this one. Events with no SolveStatus form (the
 * build's acceptance, result, exported files) print nothing, as in BuildKit.
 */
export class RawJsonRenderer implements ProgressRenderer {
  readonly progress = new BuildProgress();
  readonly human = false;
  private translator?: StatusTranslator;
  constructor(private readonly write: (line: string) => void) {}
  event(ev: SolveEvent): void {
    this.progress.apply(ev);
    const e = fromSolveEvent(ev);
    if (!e) return;
    // Step names carry their platform when several build, as BuildKit names them.
    if (e.type === 'build.accepted') this.translator ??= new StatusTranslator(e.platforms.length > 1);
    this.translator ??= new StatusTranslator(false);
    const update = this.translator.translate(e) ?? warningUpdate(e);
    if (update) this.write(solveStatusJson(update));
  }
  end(): void {}
}

export class QuietRenderer implements ProgressRenderer {
  readonly progress = new BuildProgress();
  readonly human = false;
  event(ev: SolveEvent): void { this.progress.apply(ev); }
  end(): void {}
}

// ------------------------------------------------------------------ tty

export interface TtyFrameOptions {
  now: number;
  columns: number;
  rows: number;
  /** Log lines shown under each running step. */
  logLines?: number;
  color?: boolean;
  finished?: boolean;
}

/** One frame of the tty view, buildx-style. Pure, so tests can assert exact frames. */
export function renderTtyFrame(p: BuildProgress, o: TtyFrameOptions): string {
  const c = createColors(o.color ?? false);
  const width = Math.max(40, o.columns);
  const { total, done } = p.counts();
  const elapsed = formatSeconds((o.finished ? p.lastEventMs : o.now) - (p.startedMs || o.now));
  const title = `[+] Building ${elapsed} (${done}/${total})${o.finished ? (p.error ? ' FINISHED with errors' : ' FINISHED') : ''}`;
  const rows: string[] = [];
  const fit = (left: string, right: string, paint: (s: string) => string): string => {
    const room = width - right.length - 1;
    const l = left.length > room ? `${left.slice(0, Math.max(0, room - 1))}…` : left.padEnd(room);
    return paint(`${l} ${right}`);
  };
  const blocks: { lines: string[]; running: boolean }[] = [];
  for (const v of p.list()) {
    const s = v.status;
    if (!s.startedMs && !s.cached && !s.completedMs && !s.error) continue; // queued, not shown yet
    const where = describePlacement(s);
    const running = !s.cached && !s.completedMs && !s.error;
    const prefix = s.error ? 'ERROR ' : s.cached ? 'CACHED ' : '';
    const secs = s.cached ? 0 : (s.completedMs || o.now) - (s.startedMs || s.completedMs || o.now);
    const left = ` => ${prefix}${s.name}${where ? ` ${where}` : ''}`;
    const paint = s.error ? c.red : running ? c.blue : s.cached ? c.dim : (x: string) => x;
    const lines = [fit(left, formatSeconds(secs), paint)];
    if (running || s.error) {
      for (const l of v.lines.slice(-(o.logLines ?? 6))) {
        const t = ` => => # ${l.text}`;
        lines.push(c.dim(t.length > width ? `${t.slice(0, width - 1)}…` : t));
      }
    }
    blocks.push({ lines, running });
  }
  // Keep the frame within the terminal: running steps first, then the newest finished ones.
  let budget = Math.max(3, o.rows - 2);
  const keep = new Set<number>();
  blocks.forEach((b, i) => {
    if (b.running && budget > 0) { b.lines = b.lines.slice(0, budget); keep.add(i); budget -= b.lines.length; }
  });
  for (let i = blocks.length - 1; i >= 0 && budget > 0; i--) {
    if (keep.has(i) || blocks[i].lines.length > budget) continue;
    keep.add(i);
    budget -= blocks[i].lines.length;
  }
  const kept = blocks.filter((_, i) => keep.has(i)).map((b) => b.lines);
  rows.push(o.finished && !p.error ? c.blue(title) : title);
  for (const k of kept) rows.push(...k);
  return rows.join('\n');
}

export interface TtyRendererOptions {
  stream: Writable & { columns?: number; rows?: number };
  color?: boolean;
  /** Redraw interval for the timers. */
  intervalMs?: number;
  now?: () => number;
}

export class TtyRenderer implements ProgressRenderer {
  readonly progress = new BuildProgress();
  readonly human = true;
  private readonly log: ReturnType<typeof createLogUpdate>;
  private readonly timer: NodeJS.Timeout;
  private readonly now: () => number;
  private ended = false;

  constructor(private readonly o: TtyRendererOptions) {
    // A terminal may report 0 columns or rows (a pty nobody sized, some CI runners): log-update
    // would wrap to nothing and draw nothing, so the view falls back to 80x24 as buildx does.
    const stream = o.stream;
    this.log = createLogUpdate({
      get columns() { return stream.columns || 80; },
      get rows() { return stream.rows || 24; },
      isTTY: (stream as { isTTY?: boolean }).isTTY,
      write: (chunk: string) => stream.write(chunk),
    } as unknown as NodeJS.WriteStream, { showCursor: false });
    this.now = o.now ?? Date.now;
    this.timer = setInterval(() => this.draw(false), o.intervalMs ?? 100);
    this.timer.unref();
  }

  private frame(finished: boolean): string {
    return renderTtyFrame(this.progress, {
      now: Math.max(this.now(), this.progress.lastEventMs),
      columns: this.o.stream.columns || 80,
      // A pty that reports no size (0 rows) still gets a normal-height view.
      rows: this.o.stream.rows || 24,
      color: this.o.color ?? true,
      finished,
    });
  }

  private draw(finished: boolean): void {
    if (this.ended) return;
    this.log(this.frame(finished));
  }

  event(ev: SolveEvent): void {
    this.progress.apply(ev);
    if (ev.warning) this.log.persist?.(`WARNING: ${ev.warning.message}${ev.warning.line ? ` (${ev.warning.file || 'Dockerfile'}:${ev.warning.line})` : ''}`);
    this.draw(false);
  }

  end(): void {
    if (this.ended) return;
    clearInterval(this.timer);
    this.draw(true);
    this.ended = true;
    this.log.done();
  }
}

export interface CreateRendererOptions {
  mode: RendererMode;
  stream: Writable & { columns?: number; rows?: number; isTTY?: boolean };
  color?: boolean;
}

export function createRenderer(o: CreateRendererOptions): ProgressRenderer {
  const write = (line: string) => { o.stream.write(`${line}\n`); };
  switch (o.mode) {
    case 'tty': return new TtyRenderer({ stream: o.stream, color: o.color });
    case 'plain': return new PlainRenderer(write);
    case 'rawjson': return new RawJsonRenderer(write);
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
