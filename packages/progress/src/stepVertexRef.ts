import { createHash } from 'node:crypto';
import type { VertexRef } from './ProgressEvent.js';

/** A planned step's progress id: its cache key per platform (two platforms may run the same step). */
export function stepVertexDigest(platform: string, cacheKey: string): string {
  return 'sha256:' + createHash('sha256').update(`${platform}\0${cacheKey}`).digest('hex');
}

/**
 * How a planned step shows in progress, whoever reports it (the worker that ran or looked it
 * up, or the frontend answering a whole build from the cache): the same id and name either way,
 * so a client sees the same vertices however a build was answered.
 */
export function stepVertexRef(
  stage: { platform: string; name?: string; index: number },
  vertex: { cacheKey: string; name: string; line?: number },
  by: { workerId: string; emulated: boolean },
): VertexRef {
  const [, step, steps] = /\[[^\]]*?(\d+)\/(\d+)\]/.exec(vertex.name) ?? [];
  return {
    digest: stepVertexDigest(stage.platform, vertex.cacheKey), name: vertex.name, platform: stage.platform, stage: stage.name ?? String(stage.index),
    step: Number(step ?? 0), steps: Number(steps ?? 0), workerId: by.workerId, emulated: by.emulated, ...(vertex.line ? { line: vertex.line } : {}),
  };
}
