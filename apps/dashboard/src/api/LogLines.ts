// The build page's live log, as a model the UI appends from: progress events in, finished text
// lines out. Shared with the UI (ui/src/pages.tsx) so the ordering rules are tested in node.
import type { ProgressView } from './types.js';

/** Redis stream ids ("ms-seq") in stream order; ids that do not parse sort first. */
export function compareStreamIds(a: string, b: string): number {
  const parse = (id: string): [bigint, bigint] => {
    const m = /^(\d+)-(\d+)$/.exec(id);
    return m ? [BigInt(m[1]), BigInt(m[2])] : [-1n, -1n];
  };
  const [am, as] = parse(a);
  const [bm, bs] = parse(b);
  return am !== bm ? (am < bm ? -1 : 1) : as === bs ? 0 : as < bs ? -1 : 1;
}

/** `build` of `[build 2/4] RUN make`; undefined for an unnamed stage (`[2/4] ...`) or another name. */
export function stageNameOf(vertexName: string): string | undefined {
  return /^\[(\S+(?: \S+)*?) +\d+\/\d+\]/.exec(vertexName)?.[1];
}

/**
 * Turns the build's progress events into lines that only ever get appended:
 * - an event is used once, and only if it comes after the last one used (a reconnecting
 *   EventSource, or a server that replays from the start, cannot repeat or reorder the view);
 * - a step's output is shown a whole line at a time, labelled with its platform and stage,
 *   holding a partial line back until its newline (or the step's end), so two platforms'
 *   output, written at the same time, never splice into each other's lines.
 */
export class LogLines {
  private last = '';
  private readonly vertices = new Map<string, { label: string; partial: string }>();
  private count = 0;
  private full = false;

  constructor(private readonly maxLines = 50_000) {}

  /** The id of the last event used; an EventSource resumes after it. */
  get lastId(): string { return this.last; }

  /** The lines `e` completes, in order; [] for an event already seen or out of order. */
  push(e: ProgressView): string[] {
    if (this.last && compareStreamIds(e.id, this.last) <= 0) return [];
    this.last = e.id;
    return this.limit(this.lines(e));
  }

  /** Partial lines still held back (the stream ended without their newline). */
  end(): string[] {
    const out: string[] = [];
    for (const v of this.vertices.values()) out.push(...this.takePartial(v));
    return this.limit(out);
  }

  private lines(e: ProgressView): string[] {
    if (e.type === 'vertex.log') {
      const v = this.vertex(e.digest ?? '');
      const text = v.partial + (e.text ?? '');
      const cut = text.lastIndexOf('\n');
      v.partial = text.slice(cut + 1);
      return cut < 0 ? [] : text.slice(0, cut).split('\n').map((l) => `${v.label}${l}\n`);
    }
    if (e.type.startsWith('vertex.') && e.digest) {
      const v = this.vertex(e.digest);
      // Labelled by the Dockerfile stage's name where it has one (`[linux/arm64 build] `).
      const stage = (e.name && stageNameOf(e.name)) || e.stage;
      if (e.platform || stage) v.label = `[${[e.platform, stage].filter(Boolean).join(' ')}] `;
      const own = e.type === 'vertex.started' ? `#${e.name} started\n`
        : e.type === 'vertex.cached' ? `#${e.name} CACHED\n`
          : e.type === 'vertex.finished' ? `#${e.name} done\n`
            : e.type === 'vertex.error' ? `#${e.name} ERROR ${e.error ?? ''}\n` : '';
      // A step that ends flushes its unfinished last line before saying so.
      const ended = e.type === 'vertex.finished' || e.type === 'vertex.error' || e.type === 'vertex.cached';
      return [...(ended ? this.takePartial(v) : []), ...(own ? [own] : [])];
    }
    if (e.error) return [`ERROR ${e.error}\n`];
    return e.text ? [`${e.text}\n`] : [];
  }

  private vertex(digest: string) {
    let v = this.vertices.get(digest);
    if (!v) this.vertices.set(digest, (v = { label: '', partial: '' }));
    return v;
  }

  private takePartial(v: { label: string; partial: string }): string[] {
    if (!v.partial) return [];
    const line = `${v.label}${v.partial}\n`;
    v.partial = '';
    return [line];
  }

  /** Past maxLines the view stops growing, with one notice, so a huge log cannot hang the page. */
  private limit(lines: string[]): string[] {
    if (this.full) return [];
    if (this.count + lines.length <= this.maxLines) {
      this.count += lines.length;
      return lines;
    }
    this.full = true;
    const kept = lines.slice(0, this.maxLines - this.count);
    this.count = this.maxLines;
    return [...kept, `[dashboard] the log view stops after ${this.maxLines} lines; the client that started the build (--progress=plain) shows all of it\n`];
  }
}
