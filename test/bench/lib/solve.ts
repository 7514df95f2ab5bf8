// Builds through the frontend's gRPC API exactly as test/e2e does (context sync, then Solve).
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SolveRequest } from '@buildyard/proto';
import { startCluster, type Cluster, type ClusterOptions } from '@buildyard/testkit';
import { solve, type SolveOutcome } from '../../e2e/grpcClient.js';

/** Runs `fn` on a fresh cluster and work directory; stops the one and removes the other after. */
export async function withCluster<T>(name: string, options: ClusterOptions, fn: (cluster: Cluster, work: string) => Promise<T>): Promise<T> {
  const work = await mkdtemp(join(tmpdir(), `buildyard-bench-${name}-`));
  let cluster: Cluster | undefined;
  try {
    cluster = await startCluster(options);
    return await fn(cluster, work);
  } finally {
    await cluster?.stop();
    await rm(work, { recursive: true, force: true });
  }
}

export async function build(cluster: Cluster, contextDir: string, request: Partial<SolveRequest>): Promise<SolveOutcome> {
  const outcome = await solve(cluster, contextDir, { platforms: ['linux/amd64'], ...request });
  if (outcome.error) throw new Error(`build of ${contextDir} failed: ${outcome.error.message}`);
  return outcome;
}

/** Per stage: first start to last completion of its executed (non-cached) vertices. */
export function stageSpans(outcome: SolveOutcome): Map<string, { start: number; end: number; workers: Set<string> }> {
  const spans = new Map<string, { start: number; end: number; workers: Set<string> }>();
  for (const e of outcome.events) {
    const v = e.vertex;
    if (!v || v.cached || !v.stage) continue;
    const span = spans.get(v.stage) ?? { start: Infinity, end: 0, workers: new Set<string>() };
    if (v.startedMs) span.start = Math.min(span.start, v.startedMs);
    if (v.completedMs) span.end = Math.max(span.end, v.completedMs);
    if (v.workerId) span.workers.add(v.workerId);
    spans.set(v.stage, span);
  }
  return spans;
}
