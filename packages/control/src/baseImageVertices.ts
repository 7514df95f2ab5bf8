// The FROM step of each stage built on an image, as BuildKit shows it: a vertex named
// "[build 1/3] FROM docker.io/library/busybox:latest@sha256:…" after the "[internal] load
// metadata" ones and before the stages' own steps. In BuildKit it is the image source op, which
// resolves the pinned reference (and pulls what a step needs); here the frontend pinned the
// image while planning, and each worker fetches the layers it lacks when its stage starts.
import type { BuildPlan } from '@buildyard/graph';
import { internalDigest, type ProgressWriter, type VertexRef } from '@buildyard/progress';

/** A FROM vertex (see announceBaseImages): reported by the frontend, step 1 of its stage. */
export function isBaseImageVertex(v: Pick<VertexRef, 'workerId' | 'step' | 'name'>): boolean {
  return v.workerId === '' && v.step === 1 && / FROM \S+$/.test(v.name);
}

/**
 * Reports every base image the plan's stages start from as its FROM vertex, started and done:
 * one per image and platform, named by the first stage (in Dockerfile order) built on it, as
 * BuildKit merges identical source ops into one vertex.
 */
export async function announceBaseImages(plan: BuildPlan, progress: ProgressWriter, buildId: string): Promise<void> {
  for (const p of plan.platforms) {
    const seen = new Set<string>();
    for (const stage of p.stages) {
      const base = stage.base;
      if (base.kind !== 'image' || !base.name || seen.has(base.ref)) continue;
      seen.add(base.ref);
      const [, steps] = /\/(\d+)\]/.exec(base.name) ?? [];
      const vertex: VertexRef = {
        digest: internalDigest(buildId, `${p.platform} ${base.name}`), name: base.name, platform: p.platform,
        stage: stage.name ?? String(stage.index), step: 1, steps: Number(steps ?? 1), workerId: '', emulated: false,
      };
      const startedMs = Date.now();
      await progress.started(vertex, startedMs);
      await progress.finished(vertex, startedMs);
    }
  }
}
