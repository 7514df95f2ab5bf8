// The buildx way of showing a failed build: the failing step's last log lines in a box, the
// error line, and the Dockerfile lines it points at with a `>>>` marker.
import type { BuildError } from '@buildyard/proto';
import { dockerfileExcerpt } from '@buildyard/dockerfile';
import type { BuildProgress } from './BuildProgress.js';

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
