// `--progress tty` (auto on a terminal): buildx's redrawn step view. Loaded by createRenderer
// for that mode only.
import type { Writable } from 'node:stream';
import { createLogUpdate } from 'log-update';
import { createColors } from 'picocolors';
import type { SolveEvent } from '@buildyard/proto';
import { BuildProgress, describePlacement, formatSeconds } from './BuildProgress.js';
import type { ProgressRenderer } from './ProgressRenderer.js';

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
