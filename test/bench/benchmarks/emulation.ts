// 7. Emulation: the same CPU-bound RUN natively and for linux/arm64 under qemu-user (binfmt),
// on one worker that offers both. Reported, no target.
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Benchmark } from '../lib/Measurement.js';
import { build, withCluster } from '../lib/solve.js';
import { median } from '../lib/stats.js';
import { loop } from './fanout.js';

export const emulationBenchmark: Benchmark = {
  name: 'emulation',
  title: 'CPU-bound RUN natively vs linux/arm64 under QEMU',
  async run(ctx) {
    return withCluster('emulation', { workers: 1 }, async (cluster, work) => {
      await writeFile(join(work, 'Dockerfile'), `FROM ${cluster.busybox.reference}\nARG SALT\nRUN echo "$SALT" > /salt && ${loop(ctx.quick ? 100_000 : 250_000)}\n`);
      // The RUN vertex's own span, so pulling and exporting do not dilute the ratio.
      const runTime = async (platform: string) => {
        const out = await build(cluster, work, { platforms: [platform], buildArgs: { SALT: randomBytes(8).toString('hex') } });
        const runs = out.events.map((e) => e.vertex).filter((v) => v && v.name.includes('RUN') && !v.cached);
        const start = Math.min(...runs.filter((v) => v!.startedMs).map((v) => v!.startedMs));
        const end = Math.max(...runs.map((v) => v!.completedMs));
        if (!Number.isFinite(start) || !end) throw new Error(`no RUN step executed for ${platform}`);
        return end - start;
      };
      await runTime('linux/amd64'); // warm-up: pull both bases
      await runTime('linux/arm64');
      const samples = ctx.quick ? 1 : 3;
      const native: number[] = [];
      const emulated: number[] = [];
      for (let i = 0; i < samples; i++) {
        native.push(await runTime('linux/amd64'));
        emulated.push(await runTime('linux/arm64'));
      }
      ctx.log(`RUN natively ${native.map((x) => x.toFixed(0)).join(',')} ms, under QEMU ${emulated.map((x) => x.toFixed(0)).join(',')} ms`);
      const e = median(emulated);
      const n = median(native);
      return [{ benchmark: 'emulation', metric: 'CPU-bound RUN, arm64 under QEMU vs native amd64', unit: 'ms', buildyard: e, peer: n, peerName: 'same RUN, native', ratio: e / n, note: 'reported, no target' }];
    });
  },
};
