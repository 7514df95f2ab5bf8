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
 * one per image and platform it is pulled for, named by the first stage (in Dockerfile order)
 * built on it, as BuildKit merges identical source ops into one vertex. The platform is the
 * stage's own: a `FROM --platform=$BUILDPLATFORM` stage of every platform's build pulls the
 * build platform's image, once.
 */
export async function announceBaseImages(plan: BuildPlan, progress: ProgressWriter, buildId: string): Promise<void> {
  const seen = new Set<string>();
  // Sent without waiting for each reply (the writer appends them in call order): one round trip.
  const sent: Promise<void>[] = [];
  for (const p of plan.platforms) {
    for (const stage of p.stages) {
      const base = stage.base;
      const pulled = `${stage.platform} ${base.kind === 'image' ? base.ref : ''}`;
      if (base.kind !== 'image' || !base.name || seen.has(pulled)) continue;
      seen.add(pulled);
      const [, steps] = /\/(\d+)\]/.exec(base.name) ?? [];
      const vertex: VertexRef = {
        digest: internalDigest(buildId, `${stage.platform} ${base.name}`), name: base.name, platform: stage.platform,
        stage: stage.name ?? String(stage.index), step: 1, steps: Number(steps ?? 1), workerId: '', emulated: false,
      };
      const startedMs = Date.now();
      sent.push(progress.started(vertex, startedMs), progress.finished(vertex, startedMs));
    }
  }
  await Promise.all(sent);
}
