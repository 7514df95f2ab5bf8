// The buildx way of showing a failed build: the failing step's last log lines in a box, the
// error line, and the Dockerfile lines it points at with a `>>>` marker.
import type { BuildError } from '@buildyard/proto';
import type { BuildProgress } from './BuildProgress.js';

const RULE = '--------------------';

/** `Dockerfile:3` and the lines around `line` (1-based), the offending ones marked `>>>`. */
export function dockerfileExcerpt(dockerfileText: string, fileName: string, line: number, endLine = line, context = 2): string[] {
  const lines = dockerfileText.split(/\r?\n/);
  if (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
  if (line < 1 || line > lines.length) return [];
  const last = Math.min(Math.max(endLine, line), lines.length);
  const from = Math.max(1, line - context);
  const to = Math.min(lines.length, last + context);
  const out = [`${fileName}:${line === last ? line : `${line}-${last}`}`, RULE];
  for (let n = from; n <= to; n++) {
    const mark = n >= line && n <= last ? '>>>' : '   ';
    out.push(` ${String(n).padStart(3)} | ${mark} ${lines[n - 1]}`.trimEnd());
  }
  out.push(RULE);
  return out;
}

export interface ErrorReportInput {
  error: BuildError;
  progress?: BuildProgress;
  /** The Dockerfile as read on the client, for the excerpt. */
  dockerfile?: string;
  dockerfileName?: string;
  /** How many log lines of the failed step to show. */
  logLines?: number;
}

/** The lines printed after a failed build (without colour). */
export function formatBuildError(input: ErrorReportInput): string[] {
  const { error } = input;
  const out: string[] = [];
  const failed = input.progress && error.vertex ? input.progress.vertices.get(error.vertex) : undefined;
  if (failed) {
    out.push('------', ` > ${failed.status.name}:`);
    for (const l of failed.lines.slice(-(input.logLines ?? 10))) {
      const t = ((l.atMs - (failed.status.startedMs || l.atMs)) / 1000).toFixed(3);
      out.push(`${t} ${l.text}`);
    }
    out.push('------');
  }
  out.push(`ERROR: failed to solve: ${error.message}`);
  const fileName = error.file || input.dockerfileName || 'Dockerfile';
  if (error.line > 0 && input.dockerfile !== undefined) out.push(...dockerfileExcerpt(input.dockerfile, fileName, error.line));
  return out;
}
