// 1. Cold build and 2. fully cached rebuild of examples/multi-stage: Buildyard (a real
// cluster, driven over gRPC) vs `buildah bud --layers` from the same local registry base.
import { resolve } from 'node:path';
import { startCluster, type Cluster } from '@buildyard/testkit';
import { Buildah } from '../lib/Buildah.js';
import { lowerIsBetter, type Benchmark, type Measurement } from '../lib/Measurement.js';
import { build, stageSpans } from '../lib/solve.js';
import { median, timed } from '../lib/stats.js';

const example = resolve(import.meta.dirname, '../../../examples/multi-stage');

export const buildBenchmark: Benchmark = {
  name: 'build',
  title: 'multi-stage example: cold build and cached rebuild vs buildah',
  async run(ctx) {
    const coldSamples = ctx.quick ? 1 : 3;
    const cachedSamples = ctx.quick ? 3 : 7;
    const cold = { buildyard: [] as number[], buildah: [] as number[] };
    const cached = { buildyard: [] as number[], buildah: [] as number[] };
    let overlapNote = '';
    for (let i = 0; i < coldSamples; i++) {
      // A fresh cluster and a fresh buildah store per cold sample: nothing is cached, the base
      // image is pulled from the registry by both.
      let cluster: Cluster | undefined;
      let buildah: Buildah | undefined;
      try {
        cluster = await startCluster({ workers: 2 });
        buildah = await Buildah.create();
        const args = { BASE: cluster.busybox.reference };
        const bah = await timed(() => buildah!.bud(example, args));
        const by = await timed(() => build(cluster!, example, { buildArgs: args }));
        cold.buildah.push(bah.ms);
        cold.buildyard.push(by.ms);
        const spans = stageSpans(by.value);
        const c = spans.get('client');
        const s = spans.get('server');
        if (c && s) overlapNote = `client/server stages ${c.start < s.end && s.start < c.end ? 'overlapped' : 'did not overlap'} on ${new Set([...c.workers, ...s.workers]).size} worker(s)`;
        ctx.log(`cold #${i + 1}: buildyard ${by.ms.toFixed(0)} ms, buildah ${bah.ms.toFixed(0)} ms`);
        if (i === coldSamples - 1) {
          for (let j = 0; j < cachedSamples; j++) {
            const b2 = await timed(() => buildah!.bud(example, args));
            const y2 = await timed(() => build(cluster!, example, { buildArgs: args }));
            const executed = y2.value.events.filter((e) => e.vertex?.name.includes('RUN') && e.vertex.startedMs && !e.vertex.cached).length;
            if (executed > 0) throw new Error(`cached rebuild #${j + 1} executed ${executed} RUN step(s); the cache did not hit`);
            cached.buildah.push(b2.ms);
            cached.buildyard.push(y2.ms);
          }
          ctx.log(`cached: buildyard ${cached.buildyard.map((x) => x.toFixed(0)).join(',')} ms, buildah ${cached.buildah.map((x) => x.toFixed(0)).join(',')} ms`);
        }
      } finally {
        await buildah?.destroy();
        await cluster?.stop();
      }
    }
    const rows: Measurement[] = [
      lowerIsBetter({ benchmark: 'build', metric: 'cold build wall time', unit: 'ms', buildyard: median(cold.buildyard), peer: median(cold.buildah), peerName: 'buildah bud', note: `median of ${coldSamples}; ${overlapNote}` }, 0.8),
      lowerIsBetter({ benchmark: 'build', metric: 'cached rebuild wall time', unit: 'ms', buildyard: median(cached.buildyard), peer: median(cached.buildah), peerName: 'buildah bud --layers', note: `median of ${cachedSamples}, end to end over gRPC incl. context sync` }, 0.5),
    ];
    const abs = median(cached.buildyard);
    rows.push({ benchmark: 'build', metric: 'cached rebuild absolute', unit: 'ms', buildyard: abs, ratio: abs / 300, target: '< 300 ms', met: abs < 300 });
    return rows;
  },
};
